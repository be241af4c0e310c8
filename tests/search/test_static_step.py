"""lib/search/static_step.py: the path as a fixed child network, trained with the search's optimizer groups,
schedule and loss; its sums are the search step's."""
import torch

from lib.config import load_config
from lib.search.static_step import build_static_parts, static_step
from lib.search.step import NUM_SUMS, SearchSums, supernet_lr
from tests.support.tiny_search import NUM_CLASSES, STUDENT, batch


def test_static_step_trains_the_fixed_network_and_returns_the_search_sums():
    cfg = load_config(None, ['DATASET.NUM_CLASSES', str(NUM_CLASSES), 'SUPERNET.SLICE', '2', 'LR', '0.1', 'SEED', '0'])
    parts = build_static_parts(cfg, STUDENT, torch.device('cpu'), total_steps=10)
    assert len(parts.optimizer.param_groups) > 1  # the search's groups, the meta-matching network's last
    before = [p.detach().clone() for p in parts.model.parameters()]
    images, target = batch(8)
    sums = static_step(parts, images, target)
    named = SearchSums(*sums.tolist())
    assert sums.shape == (NUM_SUMS,) and named.images == 8 and named.kd == 0  # no distillation
    assert any(not torch.equal(a, b) for a, b in zip(before, parts.model.parameters()))
    assert supernet_lr(parts.optimizer) < 0.1  # one step of the linear schedule
    again = build_static_parts(cfg, STUDENT, torch.device('cpu'), total_steps=10)
    assert all(torch.equal(a, b) for a, b in zip(before, again.model.parameters()))  # weights from SEED
