"""The repository's shape: every import of lib/, tools/ and the entry scripts points down the layers of
lib/layers.py (lazy imports inside functions too), and no module is over 300 lines."""
import ast
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

from lib.layers import LAYERS, layer_of

REPO = Path(__file__).resolve().parent.parent
ENTRY_SCRIPTS = ('train.py', 'retrain.py', 'test.py')
MAX_LINES = 300
# (file, imported module) pairs allowed to point up, each with its reason; none today.
KNOWN_UPWARD = set()
# Modules allowed over MAX_LINES, each with its reason; none today.
KNOWN_LONG = set()


def checked_files() -> List[Path]:
    return sorted(REPO.glob('lib/**/*.py')) + sorted(REPO.glob('tools/*.py')) + [REPO / s for s in ENTRY_SCRIPTS]


def module_name(path: Path) -> str:
    """The dotted name of a repository file: lib/search/board.py -> lib.search.board, tools/x.py -> tools.x."""
    parts = list(path.relative_to(REPO).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def is_ours(module: str) -> bool:
    """Whether ``module`` names a file or package of the repository (not torch, numpy, ...)."""
    base = REPO.joinpath(*module.split('.'))
    return base.with_suffix('.py').is_file() or (base / '__init__.py').is_file()


def imported_modules(name: str, source: str, is_package: bool = False) -> Iterator[Tuple[int, str, str]]:
    """(line, module, statement) for every import of the repository's modules in the source of module ``name``
    (``is_package``: an __init__.py), wherever it stands (top level, functions, ``if`` blocks). A tool's bare
    ``import sibling`` is tools.sibling."""
    package = name if is_package else name.rpartition('.')[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                anchor = package.split('.')[:len(package.split('.')) - node.level + 1]
                base = '.'.join(anchor + ([base] if base else []))
            targets = [f'{base}.{alias.name}' if is_ours(f'{base}.{alias.name}') else base for alias in node.names]
        else:
            continue
        for target in dict.fromkeys(targets):
            if name.startswith('tools.') and '.' not in target and is_ours(f'tools.{target}'):
                target = f'tools.{target}'
            if is_ours(target):
                yield node.lineno, target, ast.get_source_segment(source, node) or target


def upward_imports(relative_path: str, name: str, source: str, known=KNOWN_UPWARD) -> List[Tuple[str, str]]:
    """Every import of ``source`` (the module ``name``) that points up LAYERS and is not in ``known``: (the
    imported module, 'file:line: statement imports ...')."""
    own = layer_of(name)
    problems = []
    for line, target, statement in imported_modules(name, source, relative_path.endswith('__init__.py')):
        theirs = layer_of(target)
        if theirs is not None and own is not None and theirs > own and (relative_path, target) not in known:
            problems.append((target, f'{relative_path}:{line}: {statement!r} imports layer {LAYERS[theirs][0]!r} '
                                     f'({target}) from the lower layer {LAYERS[own][0]!r}'))
    return problems


def unplaced(name: str) -> Optional[str]:
    return None if layer_of(name) is not None else f'{name} is in no layer of lib/layers.py: give it one'


def test_every_module_has_a_layer():
    problems = [unplaced(module_name(path)) for path in checked_files()]
    assert [p for p in problems if p] == []


def all_upward_imports(known) -> List[Tuple[str, str, str]]:
    """(file, imported module, message) of every upward import of the repository not in ``known``."""
    problems = []
    for path in checked_files():
        relative = path.relative_to(REPO).as_posix()
        problems += [(relative, target, message)
                     for target, message in upward_imports(relative, module_name(path), path.read_text(), known)]
    return problems


def test_imports_point_down_the_layers():
    messages = [message for _, _, message in all_upward_imports(KNOWN_UPWARD)]
    assert messages == [], 'imports that point up lib/layers.py:\n' + '\n'.join(messages)


def test_the_known_upward_imports_still_exist():
    """An entry of KNOWN_UPWARD whose import is gone is stale: delete it."""
    found = {(relative, target) for relative, target, _ in all_upward_imports(known=set())}
    assert KNOWN_UPWARD - found == set()


def test_the_check_catches_an_upward_import():
    """A models module importing the search, at the top and lazily, and one importing a tool, are caught; its
    downward and same-layer imports are not."""
    source = ('import torch\n'
              'from lib.errors import CreamError\n'
              'from . import ops\n'
              'from lib.search.board import BoardEntry\n'
              'def f():\n'
              '    from lib.experiments import ranking\n'
              '    import tools.benchmark\n')
    problems = upward_imports('lib/models/new.py', 'lib.models.new', source)
    assert [target for target, _ in problems] == ['lib.search.board', 'lib.experiments.ranking', 'tools.benchmark']
    assert [message.split(':')[1] for _, message in problems] == ['4', '6', '7']
    assert problems[0][1] == ("lib/models/new.py:4: 'from lib.search.board import BoardEntry' imports layer 'search' "
                              "(lib.search.board) from the lower layer 'models'")


def test_relative_and_sibling_imports_resolve_to_their_modules():
    assert [t for _, t, _ in imported_modules('lib.models', 'from .childnet import build_childnet', True)] == \
        ['lib.models.childnet']
    assert [t for _, t, _ in imported_modules('lib.models.zoo', 'from . import ops')] == ['lib.models.ops']
    assert [t for _, t, _ in imported_modules('tools.profile_step', 'import benchmark\nimport torch')] == \
        ['tools.benchmark']
    assert [t for _, t, _ in imported_modules('lib.search.x', 'from lib import comm')] == ['lib.comm']


def test_a_known_upward_import_is_only_that_pair():
    source = 'from lib.retrain.optim import build_optimizer\nfrom lib.search import board\n'
    known = {('lib/config/checks.py', 'lib.retrain.optim')}
    assert len(upward_imports('lib/config/checks.py', 'lib.config.checks', source, known)) == 1
    assert len(upward_imports('lib/config/build.py', 'lib.config.build', source, known)) == 2


def test_the_layers_are_placed_once():
    members = [member for _, layer_members, _ in LAYERS for member in layer_members]
    assert len(members) == len(set(members))
    assert layer_of('lib.config.checks') == layer_of('lib.config') < layer_of('lib.engine.runtime')
    assert layer_of('lib.latency.table') < layer_of('lib.search.latency_budget')
    assert layer_of('lib.newpackage.module') is None  # only lib/__init__.py is the root's


def long_modules(paths=None, root: Path = REPO) -> List[str]:
    """The files of ``paths`` (the checked files) over MAX_LINES lines, relative to ``root``."""
    return [path.relative_to(root).as_posix() for path in (paths or checked_files())
            if len(path.read_text().splitlines()) > MAX_LINES]


def test_the_size_check_catches_a_long_module(tmp_path):
    lines = ''.join(f'x{i} = {i}\n' for i in range(MAX_LINES))
    (tmp_path / 'fits.py').write_text(lines)
    (tmp_path / 'long.py').write_text(lines + 'one_more = 1\n')
    found = long_modules([tmp_path / 'fits.py', tmp_path / 'long.py'], root=tmp_path)
    assert found == ['long.py']


def test_no_module_is_over_300_lines():
    long = [f'{p} has {len((REPO / p).read_text().splitlines())} lines' for p in long_modules() if p not in KNOWN_LONG]
    assert long == [], f'modules over {MAX_LINES} lines (split each into modules of one job):\n' + '\n'.join(long)


def test_the_long_modules_allowed_still_exist():
    """An entry of KNOWN_LONG for a file already shrunk or gone is stale: delete it."""
    assert KNOWN_LONG - set(long_modules()) == set()
