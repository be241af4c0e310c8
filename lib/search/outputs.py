"""What a search leaves in its run folder besides checkpoints: ``board.json``, ``board_history.jsonl`` and
``best_arch.yaml``.

``best_arch.yaml`` is a config fragment that retrain.py and test.py take as a second ``--cfg``::

    python retrain.py --cfg configs/demo/retrain.yaml --cfg output/demo_search/best_arch.yaml
"""
import json
import logging
import os
from typing import Callable, Optional, Sequence, Union

from lib.fileio import write_text_atomic
from lib.models.supernet import path_to_arch
from lib.search.board import BoardEntry, PrioritizedBoard
from lib.search.final_pick import Candidate, pick_with_evolution, pick_with_samples
from lib.search.measures import SearchBudget

logger = logging.getLogger('cream.search')

BOARD_FILE = 'board.json'
BOARD_HISTORY_FILE = 'board_history.jsonl'  # one line per epoch: {"epoch", "resolution", "entries"}
BEST_ARCH_FILE = 'best_arch.yaml'


def board_rows(board: PrioritizedBoard, budget: SearchBudget) -> list:
    """One row per entry, best first: path (searchable stages), arch (all 7 stages), train prec1, val prec1 (None
    until validated), the board's measure (predicted ms first under a latency budget), MFLOPs in the board's and in
    the budget's FLOPs measure, real MMACs, M params."""
    return [{'rank': rank, 'path': row['path'], 'arch': path_to_arch(row['path']), 'prec1': row['prec1'],
             'val_prec1': row['val_prec1'], **budget.columns(row['board_cost'], row['path']),
             'budget_flops_M': budget.space.budget_flops(row['path']), 'macs_M': row['macs'], 'params_M': row['params']}
            for rank, row in enumerate(board.to_rows())]


def write_board_json(board: PrioritizedBoard, path: str, budget: SearchBudget, *, epoch: int,
                     flops_budget: Sequence[float] = ()) -> None:
    """board.json: the run's position and one entry per line (best first), so that a diff shows moves;
    ``flops_budget``: FLOPS_MINIMUM, FLOPS_MAXIMUM."""
    head = {'epoch': int(epoch), 'resolution': int(budget.space.resolution), 'pool_size': board.pool_size,
            'flops_budget_M': [float(b) for b in flops_budget], **budget.record(), 'measures': budget.measures_text()}
    rows = board_rows(board, budget)
    lines = [json.dumps(row) for row in rows]
    entries = '[]' if not lines else '[\n  ' + ',\n  '.join(lines) + '\n ]'
    write_text_atomic(json.dumps(head)[:-1] + ',\n "entries": ' + entries + '}\n', path)
    write_board_history(os.path.join(os.path.dirname(path), BOARD_HISTORY_FILE), dict(head, entries=rows))


def read_board_history(path: str) -> list:
    """The epochs' boards in order (an unreadable line, e.g. from an older crash, is skipped)."""
    if not os.path.isfile(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get('epoch'), int):
                records.append(record)
    return records


def write_board_history(path: str, record: dict) -> None:
    """Add this epoch's board to the history. The file is rewritten atomically; lines of this epoch or later
    (left by a run that resumed from an earlier checkpoint) are dropped first."""
    kept = [r for r in read_board_history(path) if r['epoch'] < record['epoch']]
    write_text_atomic(''.join(json.dumps(r) + '\n' for r in kept + [record]), path)


def choose_final_entry(board: PrioritizedBoard, budget_cost: Callable, minimum: float,
                       maximum: float) -> Optional[BoardEntry]:
    """The board entry with the best val prec1 whose cost in the budget's measure (``budget_cost(path)``) lies
    within [minimum, maximum] (e.g. FLOPS_MINIMUM/MAXIMUM). The original had no final pick.

    Entries never validated (SUPERNET.EVAL_BOARD False) rank by their train prec1 instead; ties go to
    the lower board cost. None when no entry is within the budget (or the board is empty)."""
    within = [entry for entry in board if minimum <= budget_cost(entry.path) <= maximum]
    if not within:
        return None

    def key(entry: BoardEntry):
        score = entry.val_prec1 if entry.val_prec1 is not None else entry.prec1
        return (-score, entry.board_cost)

    return min(within, key=key)


def train_prec1_text(entry) -> str:
    """A board path's train prec1; a sampled one (lib.search.final_pick) was never trained as a board path."""
    return 'n/a (sampled at the end)' if entry.prec1 is None else f'{entry.prec1:.3f}'


def _inline_list(values: Sequence) -> str:
    return '[' + ', '.join(_inline_list(v) if isinstance(v, (list, tuple)) else str(v) for v in values) + ']'


