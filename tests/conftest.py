"""Shared fixtures: the repository root, the vendored reference facts, released-format checkpoints written
here, tiny generated datasets (tests/support/demo_data.py)."""
import signal
import socket
from pathlib import Path

import pytest
import torch

from tests.support import process_guard
from tests.support.demo_data import SharedDemoImageFolders
from tests.support.paths import REFERENCE, REPO
from tests.support.processes import kill_leftovers
from tests.support.released_checkpoints import (recipe_input, recipe_weights, released_logits,
                                                with_reversed_classes, write_released_checkpoint)

_STARTED = pytest.StashKey[list]()  # what the running test started (tests/support/process_guard.py)

# One intra-op thread: the tensors here are tiny, and under pytest two OpenMP threads made some float64
# convolutions ~30x slower (measured: the real-supernet finite-difference test, 130 s vs 4 s).
torch.set_num_threads(1)

# The Ctrl-C tests need SIGINT deliverable. A shell without job control starts a background command (`pytest ... &`
# in a script) with SIGINT ignored, as POSIX asks, and Python then leaves it ignored, here and in every process
# the tests start; Python's own handler is what an interactive run has, and children get it back at exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return REPO


@pytest.fixture
def free_port() -> int:
    """A TCP port nobody listens on now, for a multi-process launch (the default 29500 may be taken)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(scope='session')
def reference_dir() -> Path:
    """Facts about the original implementation, vendored in the repository (see its README.md)."""
    return REFERENCE


@pytest.fixture(scope='session')
def official(tmp_path_factory) -> Path:
    """A checkpoint in the released format for the 14M model: EMA weights by the recipe of
    released_logits.pt, raw weights the same network with its class outputs in reverse order."""
    weights = recipe_weights(14)
    path = tmp_path_factory.mktemp('released') / 'cream14_official_format.pth.tar'
    return write_released_checkpoint(path, 14, state_dict=with_reversed_classes(weights), state_dict_ema=weights)


@pytest.fixture(scope='session')
def expected() -> dict:
    """What the original outputs for ``official`` in eval mode: input, logits_ema, logits (raw weights)."""
    logits = released_logits()[14]['logits']
    return {'input': recipe_input(14), 'logits_ema': logits, 'logits': logits.flip(1)}


@pytest.fixture(scope='session')
def demo_data(tmp_path_factory) -> SharedDemoImageFolders:
    """``demo_data(classes=3, train=4, val=2, size=32)``: a generated ImageFolder of that shape (a DATA_DIR string),
    shared read-only by the session's tests; a test that changes images uses ``write_demo_imagefolder``."""
    return SharedDemoImageFolders(tmp_path_factory.mktemp)


@pytest.fixture(scope='session')
def tiny_imagefolder(demo_data) -> Path:
    """3 classes x (4 train, 3 val) drawn images of 72 px: enough for one step and one evaluation."""
    return Path(demo_data(classes=3, train=4, val=3, size=72))


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


@pytest.fixture(autouse=True)
def _no_process_left_behind():
    """SIGKILL what a test started with ``tests.support.processes.Running`` and left running (a failed test)."""
    yield
    kill_leftovers()


def pytest_configure(config):
    process_guard.install()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    with process_guard.watching() as started:
        item.stash[_STARTED] = started
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that started a process without the process (or slow) marker fails at its teardown."""
    report = yield
    failure = process_guard.unmarked_start(item, item.stash.get(_STARTED, [])) if call.when == 'teardown' else None
    if failure and report.passed:
        report.outcome, report.longrepr = 'failed', failure
    return report
