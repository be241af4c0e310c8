"""README.md and docs/ against the code: every config key, command-line flag, file path and tool they name exists,
every shell command of ours in them parses with its script's own argument parser (and its config files and
overrides load), every page under docs/ is linked from README.md, and docs/config.md is the generated page."""
import argparse
import contextlib
import re
import shlex
import sys
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from lib.config import get_defaults, load_config
from lib.config.table import ALIASES
from lib.errors import CreamError
from tests.support.scripts_as_modules import REPO, load_script

PAGES = [REPO / 'README.md'] + sorted((REPO / 'docs').glob('*.md'))
ENTRY_SCRIPTS = ('train.py', 'retrain.py', 'test.py')
# Pages other branches add in parallel, linked from README.md before they land here; the merge that brings a page
# removes it from this list (a link to a page that is neither here nor listed fails).
PAGES_ADDED_IN_PARALLEL = set()
# Upper-case words with '_' or '.' in inline code that are not config keys: errno names, environment variables of
# launchers and schedulers, names in the code.
NOT_CONFIG = {'ENOSPC', 'EDQUOT', 'EFBIG', 'NUM_SUMS', 'RESUME_MAY_CHANGE', 'RUN_DIR', 'KEY_VALUE',
              'MIN_SIZE_FACTOR', 'GRID_MFLOPS', 'BEST_SWITCHES', 'EVOLUTION_OPTS', 'NOT_READ', 'CROSS_KEY_RULES'}
NOT_CONFIG_PREFIXES = ('SLURM_', 'TORCHELASTIC_', 'MASTER_', 'CUDA_', 'OMP_', 'NCCL_', 'TORCH_', 'WORLD_SIZE', 'RANK', 'LOCAL_WORLD',
                       'PYTHON', 'SBATCH')
# Flags of programs that are not ours: torchrun's (from its own parser, below), SLURM's, pytest's, pip's and those
# timm's train.py takes.
OTHER_PROGRAMS_FLAGS = {'--nodes', '--ntasks', '--ntasks-per-node', '--gres', '--gpus', '--gpus-per-node',
                        '--cpus-per-task', '--time', '--signal', '--partition', '--job-name', '--output', '--error',
                        '--requeue', '--mem', '--exclusive', '--open-mode', '--kill-on-bad-exit', '--model', '-q', '-x',
                        '-k', '-e', '-m', '-c'}


class Parsed(Exception):
    """Raised by the patched ``parse_args``: the script's parser accepted the command line."""

    def __init__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace):
        super().__init__()
        self.parser, self.namespace = parser, namespace


@contextlib.contextmanager
def stop_after_parsing():
    """``ArgumentParser.parse_args`` parses as always and then raises ``Parsed``: a script's ``main`` goes no
    further than its command line."""
    original = argparse.ArgumentParser.parse_args

    def parse_args(self, args=None, namespace=None):
        raise Parsed(self, original(self, args, namespace))
    argparse.ArgumentParser.parse_args = parse_args
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_args = original


def load(script: str):
    """The script as a module, with its own folder first on sys.path as when Python runs it (tools import tools)."""
    sys.path.insert(0, str((REPO / script).parent))
    try:
        return load_script(script)
    finally:
        sys.path.remove(str((REPO / script).parent))


def parse_command(script: str, argv: List[str]) -> Parsed:
    """The parsed command line of ``script`` (a path from the repository root) for ``argv``."""
    module = load(script)
    main = getattr(module, 'main')
    with stop_after_parsing():
        try:
            main(argv)
        except Parsed as parsed:
            return parsed
        except SystemExit as exit_:
            raise AssertionError(f'{script} {shlex.join(argv)}: its parser refused the command line') from exit_
    raise AssertionError(f'{script} returned without parsing its command line')


@lru_cache(maxsize=1)
def our_scripts() -> Tuple[str, ...]:
    return ENTRY_SCRIPTS + tuple(f'tools/{p.name}' for p in sorted((REPO / 'tools').glob('*.py')))


@lru_cache(maxsize=1)
def all_flags() -> frozenset:
    """Every option string of every script's parser, subcommands included."""
    flags = set()
    for script in our_scripts():
        parsers = [_parser_of(script)]
        while parsers:
            parser = parsers.pop()
            for action in parser._actions:
                flags.update(action.option_strings)
                if isinstance(action, argparse._SubParsersAction):
                    parsers.extend(action.choices.values())
    return frozenset(flags)


def _parser_of(script: str) -> argparse.ArgumentParser:
    """The script's parser, caught when it first parses a command line (before any work)."""
    module = load(script)
    original = argparse.ArgumentParser.parse_args
    caught = []

    def parse_args(self, args=None, namespace=None):
        caught.append(self)
        raise Parsed(self, argparse.Namespace())
    argparse.ArgumentParser.parse_args = parse_args
    try:
        module.main([])
    except Parsed:
        pass
    finally:
        argparse.ArgumentParser.parse_args = original
    assert caught, f'{script} builds no argparse parser in main()'
    return caught[0]


