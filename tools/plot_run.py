"""Draw a run folder as one PNG: for a search, the board (FLOPs in the budget's measure, or the predicted latency
under a latency budget, against val prec@1, the chosen path marked, the earlier epochs' boards faded) beside the
training curves of summary.csv; for a retraining run, the curves alone.

    python tools/plot_run.py output/demo_search                      # writes output/demo_search/plot.png
    python tools/plot_run.py output/demo_retrain --out retrain.png
"""
import argparse
import csv
import math
import os
from typing import Dict, List, Optional

import yaml

from lib.checked_io import check_output_file, make_parent, read_json
from lib.engine.guard import exit_on_error
from lib.errors import CreamError
from lib.fileio import atomic_path, write_failed
from lib.search.outputs import BEST_ARCH_FILE, BOARD_FILE, BOARD_HISTORY_FILE, read_board_history

SUMMARY_FILE = 'summary.csv'


class RunFolderError(CreamError):
    """A folder that holds nothing to draw, a file in it that cannot be read, or a picture that cannot be written."""


def _read(path: str, parse):
    """``parse(file)`` of ``path``; a file that does not parse is one RunFolderError naming it."""
    try:
        with open(path, newline='') as f:
            return parse(f)
    except (ValueError, yaml.YAMLError) as err:
        raise RunFolderError(f'{path} cannot be read ({type(err).__name__}: {err}): it is truncated or damaged '
                             '(the run replaces its files whole, so it was changed afterwards, e.g. by a copy cut '
                             'short); copy it again, or let the run write it anew (AUTO_RESUME True)') from None


def _header_and_rows(f):
    reader = csv.DictReader(f)
    rows = list(reader)
    return reader.fieldnames or [], rows


def read_summary(run_dir: str) -> Dict[str, List[float]]:
    """summary.csv as columns of floats (an empty cell, e.g. no distillation loss yet, is NaN)."""
    path = os.path.join(run_dir, SUMMARY_FILE)
    names, rows = _read(path, _header_and_rows)
    damaged = 'copy it again, or let the run write it anew (AUTO_RESUME True)'
    if 'epoch' not in names:
        raise RunFolderError(f'{path} has no epoch column: it is not a summary.csv of train.py or retrain.py; '
                             f'{damaged}')
    for number, row in enumerate(rows, start=2):
        if None in row:
            raise RunFolderError(f'{path} line {number} has more cells than the header: it is damaged; {damaged}')
    columns: Dict[str, List[float]] = {}
    for row in rows:
        for key, text in row.items():
            try:
                value = float(text)
            except (TypeError, ValueError):
                value = math.nan
            columns.setdefault(key, []).append(value)
    return columns


def flops_of(row: dict) -> float:
    """The budget's FLOPs measure of a board row (older runs wrote it as flops_M)."""
    return row['budget_flops_M'] if row.get('budget_flops_M') is not None else row['flops_M']


def budget_measure(board: dict, run_dir: str):
    """(value of a board row, budget bounds or None, axis label) of the budget's measure: the predicted latency
    under a latency budget (SUPERNET.BUDGET_MEASURE latency), else FLOPs."""
    if board.get('budget_measure') == 'latency':
        low, high = board['latency_budget_ms']
        return (lambda row: row['predicted_ms']), (low, high, 'ms'), \
            f'predicted latency (ms)\n{board.get("latency_measured_with", "the latency table")}'
    measure = 'budget_flops_M' if any(r.get('budget_flops_M') is not None for r in board['entries']) else 'flops_M'
    budget = budget_of(run_dir)
    return flops_of, None if budget is None else (*budget, 'MFLOPs'), f'MFLOPs, the budget\'s measure ({measure})'


def chosen_arch(run_dir: str) -> Optional[list]:
    path = os.path.join(run_dir, BEST_ARCH_FILE)
    if not os.path.isfile(path):
        return None
    return (_read(path, yaml.safe_load) or {}).get('INPUT_ARCH')


def budget_of(run_dir: str):
    """(FLOPS_MINIMUM, FLOPS_MAXIMUM) from the run's saved config, or None."""
    path = os.path.join(run_dir, 'config.yaml')
    if not os.path.isfile(path):
        return None
    config = _read(path, yaml.safe_load)
    supernet = config.get('SUPERNET') if isinstance(config, dict) else None
    if not isinstance(supernet, dict):
        raise RunFolderError(f'{path} is not a config.yaml of train.py (no SUPERNET section); copy it again')
    if 'FLOPS_MAXIMUM' not in supernet:
        return None
    return supernet.get('FLOPS_MINIMUM', 0), supernet['FLOPS_MAXIMUM']


def draw_board(ax, run_dir: str) -> None:
    path = os.path.join(run_dir, BOARD_FILE)
    board = read_json(path, dict, 'board', 'copy it again, or let the run write it anew (AUTO_RESUME True)')
    try:
        _draw_board(ax, run_dir, board)
    except (KeyError, TypeError, IndexError, AttributeError) as err:
        raise RunFolderError(f'{path} is not a board.json of train.py (at {type(err).__name__}: {err}); copy it again, '
                             'or let the run write it anew (AUTO_RESUME True)') from None


