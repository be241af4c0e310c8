"""Throughput of the search step, its fixed-network ceiling, retraining and evaluation, on synthetic data.

    python tools/benchmark.py --device cpu --batch-size 32 --image-size 64 --steps 20 --warmup 3 --interleave
    python tools/benchmark.py --device cuda --batch-size 128 --image-size 224 --amp bf16 --channels-last

Phases (``--phases``, comma-separated):
  search-plain           the supernet search step before META_STA_EPOCH (CE only) on the FIXED ``--path``
  search-plain-resample  the same with a new path from the sampler every step (also with ``--resample``), or
                         the paths of ``--paths-file`` in turn
  search-kd              the step after META_STA_EPOCH with a full board (POOL_SIZE entries of random probes,
                         sampled paths, PICK_METHOD meta): teacher selection + distillation + board decision
  search-meta            one meta-matching update (img/s counts the batch it is given)
  static                 ``--path`` built as a fixed child network, same optimizer and loss: the ceiling
  retrain                the released ``--selection`` network, the retrain loop's steps (its recipe)
  eval                   inference of the released network through the evaluator

The search phases run the training code itself (``lib.search.step.search_step``), the static phase
``lib.search.static_step.static_step``, the retrain and eval phases ``lib.retrain.step.retrain_one_epoch`` and
``lib.engine.evaluate.evaluate``; ``lib.bench`` builds the phases, ``lib.engine.step_timing`` times them. Each
phase prints one JSON line (img/s, ms per step, peak GPU memory in GiB, reset between phases); a table follows
the last (this tool: its command line and that report). With
``--interleave`` the search and static phases are timed in rounds, one step of each per round: on a shared,
noisy machine (the CPU figures) their ratios are then measured under the same load.
"""
import argparse
import dataclasses
import json
from typing import Dict, List, Optional, Sequence

import torch

from lib.bench.phases import Phase, eval_phase, retrain_phase, run_interleaved, run_phase
from lib.bench.search_phases import SEARCH_PHASES, prepare_search_phase, prepare_static_phase
from lib.bench.settings import (AMP_DTYPES, DEFAULT_PATH, DEFAULT_SEARCH_IMAGE_SIZE, BenchmarkError, BenchSettings,
                                compare_label, parse_path, read_paths)
from lib.checked_io import check_output_file, file_error, int_at_least, make_parent
from lib.engine.guard import exit_on_error
from lib.engine.step_timing import reset_memory
from lib.models.childnet import resolve_selection

PHASES = SEARCH_PHASES + ('static', 'retrain', 'eval')
DEFAULT_PHASES = 'search-plain,search-kd,search-meta,static,retrain,eval'


# ---- the report -----------------------------------------------------------------------------------
RESULT_KEYS = ('phase', 'img_per_sec', 'ms_per_step', 'peak_gib', 'image_size', 'device', 'batch_size', 'amp',
               'channels_last', 'compile')  # what ``table`` reads of a result line


def read_jsonl(paths: Sequence[str]) -> List[Dict]:
    """--table-from: the result lines of --jsonl files; a missing file or a damaged line is one error naming it."""
    results = []
    fix = 'give files written by --jsonl'
    for path in paths:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise file_error(path, f'cannot be read ({type(err).__name__}: {getattr(err, "strerror", None) or err})',
                             fix) from None
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                result = json.loads(line)
            except ValueError:
                raise file_error(path, f'line {number} is not JSON (truncated or damaged)', fix) from None
            if not isinstance(result, dict) or any(key not in result for key in RESULT_KEYS):
                raise file_error(path, f'line {number} is not a benchmark result (it needs {", ".join(RESULT_KEYS)})',
                                 fix)
            results.append(result)
    return results


def setting(result: Dict) -> str:
    return (f'{result["device"]} b{result["batch_size"]} amp={result["amp"]}'
            f'{" cl" if result["channels_last"] else ""}{" compile" if result["compile"] else ""}')


