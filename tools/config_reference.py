"""Write the configuration reference (docs/config.md) from the key table itself (lib.config.table.KEYS): every key,
its default, the values it may take, whether a resumed run may change it and its one line of help.

    python tools/config_reference.py                           # print the page
    python tools/config_reference.py --write docs/config.md    # regenerate it
    python tools/config_reference.py --check docs/config.md    # exit status 1 when the page is stale
"""
import argparse
import os
import sys
from typing import Iterator, List, Tuple

from lib.config.table import KEYS
from lib.engine.guard import exit_on_error
from lib.errors import CreamError
from lib.fileio import write_text_atomic

STALE_STATUS = 1
REGENERATE = 'python tools/config_reference.py --write docs/config.md'


class MissingHelpError(CreamError):
    """A config key declared without its one line of help."""


def leaf_keys(node, prefix: str = '') -> Iterator[Tuple[str, object]]:
    """(dotted key, default) of every leaf of a config tree, in the tree's order."""
    for key, value in node.items():
        if hasattr(value, 'items'):
            yield from leaf_keys(value, f'{prefix}{key}.')
        else:
            yield f'{prefix}{key}', value


def _cell(text: str) -> str:
    return text.replace('|', '\\|')


def reference_rows() -> List[Tuple[str, object, str, bool, str]]:
    """(key, default, allowed values, may change on resume, help) of every key, in the table's order;
    MissingHelpError names the keys declared without help."""
    missing = [key.name for key in KEYS if not key.help.strip()]
    if missing:
        raise MissingHelpError(f'config keys without help: {", ".join(missing)}; give each one its line of help in '
                               'its Key(...) in lib/config/keys_*.py')
    return [(key.name, key.default, key.allowed, key.resume, key.help) for key in KEYS]


def render() -> str:
    """The page: one table per section of the config tree."""
    lines = ['# Configuration reference', '',
             f'Generated from the key table in `lib/config/` by `{REGENERATE}`;',
             'do not edit by hand (the tests compare it with the table). A yaml file given with `--cfg` sets only the',
             'keys it names (`_BASE_: other.yaml` first loads that file, relative to this one, and then overrides it);',
             'trailing `KEY VALUE` pairs on the command line override both. "resume": whether `AUTO_RESUME True`',
             "accepts a value other than the checkpoint's.", '']
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
        print(f'{args.check} matches the key table')
    else:
        sys.stdout.write(page)
    return 0


if __name__ == '__main__':
    sys.exit(exit_on_error(main))