def _draw_board(ax, run_dir: str, board: dict) -> None:
    rows = board['entries']
    measure_of, budget, xlabel = budget_measure(board, run_dir)
    earlier = []  # (epoch, points) of the epochs before the current one that had validated entries
    for record in read_board_history(os.path.join(run_dir, BOARD_HISTORY_FILE)):
        points = [(measure_of(r), r['val_prec1']) for r in record['entries'] if r.get('val_prec1') is not None]
        if record['epoch'] < board['epoch'] and points:
            earlier.append((record['epoch'], points))
    for i, (epoch, points) in enumerate(earlier):
        last = i == len(earlier) - 1
        ax.scatter(*zip(*points), s=18, color='tab:gray', alpha=0.1 + 0.4 * (i + 1) / len(earlier),  # older: fainter
                   linewidths=0, label=f'earlier boards (epochs {earlier[0][0]}-{epoch})' if last else None)
    validated = [r for r in rows if r.get('val_prec1') is not None]
    if validated:
        ax.scatter([measure_of(r) for r in validated], [r['val_prec1'] for r in validated], s=36, color='tab:blue',
                   label=f'board after epoch {board["epoch"]}', zorder=3)
    unvalidated = [r for r in rows if r.get('val_prec1') is None]
    if unvalidated:
        ax.scatter([measure_of(r) for r in unvalidated], [r['prec1'] for r in unvalidated], s=36, facecolors='none',
                   edgecolors='tab:blue', label='not validated (train prec@1)', zorder=3)
    arch = chosen_arch(run_dir)
    chosen = [r for r in rows if arch is not None and r['arch'] == arch]
    for r in chosen[:1]:
        y = r['val_prec1'] if r.get('val_prec1') is not None else r['prec1']
        ax.scatter([measure_of(r)], [y], s=220, marker='*', color='tab:red', label='chosen (best_arch.yaml)', zorder=4)
    if budget is not None:
        for limit in budget[:2]:
            if limit > 0:
                ax.axvline(limit, color='tab:red', linestyle='--', linewidth=1)
        ax.plot([], [], color='tab:red', linestyle='--', linewidth=1,
                label=f'budget {budget[0]:g}-{budget[1]:g} {budget[2]}')
    ax.set_xlabel(xlabel)
    ax.set_ylabel('val prec@1 (%)')
    ax.set_title(f'prioritized board, {board["resolution"]} px')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc='best')


def draw_curves(ax_loss, ax_prec, columns: Dict[str, List[float]]) -> None:
    epochs = columns.get('epoch', [])
    for ax, suffix, label in ((ax_loss, '_loss', 'loss'), (ax_prec, '_prec1', 'prec@1 (%)')):
        names = [k for k in columns if k.endswith(suffix) and not all(math.isnan(v) for v in columns[k])]
        for name in names:
            ax.plot(epochs, columns[name], marker='o', markersize=3, label=name)
        ax.set_xlabel('epoch')
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if names:
            ax.legend(fontsize=7, loc='best')
    ax_loss.set_title('summary.csv: losses')
    ax_prec.set_title('summary.csv: prec@1')


def plot_run(run_dir: str, out: Optional[str] = None) -> str:
    """Write the PNG (atomically) and return its path; RunFolderError (a CreamError) for what the user can fix."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    has_board = os.path.isfile(os.path.join(run_dir, BOARD_FILE))
    has_summary = os.path.isfile(os.path.join(run_dir, SUMMARY_FILE))
    if not has_summary:
        raise RunFolderError(f'{run_dir!r} has no {SUMMARY_FILE}: give the folder of a train.py or retrain.py run '
                             '(SAVE_PATH/MODEL) after at least one epoch')
    out = out or os.path.join(run_dir, 'plot.png')
    check_output_file(out, '--out')
    image_format = os.path.splitext(out)[1][1:].lower() or 'png'
    panels = 3 if has_board else 2
    fig = Figure(figsize=(5 * panels, 4), dpi=90, layout='constrained')
    if image_format not in fig.canvas.get_supported_filetypes():
        raise RunFolderError(f'--out {out}: matplotlib cannot write .{image_format} files; give a .png (or .pdf, '
                             '.svg) file')
    axes = fig.subplots(1, panels)
    if has_board:
        draw_board(axes[0], run_dir)
    draw_curves(axes[-2], axes[-1], read_summary(run_dir))
    fig.suptitle(f'{"search" if has_board else "training"} run {os.path.basename(os.path.abspath(run_dir))}')
    try:
        with atomic_path(make_parent(out)) as tmp:
            fig.savefig(tmp, format=image_format)
    except CreamError:
        raise
    except OSError as err:
        raise write_failed(out, err, 'give --out a writable place', error_type=RunFolderError) from None
    return out


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('run_dir', help='a run folder (SAVE_PATH/MODEL) of train.py or retrain.py')
    parser.add_argument('--out', default=None, help='PNG to write (default: RUN_DIR/plot.png)')
    args = parser.parse_args(argv)
    out = plot_run(args.run_dir, args.out)
    print(out)
    return out


if __name__ == '__main__':
    exit_on_error(main)  # a user's mistake: one error: line, exit status 2