def best_arch_yaml(entry: Union[BoardEntry, Candidate], budget: SearchBudget, *, epoch: int, run_dir: str) -> str:
    """The config fragment of ``entry``, a board entry or a sampled candidate (see the module docstring)."""
    resolution = budget.space.resolution
    val = 'not validated' if entry.val_prec1 is None else f'{entry.val_prec1:.3f}'
    params = 'n/a' if entry.params is None else f'{entry.params:.3f}M'
    macs = 'n/a' if entry.macs is None else f'{entry.macs:.2f}M'
    arch_file = os.path.join(run_dir, BEST_ARCH_FILE)
    return (
        f'# Best {getattr(entry, "source", "board")} path of the search in {run_dir} (after epoch {epoch}):\n'
        f'#   path {[list(stage) for stage in entry.path]}\n'
        + budget.best_arch_lines(entry.path, entry.board_cost, arch_file) +
        f'#   real MACs {macs} at {int(resolution)} px\n'
        f'#   params {params}  val prec1 {val}  train prec1 {train_prec1_text(entry)}\n'
        f'# Retrain it:  python retrain.py --cfg configs/retrain.yaml --cfg {arch_file}\n'
        '#   (the demo: --cfg configs/demo/retrain.yaml); test.py takes this file the same way\n'
        'MODEL_SELECTION: -1\n'
        f'INPUT_ARCH: {_inline_list(path_to_arch(entry.path))}\n'
        'NET:\n'
        '  # a searched single-layer stage keeps its searched op (not the released nets\' default op)\n'
        '  SINGLE_LAYER_DEFAULT_OP: False\n'
        'DATASET:\n'
        f'  IMAGE_SIZE: {int(resolution)}  # the search resolution\n'
    )


def write_best_arch(entry: Union[BoardEntry, Candidate], path: str, budget: SearchBudget, *, epoch: int,
                    run_dir: str) -> None:
    write_text_atomic(best_arch_yaml(entry, budget, epoch=epoch, run_dir=run_dir), path)


# ---- at the end of an epoch and of the search (the session of lib.search.builder) ---------------------
def log_board(session, epoch: int) -> None:
    if len(session.board) == 0:
        logger.info('board after epoch %d: empty%s', epoch,
                    f' (it fills from epoch {session.cfg.SUPERNET.META_STA_EPOCH + 1} on)'
                    if epoch <= session.cfg.SUPERNET.META_STA_EPOCH else '')
        return
    space, budget = session.space, session.budget
    logger.info('board after epoch %d (%d paths; %s):', epoch, len(session.board), budget.board_header())
    for index, entry in enumerate(session.board):
        val = 'n/a' if entry.val_prec1 is None else f'{entry.val_prec1:.3f}'
        logger.info('  #%d %s  prec1 %.3f  val prec1 %s  %sboard FLOPs %.2fM  budget FLOPs %.2fM  MACs %.2fM  '
                    '%.3f M params', index, [list(s) for s in entry.path], entry.prec1, val,
                    budget.lead_text(entry.path, '  '), space.board_flops(entry.path), space.budget_flops(entry.path),
                    entry.macs or 0.0, entry.params or 0.0)


def write_final_arch(session, epoch: int) -> Optional[Union[BoardEntry, Candidate]]:
    """best_arch.yaml (main rank) from the board, with SUPERNET.FINAL_PICK_SAMPLES from the board and sampled
    paths, or with SUPERNET.FINAL_PICK evolution by an evolutionary search (``lib.search.final_pick``); returns the
    chosen entry, or None (and a warning) when there is none. The search's budget decides what is within it."""
    cfg, board, space, budget = session.cfg, session.board, session.space, session.budget
    name = budget.pick_words
    if cfg.SUPERNET.FINAL_PICK == 'evolution':
        entry = pick_with_evolution(session, epoch)
        name += ', by an evolutionary search from the board\'s paths, BN re-estimated'
    elif cfg.SUPERNET.FINAL_PICK_SAMPLES > 0:
        entry = pick_with_samples(session, epoch)
        name += f', among the board and {cfg.SUPERNET.FINAL_PICK_SAMPLES} sampled paths, BN re-estimated'
        if entry is None:
            logger.warning('neither a board path nor a sampled path lies within the %s: no %s written', name,
                           BEST_ARCH_FILE)
            return None
    elif len(board) == 0:
        logger.warning('the board is empty after the last epoch (the board fills only after SUPERNET.META_STA_EPOCH '
                       '= %d; EPOCHS is %d): no %s written. Run more epochs than META_STA_EPOCH, or let the final '
                       'pick score sampled paths (SUPERNET.FINAL_PICK_SAMPLES).',
                       cfg.SUPERNET.META_STA_EPOCH, cfg.EPOCHS, BEST_ARCH_FILE)
        return None
    else:
        entry = choose_final_entry(board, budget.measure.cost, budget.minimum, budget.maximum)
    if entry is None:
        entry = choose_final_entry(board, budget.measure.cost, float('-inf'), float('inf'))
        logger.warning('%s', budget.outside_warning([budget.measure.cost(e.path) for e in board], BEST_ARCH_FILE))
    path = os.path.join(session.run_dir, BEST_ARCH_FILE)
    if session.dist.is_main:
        write_best_arch(entry, path, budget, epoch=epoch, run_dir=session.run_dir)
    val = 'n/a' if entry.val_prec1 is None else f'{entry.val_prec1:.3f}'
    logger.info('best architecture %s (best val prec1 within the %s): %sbudget FLOPs %.2fM, board FLOPs %.2fM, '
                'MACs %.2fM at %d px, %.3f M params, val prec1 %s (train prec1 %s) -> %s',
                [list(s) for s in entry.path], name, budget.pick_text(entry.path), space.budget_flops(entry.path),
                space.board_flops(entry.path), entry.macs or 0.0, space.resolution, entry.params or 0.0, val,
                train_prec1_text(entry), path)
    return entry
