"""Where the repository and the vendored facts about the original are, from any test or helper."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # also on sys.path through pyproject.toml's pytest pythonpath
REFERENCE = REPO / 'tests' / 'reference'  # facts measured on the original (its README.md describes each file)
