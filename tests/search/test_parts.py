"""A search step's parts built in memory from a config (lib/search/parts.py): no run folder, data or log file;
the board holding given entries; the step, the distillation step and the meta update run on them."""
import pytest
import torch

from lib.config import load_config
from lib.search.board import BoardEntry, PrioritizedBoard
from lib.search.flops import build_search_space
from lib.search.parts import SearchConfigError, build_search_parts
from lib.search.step import run_meta_update, search_step

PATHS = (((0,), (1,), (2,), (3,), (4,)), ((5,), (4,), (3,), (2,), (1,)), ((3,), (3,), (3,), (3,), (3,)))


def entries(count, slice_size, image, num_classes):
    generator = torch.Generator().manual_seed(0)
    return [BoardEntry(path=path, prec1=50.0 + rank, board_cost=float(rank),
                       probe_images=torch.randn(slice_size, 3, image, image, generator=generator),
                       probe_probs=torch.softmax(torch.randn(slice_size, num_classes, generator=generator), -1))
            for rank, path in enumerate(PATHS[:count])]


def test_one_step_of_any_budget_in_a_few_lines(repo_root):
    """docs/development.md's example: the 0-14 MFLOPs search of configs/train.yaml at its resolution, a board of two given
    paths: a plain step, a meta-matching update, a distillation step."""
    cfg = load_config([str(repo_root / 'configs' / 'train.yaml')],
                      ['SUPERNET.FLOPS_MAXIMUM', '14', 'DATASET.NUM_CLASSES', '4', 'DATASET.BATCH_SIZE', '4',
                       'SUPERNET.SLICE', '2', 'LR', '0.01', 'META_LR', '0.1'])  # LR 1.0 wrecks a 4-image batch
    space = build_search_space(cfg)
    board = entries(2, cfg.SUPERNET.SLICE, space.resolution, 4)
    parts = build_search_parts(cfg, total_steps=100, board_entries=board)

    assert parts.space == space and parts.macs_table.resolution == space.resolution
    assert parts.supernet.layers_per_stage == space.layers_per_stage and parts.supernet.training
    assert [e.path for e in parts.board] == [PATHS[1], PATHS[0]]  # the board's order: prec1 descending
    assert parts.board[0] is not board[1]  # the board holds copies on the device
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(4, 3, space.resolution, space.resolution, generator=generator)
    target = torch.randint(0, 4, (4,), generator=generator)
    student = ((2,), (2,), (2,), (2,), (2,))
    sums = search_step(parts, student, images, target, epoch=0)  # plain: CE, no board offer
    assert sums[2] == 0 and len(parts.board) == 2
    mmn_before = [p.detach().clone() for p in parts.mmn.parameters()]
    info = run_meta_update(parts, student, images, target, epoch=cfg.SUPERNET.META_STA_EPOCH + 1, step=1)
    assert info['teacher_index'] in (0, 1) and any(
        not torch.equal(a, b) for a, b in zip(mmn_before, parts.mmn.parameters()))
    sums = search_step(parts, student, images, target, epoch=cfg.SUPERNET.META_STA_EPOCH + 1)  # distillation
    assert sums[2] == 4 and torch.isfinite(sums).all()
    assert parts.scheduler.last_epoch == 2 and parts.optimizer.param_groups[0]['lr'] == pytest.approx(cfg.LR * 0.98)
    # Weights depend on SEED only: built again, the same supernet.
    again = build_search_parts(cfg, total_steps=100, space=space, macs_table=parts.macs_table)
    fresh = build_search_parts(cfg, total_steps=100, space=space, macs_table=parts.macs_table)
    assert all(torch.equal(a, b) for a, b in zip(again.supernet.state_dict().values(),
                                                 fresh.supernet.state_dict().values()))


def test_dtype_reaches_the_board_and_bad_input_is_refused(repo_root):
    cfg = load_config(None, ['DATASET.NUM_CLASSES', '3', 'SUPERNET.SLICE', '2', 'SUPERNET.POOL_SIZE', '2',
                             'SUPERNET.FLOPS_MAXIMUM', '14'])
    space = build_search_space(cfg)
    from lib.search.macs_table import MacsTable
    table = MacsTable.build((1, 1, 1, 1, 1), 32, 3)
    parts = build_search_parts(cfg, total_steps=10, space=space, macs_table=table,
                               board_entries=entries(2, 2, 32, 3), dtype=torch.float64)
    assert parts.board[0].probe_images.dtype == parts.board[0].probe_probs.dtype == torch.float64
    assert all(p.dtype == torch.float64 for p in [*parts.supernet.parameters(), *parts.mmn.parameters()])
    with pytest.raises(ValueError, match='more than pool_size 2'):
        build_search_parts(cfg, total_steps=10, space=space, macs_table=table, board_entries=entries(3, 2, 32, 3))
    with pytest.raises(ValueError, match='more than pool_size 1'):
        PrioritizedBoard(1, 5.0, entries=entries(2, 2, 32, 3))
    with pytest.raises(SearchConfigError, match='2 x SUPERNET.SLICE'):
        build_search_parts(load_config(None, ['DATASET.BATCH_SIZE', '6', 'SUPERNET.SLICE', '4']), total_steps=10)


@pytest.mark.parametrize('key', ['COMPILE', 'APEX'])
def test_keys_the_search_does_not_apply_are_named_in_a_warning(repo_root, caplog, key):
    """COMPILE (every path another graph) and APEX (retrain.py's) are not applied by the search: it says so
    rather than ignoring them silently."""
    cfg = load_config([str(repo_root / 'configs' / 'train.yaml')],
                      ['SUPERNET.FLOPS_MAXIMUM', '14', 'DATASET.NUM_CLASSES', '4', key, 'True'])
    with caplog.at_level('WARNING', logger='cream.search'):
        build_search_parts(cfg, total_steps=10)
    assert [r for r in caplog.records if r.getMessage().startswith(f'{key} is not')]
    caplog.clear()
    quiet = load_config([str(repo_root / 'configs' / 'train.yaml')],
                        ['SUPERNET.FLOPS_MAXIMUM', '14', 'DATASET.NUM_CLASSES', '4'])
    with caplog.at_level('WARNING', logger='cream.search'):
        build_search_parts(quiet, total_steps=10)
    assert not [r for r in caplog.records if r.getMessage().startswith(f'{key} is not')]
