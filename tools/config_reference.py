"""Write the configuration reference (docs/config.md) from the config tree itself: every key of
lib.config.get_defaults(), its default, the values it may take (lib.config_checks), whether a resumed run may
change it (lib.config.RESUME_MAY_CHANGE) and its one line of help, the ``# comment`` on the key's line in
lib/config.py.

    python tools/config_reference.py                           # print the page
    python tools/config_reference.py --write docs/config.md    # regenerate it
    python tools/config_reference.py --check docs/config.md    # exit status 1 when the page is stale
"""
import argparse
import ast
import io
import os
import sys
import tokenize
from typing import Dict, Iterator, List, Tuple

import lib.config
from lib.config import RESUME_MAY_CHANGE, get_defaults
from lib.config_checks import allowed_values
from lib.engine.guard import exit_on_error
from lib.errors import CreamError
from lib.fileio import write_text_atomic

CONFIG_SOURCE = lib.config.__file__
STALE_STATUS = 1
REGENERATE = 'python tools/config_reference.py --write docs/config.md'


class MissingHelpError(CreamError):
    """A config key without its one line of help in lib/config.py."""


def leaf_keys(node, prefix: str = '') -> Iterator[Tuple[str, object]]:
    """(dotted key, default) of every leaf of a config tree, in the order lib/config.py defines them."""
    for key, value in node.items():
        if hasattr(value, 'items'):
            yield from leaf_keys(value, f'{prefix}{key}.')
        else:
            yield f'{prefix}{key}', value


def _dotted_target(node: ast.expr) -> str:
    """'DATASET.BATCH_SIZE' for the assignment target ``_C.DATASET.BATCH_SIZE``; '' for any other target."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return '.'.join(reversed(parts)) if isinstance(node, ast.Name) and node.id == '_C' else ''


def help_comments(source: str) -> Dict[str, str]:
    """Dotted key -> the comment that ends the line of its ``_C.KEY = value`` statement (without '# ')."""
    comments = {token.start[0]: token.string.lstrip('#').strip()
                for token in tokenize.generate_tokens(io.StringIO(source).readline)
                if token.type == tokenize.COMMENT}
    helps = {}
    for statement in ast.parse(source).body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            key = _dotted_target(statement.targets[0])
            if key and statement.end_lineno in comments:
                helps[key] = comments[statement.end_lineno]
    return helps


def may_change_on_resume(key: str) -> bool:
    """Whether AUTO_RESUME accepts a value of ``key`` other than the checkpoint's (a listed section covers its keys)."""
    parts = key.split('.')
    return any('.'.join(parts[:n]) in RESUME_MAY_CHANGE for n in range(1, len(parts) + 1))


def _cell(text: str) -> str:
    return text.replace('|', '\\|')


def reference_rows() -> List[Tuple[str, object, str, bool, str]]:
    """(key, default, allowed values, may change on resume, help) of every key; MissingHelpError names the keys
    whose line in lib/config.py has no comment."""
    with open(CONFIG_SOURCE) as f:
        helps = help_comments(f.read())
    keys = list(leaf_keys(get_defaults()))
    missing = [key for key, _ in keys if not helps.get(key)]
    if missing:
        raise MissingHelpError(f'config keys without help: {", ".join(missing)}; end each one\'s line in '
                               f'lib/config.py with a "# one line of help" comment')
    return [(key, default, allowed_values(key, default), may_change_on_resume(key), helps[key])
            for key, default in keys]


def render() -> str:
    """The page: one table per section of the config tree."""
    lines = ['# Configuration reference', '',
             f'Generated from `lib/config.py` by `{REGENERATE}`; do not edit by hand',
             '(the tests compare it with the config tree). A yaml file given with `--cfg` sets only the keys it names',
             '(`_BASE_: other.yaml` first loads that file, relative to this one, and then overrides it); trailing',
             '`KEY VALUE` pairs on the command line override both. "resume": whether `AUTO_RESUME True` accepts a',
             "value other than the checkpoint's.", '']
    section = None
    for key, default, allowed, resumable, text in reference_rows():
        head = key.split('.')[0] if '.' in key else 'top level'
        if head != section:
            section = head
            lines += ['', f'## {section}', '', '| key | default | allowed | resume | help |', '|---|---|---|---|---|']
        resume = 'may change' if resumable else 'fixed'
        lines.append(f'| `{key}` | `{_cell(repr(default))}` | {_cell(allowed)} | {resume} | {_cell(text)} |')
    return '\n'.join(lines).replace('\n\n\n', '\n\n') + '\n'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--write', metavar='PAGE', help='write the page to this file (atomically)')
    group.add_argument('--check', metavar='PAGE', help='exit with status 1 when this file differs from the page')
    args = parser.parse_args(argv)
    page = render()
    if args.write:
        write_text_atomic(page, args.write)
        print(f'wrote {args.write}')
    elif args.check:
        current = open(args.check).read() if os.path.isfile(args.check) else None
        if current != page:
            print(f'{args.check} is stale: regenerate it with {REGENERATE}', file=sys.stderr)
            return STALE_STATUS
        print(f'{args.check} matches lib/config.py')
    else:
        sys.stdout.write(page)
    return 0


if __name__ == '__main__':
    sys.exit(exit_on_error(main))
