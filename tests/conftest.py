"""Shared fixtures: the repository root, the reference folder, tiny generated datasets."""
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / 'shared' / 'reference'
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# One intra-op thread: the tensors here are tiny, and under pytest two OpenMP threads made some float64
# convolutions ~30x slower (measured: the real-supernet finite-difference test, 130 s vs 4 s).
torch.set_num_threads(1)


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope='session')
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip(f'reference material not found at {REFERENCE}')
    return REFERENCE


@pytest.fixture(scope='session')
def official(reference_dir) -> Path:
    """A checkpoint in the released format (14M model, random weights)."""
    return reference_dir / 'checkpoints' / 'cream14_official_format.pth.tar'


@pytest.fixture(scope='session')
def expected(reference_dir) -> dict:
    """What the original outputs for ``official``: input, logits_ema, logits."""
    return torch.load(reference_dir / 'checkpoints' / 'cream14_expected.pt', weights_only=True)


@pytest.fixture(scope='session')
def tiny_imagefolder(tmp_path_factory) -> Path:
    """3 classes x (4 train, 3 val) drawn images of 72 px: enough for one step and one evaluation."""
    from lib.data.demo import make_demo_dataset
    root = tmp_path_factory.mktemp('tiny') / 'data'
    make_demo_dataset(str(root), num_classes=3, train_per_class=4, val_per_class=3, image_size=72)
    return root


@pytest.fixture(autouse=True)
def _restore_determinism():
    """Entry scripts run in-process with DETERMINISTIC True switch deterministic algorithms on globally."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture(autouse=True)
def _cream_logs_reach_caplog():
    """Entry scripts run in-process detach the 'cream' logger from the root; undo that per test."""
    import logging
    yield
    logger = logging.getLogger('cream')
    logger.handlers.clear()
    logger.propagate = True
    logger.setLevel(logging.NOTSET)
