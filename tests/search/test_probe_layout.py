"""SUPERNET.PROBE_CPU_CHANNELS_LAST: under the defaults the scores that pick the teacher are the original's
arithmetic, the probes' forward in their own (contiguous, NCHW) float32 layout, bit for bit; switched on, the CPU
scores them in channels_last (faster), which changes their rounding."""
import copy
import random

import torch

from lib.models.grouped_bn import grouped_batch_norm
from lib.search import step as search_steps
from lib.search.probes import probabilities
from tests.support.tiny_search import SLICE, STUDENT, batch, make_search_parts

ENTRIES = 6


def distillation_scores(monkeypatch, *overrides):
    """The MMN's scores of the board entries in one distillation step under ``overrides``, the same scores
    computed from a copy of the supernet taken before the step, its probes in the contiguous layout, and whether
    the probe batch reached the supernet's stem contiguous (NCHW)."""
    rng = random.Random(0)
    paths = [tuple((rng.randrange(6),) for _ in range(5)) for _ in range(ENTRIES)]
    session = make_search_parts('SUPERNET.POOL_SIZE', '10', 'SUPERNET.META_STA_EPOCH', '0', *overrides,
                                board_paths=paths)
    board = list(session.board)
    supernet = copy.deepcopy(session.supernet)
    images = torch.cat([entry.probe_images for entry in board]).contiguous()
    assert images.is_contiguous()
    modules = torch.nn.ModuleList([m for _, _, m in supernet.path_modules(STUDENT)] + [supernet.head_drop])
    with torch.no_grad(), grouped_batch_norm(modules, len(board)):
        logits = supernet(images, STUDENT)
        stored = torch.stack([entry.probe_probs for entry in board])
        reference = session.mmn(probabilities(logits).reshape(stored.shape) - stored)

    scored = []
    select = search_steps.select_teacher

    def recording(*args, **kwargs):
        choice = select(*args, **kwargs)
        scored.append(choice.scores.clone())
        return choice
    monkeypatch.setattr(search_steps, 'select_teacher', recording)
    layouts = []
    session.supernet.conv_stem.register_forward_pre_hook(
        lambda _, inputs: layouts.append(inputs[0].is_contiguous()) if len(inputs[0]) == ENTRIES * SLICE else None)
    search_steps.search_step(session, STUDENT, *batch(8), epoch=1)
    assert len(scored) == 1 and len(layouts) == 1
    return scored[0], reference, layouts[0]


def test_default_teacher_scores_are_the_contiguous_float32_ones_bit_for_bit(monkeypatch):
    scores, reference, contiguous = distillation_scores(monkeypatch)
    assert scores.dtype == torch.float32 and contiguous
    assert torch.equal(scores, reference)


def test_channels_last_scoring_is_a_switch(monkeypatch):
    scores, reference, contiguous = distillation_scores(monkeypatch, 'SUPERNET.PROBE_CPU_CHANNELS_LAST', 'True')
    assert not contiguous  # channels_last: oneDNN sums in another order (up to 1e-3 apart here)
    torch.testing.assert_close(scores, reference, rtol=0, atol=1e-2)  # small probe batches: BN amplifies rounding
