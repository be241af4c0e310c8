"""What a tool checks before any work: the files it reads, the places it writes, its numeric arguments.

A tool (``tools/*.py``) keeps the entry scripts' promise with three things from here and one from
``lib.engine.guard``:

* ``read_json(path, what=..., fix=...)`` reads a JSON file the user gave or a results folder holds. A
  missing, empty, truncated or non-JSON file, a NaN or infinity in it (strict JSON has none; ``json`` would
  accept them) or a top level of the wrong type is one ``InputFileError`` naming the file, what is wrong
  and ``fix``. ``file_error(path, problem, fix)`` makes the same one-line error for what the tool's own
  validation of the content finds (a missing key, a value out of range), and ``finite_number`` checks one
  value.
* ``check_output_file(path, option)`` / ``check_output_folder(path, option)``: before the work, that the
  output can be written there (the path is not a folder or a file in the way, its nearest existing folder
  takes files); nothing is created. ``check_not_an_input(path, option, inputs)``: the output would not replace
  a file the tool reads. ``make_parent(path)`` creates the missing folders when the result is written.
* ``int_at_least(n)`` / ``fraction_between(low, high)``: argparse ``type=`` callables, so that an
  out-of-range number is argparse's usage error (exit status 2) before anything runs.

A tool's ``__main__`` is ``exit_on_error(main)`` (``lib.engine.guard``): every ``CreamError`` (these
included) becomes one ``error: ...`` line on stderr and exit status 2; anything else keeps its traceback,
as a bug should.
"""
import argparse
import json
import math
import os
from typing import Any, Optional, Tuple, Type, Union

from lib.errors import CreamError, InputFileError, OutputError
from lib.fileio import probe_writable, write_failed


def file_error(path: str, problem: str, fix: str = '', what: str = '') -> InputFileError:
    """The one-line error about an input file: '<what> <path> <problem>; <fix>'."""
    return InputFileError(f'{what + " " if what else ""}{path} {problem}' + (f'; {fix}' if fix else ''))


def _reject_constant(name: str):
    raise ValueError(f'it holds {name}, which strict JSON has not (a number that is not finite)')


def read_json(path: str, expect: Union[Type, Tuple[Type, ...]] = dict, what: str = '', fix: str = '') -> Any:
    """The parsed JSON of ``path``, whose top level is an ``expect``; any defect is one InputFileError naming
    the file (``what``: e.g. 'ground-truth result'; ``fix``: what the user should do about it)."""
    if not os.path.exists(path):
        raise file_error(path, 'not found', fix, what)
    if os.path.isdir(path):
        raise file_error(path, 'is a folder, not a JSON file', fix, what)
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise file_error(path, f'cannot be read ({type(err).__name__}: {getattr(err, "strerror", None) or err})',
                         fix, what) from None
    if not text.strip():
        raise file_error(path, 'is empty (a write cut short, or an empty file in its place)', fix, what)
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise file_error(path, f'is not valid JSON, truncated or damaged ({err.msg}: line {err.lineno} column '
                               f'{err.colno})', fix, what) from None
    except ValueError as err:
        raise file_error(path, f'is not strict JSON: {err}', fix, what) from None
    if not isinstance(data, expect):
        wanted = ' or '.join(_json_type(t) for t in (expect if isinstance(expect, tuple) else (expect,)))
        raise file_error(path, f'holds {_json_type(type(data))} where {wanted} belongs', fix, what)
    return data


def _json_type(kind: type) -> str:
    return {dict: 'an object', list: 'a list', str: 'a string', int: 'an integer', float: 'a number',
            bool: 'true/false', type(None): 'null'}.get(kind, kind.__name__)


def finite_number(value: Any) -> bool:
    """True for an int or float that is finite (not a bool, not None, not a string)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _nearest_existing(folder: str) -> str:
    while folder and not os.path.exists(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return folder


def _writable_folder_error(folder: str, option: str, path: str) -> Optional[OutputError]:
    """Why no file can be written into ``folder`` (which may not exist yet), or None."""
    existing = _nearest_existing(folder)
    if not os.path.isdir(existing):
        return OutputError(f'cannot write {path}: {existing} is a file, not a folder; choose a writable folder for '
                           f'{option}')
    try:
        if existing == folder:
            probe_writable(folder)  # a real file: os.access says yes to root on a read-only mount
        elif not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError(13, 'Permission denied')
    except OSError as err:
        return write_failed(path, err, f'choose a writable folder for {option} (the nearest existing one, {existing}, '
                            'takes no files)')
    return None


def check_output_file(path: str, option: str = '--out') -> None:
    """Before any work: a file can be written (atomically, beside itself) at ``path``; creates nothing but a
    probe file it removes at once."""
    if not path:
        raise OutputError(f'{option} is empty; give the file to write')
    if os.path.isdir(path):
        raise OutputError(f'{option} {path} is a folder; give the name of a file to write (in it, or elsewhere)')
    error = _writable_folder_error(os.path.dirname(os.path.abspath(path)), option, path)
    if error is not None:
        raise error


def check_not_an_input(path: str, option: str, inputs) -> None:
    """Before any work: the output ``path`` is none of the files the tool reads (``inputs``): writing it would
    replace what the results were computed from."""
    target = os.path.realpath(path)
    for name in inputs:
        if name and os.path.realpath(name) == target:
            raise OutputError(f'{option} {path} is {name}, which this run reads; write the output elsewhere')


def check_output_folder(path: str, option: str = '--out', empty: bool = False) -> None:
    """Before any work: ``path`` is a folder (or can be made one) that takes files; ``empty``: one that does not
    exist or holds nothing (a tool that writes a new tree refuses to mix it into another)."""
    if not path:
        raise OutputError(f'{option} is empty; give the folder to write')
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(f'{option} {path} is a file, not a folder; give a folder')
    if empty and os.path.isdir(path) and os.listdir(path):
        raise OutputError(f'{option} {path} exists and is not empty; give a new folder (nothing was written)')
    error = _writable_folder_error(os.path.abspath(path), option, path)
    if error is not None:
        raise error


def make_parent(path: str) -> str:
    """Create the folder ``path`` goes in (checked before by ``check_output_file``); returns ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return path


def int_at_least(minimum: int):
    """An argparse ``type``: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f'must be at least {minimum}; got {value}')
        return value
    parse.__name__ = f'integer >= {minimum}'
    return parse


def fraction_between(low: float, high: float):
    """An argparse ``type``: a finite number strictly between ``low`` and ``high``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
        if not (math.isfinite(value) and low < value < high):
            raise argparse.ArgumentTypeError(f'must lie strictly between {low:g} and {high:g}; got {text}')
        return value
    parse.__name__ = f'number in ({low:g}, {high:g})'
    return parse


__all__ = ['CreamError', 'InputFileError', 'OutputError', 'read_json', 'file_error', 'finite_number',
           'check_output_file', 'check_not_an_input', 'check_output_folder', 'make_parent', 'int_at_least',
           'fraction_between']
