"""The entry scripts and tools as modules, for tests that call their functions in-process (they are files, not a
package: ``train.py``, ``test.py``, ``tools/*.py``)."""
import importlib.util
from types import ModuleType

from tests.support.paths import REPO



def load_script(relative_path: str) -> ModuleType:
    """The module of the script at ``relative_path`` from the repository root, e.g. 'tools/model_info.py'; each
    call runs it anew (a fresh module, under a name of its own)."""
    name = 'script_' + relative_path.replace('/', '_').removesuffix('.py')
    spec = importlib.util.spec_from_file_location(name, REPO / relative_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