def ratios(results: Sequence[Dict]) -> Dict[str, float]:
    """img/s ratios between phases measured with the same setting (and of their median steps, when known)."""
    speeds: Dict[str, Dict[str, Dict]] = {}
    for r in results:
        speeds.setdefault(setting(r), {})[r['phase']] = r
    out = {}
    for name, by_phase in speeds.items():
        suffix = '' if len(speeds) == 1 else f' ({name})'
        labels = sorted({phase[phase.index('@'):] for phase in by_phase if '@' in phase})
        pairs = [('search-kd', 'search-plain'), ('search-plain', 'static'), ('search-plain-resample', 'search-plain')]
        for label in labels:  # --compare-cfg: the same ratios under that config, and each phase against ours
            pairs += [(f'search-kd{label}', f'search-plain{label}'), (f'search-plain{label}', 'static')]
            pairs += [(phase, phase[:phase.index('@')]) for phase in by_phase if phase.endswith(label)]
        for num, den in pairs:
            if num in by_phase and den in by_phase:
                a, b = by_phase[num], by_phase[den]
                out[f'{num}/{den}{suffix}'] = round(a['img_per_sec'] / b['img_per_sec'], 3)
                if a.get('img_per_sec_median') and b.get('img_per_sec_median'):
                    out[f'{num}/{den} median{suffix}'] = round(a['img_per_sec_median'] / b['img_per_sec_median'], 3)
    return out


def table(results: Sequence[Dict]) -> str:
    lines = [f'{"phase":<22} {"img/s":>9} {"median":>9} {"ms/step":>9} {"peak GiB":>9} {"px":>4}  setting']
    for r in results:
        peak = '-' if r['peak_gib'] is None else f'{r["peak_gib"]:.2f}'
        median = '-' if r.get('img_per_sec_median') is None else f'{r["img_per_sec_median"]:.1f}'
        lines.append(f'{r["phase"]:<22} {r["img_per_sec"]:>9.1f} {median:>9} {r["ms_per_step"]:>9.1f} {peak:>9} '
                     f'{r["image_size"]:>4}  {setting(r)}')
    lines += [f'{name}: {value:.3f}' for name, value in ratios(results).items()]
    return '\n'.join(lines)


# ---- entry point ----------------------------------------------------------------------------------
def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cfg', nargs='*', default=None,
                        help='yaml config(s) of the search phases, e.g. configs/train_corrected.yaml for our '
                             'corrections (default: the defaults of lib/config/, the original\'s behaviour)')
    parser.add_argument('--clock', choices=('wall', 'cpu'), default='wall',
                        help="with --interleave on the CPU: 'cpu' times steps by this process's CPU time (use with "
                             "--threads 1 on a busy machine)")
    parser.add_argument('--compare-cfg', nargs='+', default=None, metavar='YAML',
                        help='with --interleave: also time the search phases under these configs in the same '
                             'rounds, e.g. configs/train_corrected.yaml (phases named search-kd@train_corrected)')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--image-size', type=int, default=None,
                        help=f'search/static phases: default {DEFAULT_SEARCH_IMAGE_SIZE}; retrain/eval: the '
                             'released network\'s native resolution unless given')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--amp', choices=tuple(AMP_DTYPES), default='none')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile: each supernet block on its own, fixed networks whole')
    parser.add_argument('--steps', type=int, default=10, help='timed steps per phase')
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps before them')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--path', default=DEFAULT_PATH, help='JSON student path (its lengths set the supernet)')
    parser.add_argument('--resample', action='store_true', help='also run search-plain-resample')
    parser.add_argument('--paths-file', default=None, metavar='JSON',
                        help='search-plain-resample replays these paths in turn instead of sampling (see read_paths)')
    parser.add_argument('--selection', default='287', help='released network of the retrain/eval phases')
    parser.add_argument('--num-classes', type=int_at_least(1), default=1000)
    parser.add_argument('--pool-size', type=int_at_least(1), default=10, help='board entries of search-kd/search-meta')
    parser.add_argument('--slice', type=int_at_least(1), default=4, help='SUPERNET.SLICE: probe images per board entry')
    parser.add_argument('--no-ema', action='store_true', help='retrain without the EMA update')
    parser.add_argument('--threads', type=int_at_least(0), default=0, help='torch CPU threads (0: torch default)')
    parser.add_argument('--phases', default=DEFAULT_PHASES, help=f'comma-separated, from {", ".join(PHASES)}')
    parser.add_argument('--interleave', action='store_true',
                        help='time the search and static phases in rounds, one step of each per round (steadier '
                             'ratios on a shared machine; no per-phase peak memory)')
    parser.add_argument('--sync-debug', action='store_true',
                        help='CUDA: count the host syncs of the search steps (torch sync debug mode; slower)')
    parser.add_argument('--jsonl', default=None, help='also append each JSON line to this file')
    parser.add_argument('--table-from', nargs='+', default=None, metavar='JSONL',
                        help='run nothing: print the table of JSON lines written by --jsonl')
    args = parser.parse_args(argv)
    phases = [p.strip() for p in args.phases.split(',') if p.strip()]
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        parser.error(f'unknown phase(s) {unknown}; choose from {", ".join(PHASES)}')
    if args.resample and 'search-plain-resample' not in phases:
        phases.insert(phases.index('search-plain') + 1 if 'search-plain' in phases else 0, 'search-plain-resample')
    args.phases = phases
    try:
        args.replay_paths = read_paths(args.paths_file) if args.paths_file else None
    except BenchmarkError as err:
        parser.error(str(err))
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1:
        parser.error('--steps and --batch-size must be >= 1, --warmup >= 0')
    if args.image_size is not None and args.image_size < 32:
        parser.error('--image-size must be at least 32 (five stride-2 stages)')
    if 'search-meta' in phases and args.batch_size < 2 * args.slice:
        parser.error(f'search-meta splits two slices off each batch: --batch-size must be >= 2 x --slice '
                     f'= {2 * args.slice}')
    try:
        resolve_selection(args.selection)
        args.student_path = parse_path(args.path)
    except ValueError as err:
        parser.error(str(err))
    if args.clock == 'cpu' and (not args.interleave or args.device != 'cpu'):
        parser.error('--clock cpu needs --interleave and --device cpu')
    if args.compare_cfg and not args.interleave:
        parser.error('--compare-cfg needs --interleave (the two configs are timed in the same rounds)')
    return args