# ---- reading the pages --------------------------------------------------------------------------------------------
def blocks(text: str, languages: Tuple[str, ...]) -> Iterator[str]:
    for match in re.finditer(r'^```(\w*)\n(.*?)^```', text, flags=re.S | re.M):
        if match.group(1) in languages:
            yield match.group(2)


def prose(text: str) -> str:
    """The page without its fenced blocks."""
    return re.sub(r'^```.*?^```', '', text, flags=re.S | re.M)


def inline_code(text: str) -> List[str]:
    """The page's inline code spans (a span may wrap onto the next line)."""
    return [' '.join(span.split()) for span in re.findall(r'`([^`]+)`', prose(text))]


def shell_words(line: str) -> List[str]:
    """A shell line as words, with ';', '&&', '|' and '||' words of their own and comments dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=';&|')
    lexer.whitespace_split = True
    return list(lexer)


def shell_commands(text: str) -> Iterator[List[str]]:
    """Each command of the page's bash blocks as words: continuation lines joined, comments dropped, split at
    ';', '&&', '|' and '||'."""
    for block in blocks(text, ('bash', 'sh', 'shell')):
        for line in block.replace('\\\n', ' ').splitlines():
            command: List[str] = []
            for word in shell_words(line) + [';']:
                if word in ('&&', ';', '||', '|', '&'):
                    if command:
                        yield command
                    command = []
                else:
                    command.append(word)


def script_and_argv(command: List[str]):
    """(repository script, its argv) of a command that runs one of ours, else None."""
    for i, word in enumerate(command):
        name = word.removeprefix('./')
        if name in our_scripts():
            return name, command[i + 1:]
    return None


def page_id(page: Path) -> str:
    return str(page.relative_to(REPO))


def every_page_text() -> Dict[str, str]:
    return {page_id(page): page.read_text() for page in PAGES}


def config_names() -> Tuple[set, set]:
    """(dotted keys and sections, every name that appears at any depth) of the config tree, aliases included."""
    dotted, names = set(ALIASES), set(ALIASES)

    def walk(node, prefix=''):
        for key, value in node.items():
            dotted.add(prefix + key)
            names.add(key)
            if hasattr(value, 'items'):
                walk(value, f'{prefix}{key}.')
    walk(get_defaults())
    return dotted, names


def is_generated_or_placeholder(path: str) -> bool:
    """A file the docs' earlier commands write (output/...), or a placeholder such as RUN/config.yaml."""
    first = Path(path).parts[0] if Path(path).parts else ''
    return path.removeprefix('./').startswith('output/') or first.isupper()


# ---- what is wrong with a page ------------------------------------------------------------------------------------
def command_problems(text: str, tmp_path: Path) -> List[str]:
    """Shell commands of ours that their parser refuses or whose config files or overrides do not load; yaml blocks
    that do not load as a config; pytest and bash commands naming missing files."""
    problems = []
    for command in shell_commands(text):
        line = shlex.join(command)
        found = script_and_argv(command)
        if found is None:
            named = [w.split('::')[0] for w in command[3:] if w.startswith('tests')] if command[:3] == [
                'python', '-m', 'pytest'] else command[1:2] if command[0] == 'bash' else []
            problems += [f'{line}: no {path}' for path in named if not (REPO / path).exists()]
            continue
        try:
            namespace = parse_command(*found).namespace
        except AssertionError as refused:
            problems.append(str(refused))
            continue
        cfg_files = getattr(namespace, 'cfg', None)
        if cfg_files is None or not hasattr(namespace, 'opts'):
            continue
        cfg_files = [cfg_files] if isinstance(cfg_files, str) else list(cfg_files)
        problems += [f'{line}: no config file {path}' for path in cfg_files
                     if not (REPO / path).is_file() and not is_generated_or_placeholder(path)]
        try:
            load_config([str(REPO / p) for p in cfg_files if (REPO / p).is_file()], list(namespace.opts))
        except CreamError as err:
            problems.append(f'{line}: {err}')
    for i, block in enumerate(blocks(text, ('yaml',))):
        path = tmp_path / f'block{i}.yaml'
        path.write_text(block)
        try:
            load_config([str(path)])
        except CreamError as err:
            problems.append(f'yaml block {i}: {err}')
    return problems


def config_key_problems(text: str) -> List[str]:
    """Key-like words in inline code (with '_' or '.') that are no config key, section, alias or leaf name."""
    dotted, names = config_names()
    unknown = set()
    for code in inline_code(text):
        for token in re.findall(r'(?<![\w.$/-])([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*(?:\.[A-Z][A-Z0-9_]*|\.\*)*)(?![\w/-])',
                                code):
            if '_' not in token and '.' not in token:
                continue  # plain words (CPU, LR, SCHED): too short to tell a key from a word
            if token in NOT_CONFIG or token.startswith(NOT_CONFIG_PREFIXES):
                continue
            key = token.removesuffix('.*')
            if key not in dotted and ('.' in key or key not in names):
                unknown.add(token)
    return sorted(unknown)


@lru_cache(maxsize=1)
def torchrun_flags() -> frozenset:
    from torch.distributed.run import get_args_parser
    return frozenset(option for action in get_args_parser()._actions for option in action.option_strings)


