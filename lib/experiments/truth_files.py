"""The files of a ground-truth folder (``lib.experiments.ground_truth``), read and checked: ``paths.json`` (the
list of paths, by key), ``results/<key>_seed<s>.json`` (one run's final accuracy) and ``ground_truth.json``
(per path: accuracies by seed, mean, spread). Each goes through ``lib.checked_io.read_json`` and a check of its
content, so that a damaged file is one error naming it and how to recover, never read as missing or null."""
import glob
import os
from typing import Dict

from lib.checked_io import file_error, finite_number, read_json
from lib.models import ops
from lib.models.childnet import ArchError, validate_arch
from lib.models.paths import key_path, path_key
from lib.models.supernet import path_to_arch

PATHS_FILE = 'paths.json'
SUMMARY_FILE = 'ground_truth.json'
_FIX_LIST = 'repair it, or delete it and give the paths again (--sample / --paths)'


def checked_path(value, where: str = 'a path') -> tuple:
    """``value`` (a list of one list of op indices per searchable stage) as a path; ArchError saying what is
    wrong otherwise (the number of stages, an empty stage, an op that is not an integer of 0..NUM_OPS-1)."""
    example = '[[3], [1], [0], [5], [2]]'
    if not isinstance(value, (list, tuple)) or not all(isinstance(stage, (list, tuple)) for stage in value):
        raise ArchError(f'{where} must be a list of {ops.NUM_SEARCH_STAGES} lists of op indices, e.g. {example}; '
                        f'got {value!r}')
    if len(value) != ops.NUM_SEARCH_STAGES:
        raise ArchError(f'{where} has {len(value)} stages; a path has {ops.NUM_SEARCH_STAGES} (the searchable '
                        f'stages), e.g. {example}; got {value!r}')
    if any(isinstance(op, bool) or not isinstance(op, int) for stage in value for op in stage):
        raise ArchError(f'{where} holds an op index that is not an integer: {value!r}')
    try:
        validate_arch(path_to_arch(value))
    except ArchError as err:
        raise ArchError(f'{where}: {err}') from None
    return tuple(tuple(stage) for stage in value)


def _checked_key(key, name: str) -> tuple:
    if not isinstance(key, str):
        raise file_error(name, f'lists {key!r} where a path key such as "3-1.5-0-2-4" belongs', _FIX_LIST)
    try:
        path = key_path(key)
    except ValueError:
        raise file_error(name, f'lists {key!r}, which is not a path key such as "3-1.5-0-2-4"', _FIX_LIST) from None
    try:
        return checked_path([list(stage) for stage in path], f'path {key}')
    except ArchError as err:
        raise file_error(name, f'lists a path that is not one of the space ({err})', _FIX_LIST) from None


def result_file(out: str, path, seed: int) -> str:
    return os.path.join(out, 'results', f'{path_key(path)}_seed{seed}.json')


def read_list(out: str) -> dict:
    """``out``'s paths.json, checked (an empty list when there is none yet)."""
    name = os.path.join(out, PATHS_FILE)
    if not os.path.exists(name):
        return {'paths': [], 'sampled': [], 'notes': []}
    listed = read_json(name, dict, 'the ground truth\'s path list', _FIX_LIST)
    for field in ('paths', 'sampled', 'notes'):
        if not isinstance(listed.get(field), list):
            raise file_error(name, f'has no list "{field}"', _FIX_LIST)
    for key in listed['paths'] + listed['sampled']:
        _checked_key(key, name)
    stray = [key for key in listed['sampled'] if key not in listed['paths']]
    if stray:
        raise file_error(name, f'has sampled paths missing from "paths" (e.g. {stray[0]})', _FIX_LIST)
    return listed


def read_result(name: str) -> dict:
    """A result file of results/, checked: its path, seed and finite val prec@1, and that its name is theirs."""
    fix = 'delete it to train that run again (or copy it again)'
    record = read_json(name, dict, 'ground-truth result', fix)
    seed, prec1 = record.get('seed'), record.get('val_prec1')
    try:
        path = checked_path(record.get('path'), 'its "path"')
    except ArchError as err:
        raise file_error(name, f'is not a result of this space: {err}', fix) from None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise file_error(name, f'has seed {seed!r}, not an integer', fix)
    if not finite_number(prec1) or not 0 <= prec1 <= 100:
        raise file_error(name, f'has val_prec1 {prec1!r}, not a finite accuracy in 0..100', fix)
    if os.path.basename(name) != os.path.basename(result_file('', path, seed)):
        raise file_error(name, f'holds the result of path {path_key(path)} seed {seed}, which belongs in '
                               f'{os.path.basename(result_file("", path, seed))}', fix)
    return record


def check_results(out: str) -> int:
    """Read every result file of ``out`` (before training: a damaged one is named, not taken as done or as
    missing); returns how many there are."""
    for folder in ('results', 'runs', 'logs'):
        if os.path.exists(os.path.join(out, folder)) and not os.path.isdir(os.path.join(out, folder)):
            raise file_error(os.path.join(out, folder), 'is a file where the ground truth keeps a folder',
                             'move it away')
    names = sorted(glob.glob(os.path.join(out, 'results', '*.json')))
    for name in names:
        read_result(name)
    return len(names)


def read_summary(out: str) -> Dict[str, dict]:
    """``out``'s ground_truth.json, checked: per path key, a finite mean accuracy and its seeds' accuracies."""
    name = os.path.join(out, SUMMARY_FILE)
    fix = 'run tools/ground_truth.py on that folder again to write it anew'
    summary = read_json(name, dict, 'ground truth', fix)
    for key, entry in summary.items():
        _checked_key(key, name)
        if not isinstance(entry, dict) or not finite_number(entry.get('mean')) \
                or not isinstance(entry.get('val_prec1'), dict) \
                or not all(finite_number(v) for v in entry['val_prec1'].values()):
            raise file_error(name, f'has no finite accuracies for path {key} (got {entry!r})', fix)
        if not finite_number(entry.get('std', 0.0)):
            raise file_error(name, f'has a std that is not a finite number for path {key}', fix)
    return summary