def main(argv: Optional[List[str]] = None) -> List[Dict]:
    """Run the phases of ``argv``; prints and returns one result dict per phase."""
    args = parse_args(argv)
    if args.table_from:
        results = read_jsonl(args.table_from)
        print(table(results), flush=True)
        return results
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise BenchmarkError('--device cuda but no CUDA GPU is visible; use --device cpu')
    device = torch.device(args.device, torch.cuda.current_device()) if args.device == 'cuda' else torch.device('cpu')
    if args.jsonl:
        check_output_file(args.jsonl, '--jsonl')
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = BenchSettings(**{field.name: getattr(args, field.name) for field in dataclasses.fields(BenchSettings)})
    path, search_size = args.student_path, settings.search_image_size

    def prepare(name: str) -> Phase:
        if name == 'static':
            return prepare_static_phase(settings, device, path, search_size)
        # Under --cfg the search phases carry the config's name (search-kd@train_corrected), as --compare-cfg's.
        return prepare_search_phase(name, settings, device, path, search_size, label=compare_label(args.cfg or []))

    results = []

    def emit(result: Dict) -> None:
        line = json.dumps(result)
        print(line, flush=True)
        if args.jsonl:
            with open(make_parent(args.jsonl), 'a') as f:
                f.write(line + '\n')
        results.append(result)

    step_phases = [name for name in args.phases if name.startswith('search') or name == 'static']
    if args.interleave:
        reset_memory(device)
        prepared = [prepare(name) for name in step_phases]
        if args.compare_cfg:
            label = compare_label(args.compare_cfg)
            prepared += [prepare_search_phase(name, settings, device, path, search_size, args.compare_cfg, label)
                         for name in step_phases if name.startswith('search')]
        for result in run_interleaved(prepared, settings, device):
            emit(result)
    for name in args.phases:
        if args.interleave and name in step_phases:
            continue
        reset_memory(device)
        if name in step_phases:
            emit(run_phase(prepare(name), settings, device))
        elif name == 'retrain':
            emit(retrain_phase(settings, device))
        else:
            emit(eval_phase(settings, device))
    print(table(results), flush=True)
    return results


if __name__ == '__main__':
    exit_on_error(main)  # a user's mistake: one error: line, exit status 2