def flag_problems(text: str) -> List[str]:
    named = {flag for code in inline_code(text) for flag in re.findall(r'(?<![\w-])(--[a-z][\w-]*)', code)}
    return sorted(named - all_flags() - torchrun_flags() - OTHER_PROGRAMS_FLAGS)


def path_problems(text: str, page: str) -> List[str]:
    """Repository paths in inline code and commands that do not exist, and relative links to missing files."""
    missing = set()
    words = ' '.join(inline_code(text)) + ' ' + ' '.join(' '.join(c) for c in shell_commands(text))
    candidates = re.findall(r'(?<![\w./-])((?:configs|lib|tools|tests|docs)/[\w./<>*-]*[\w>*])', words)
    candidates += [name for name in re.findall(r'`(\w+\.py)`', text) if name in ENTRY_SCRIPTS]
    for path in candidates:
        pattern = re.sub(r'<[^>]+>', '*', path)
        if pattern not in PAGES_ADDED_IN_PARALLEL and not list(REPO.glob(pattern.rstrip('/'))):
            missing.add(path)
    base = (REPO / page).parent
    for target in re.findall(r'\]\(([^)#\s]+)(?:#[^)]*)?\)', prose(text)):
        if not re.match(r'\w+://', target) and not (base / target).exists() and \
                str((base / target).resolve().relative_to(REPO)) not in PAGES_ADDED_IN_PARALLEL:
            missing.add(target)
    return sorted(missing)


# ---- the tests ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('page', [page_id(p) for p in PAGES])
def test_every_command_and_yaml_block_parses_and_loads(page, tmp_path):
    assert not command_problems(every_page_text()[page], tmp_path)


@pytest.mark.parametrize('page', [page_id(p) for p in PAGES])
def test_every_config_key_named_exists(page):
    assert not config_key_problems(every_page_text()[page]), 'keys lib/config/ does not have'


@pytest.mark.parametrize('page', [page_id(p) for p in PAGES])
def test_every_flag_named_exists(page):
    assert not flag_problems(every_page_text()[page]), 'flags that no script or tool has'


@pytest.mark.parametrize('page', [page_id(p) for p in PAGES])
def test_every_file_tool_and_link_named_exists(page):
    assert not path_problems(every_page_text()[page], page)


def test_the_readme_runs_many_commands_of_ours():
    commands = [c for c in shell_commands((REPO / 'README.md').read_text()) if script_and_argv(c)]
    assert len(commands) >= 10


def test_the_checks_find_each_kind_of_mistake(tmp_path):
    page = """Text with `SUPERNET.NOT_A_KEY`, `AUTO_RESUME True`, `--no-such-flag`, `--cfg`, `tools/nope.py`,
`configs/retrain/<N>.yaml`, [a link](docs/missing.md) and [one](docs/algorithm.md).

```bash
python train.py --cfg configs/train.yaml --bogus
python tools/flops_table.py --budgets 0-600 0-200
python -m torch.distributed.launch --nproc_per_node=8 ./retrain.py --cfg ./configs/retrain.yaml NO_SUCH_KEY 3
python test.py --cfg configs/nope.yaml --cfg output/run/best_arch.yaml    # output/: written by an earlier command
```

```yaml
SUPERNET:
  FLOPS_MAXIMUMX: 3
```
"""
    problems = command_problems(page, tmp_path)
    assert len(problems) == 4
    assert 'train.py --cfg configs/train.yaml --bogus: its parser refused' in problems[0]
    assert 'unknown config key NO_SUCH_KEY' in problems[1]
    assert problems[2].endswith('no config file configs/nope.yaml')
    assert 'unknown config key SUPERNET.FLOPS_MAXIMUMX' in problems[3]
    assert config_key_problems(page) == ['SUPERNET.NOT_A_KEY']
    assert flag_problems(page) == ['--no-such-flag']
    assert path_problems(page, 'README.md') == ['configs/nope.yaml', 'docs/missing.md', 'tools/nope.py']


def test_every_page_under_docs_is_linked_from_the_readme():
    readme = (REPO / 'README.md').read_text()
    linked = {target.split('#')[0] for target in re.findall(r'\]\(([^)\s]+)\)', readme)}
    unlinked = [f'docs/{page.name}' for page in (REPO / 'docs').glob('*.md') if f'docs/{page.name}' not in linked]
    assert not unlinked, f'README.md does not link {unlinked}'


def test_the_readme_is_short_and_leads_with_the_two_commands():
    readme = (REPO / 'README.md').read_text()
    assert len(readme.splitlines()) <= 220
    first_block = next(blocks(readme, ('bash',)))
    assert 'python train.py --cfg configs/demo/train.yaml' in first_block and 'pytest' in first_block
    assert readme.index('```bash') < readme.index('\n## ')


def test_the_config_page_is_the_generated_one():
    reference = load_script('tools/config_reference.py')
    assert (REPO / 'docs' / 'config.md').read_text() == reference.render(), \
        f'docs/config.md is stale: {reference.REGENERATE}'
