"""tools/profile_step.py in-process on a tiny setting: the distillation step's parts with their times, then
the operators; the functions it marks are put back afterwards."""
import pytest
import torch

import lib.search.meta_matching
import lib.search.step
from tests.support.scripts_as_modules import load_script


@pytest.fixture(scope='module')
def profile_tool():
    return load_script('tools/profile_step.py')


def test_distillation_step_parts_are_listed(profile_tool, capsys):
    before = (lib.search.step.select_teacher, lib.search.meta_matching.probe_deltas, torch.amp.GradScaler.step)
    profile_tool.main(['--batch-size', '8', '--image-size', '32', '--steps', '1', '--warmup', '1',
                       '--path', '[[1],[1],[1],[1],[1]]', '--phase', 'search-kd', '--ops', '3', '--num-classes', '10',
                       '--pool-size', '3'])
    out = capsys.readouterr().out
    lines = {line[:32].rstrip(): line for line in out.splitlines()}  # the part column is 32 wide
    for part in ('step', 'teacher selection', '  probe forward, every entry', '  probe forward, chosen entry',
                 'student + teacher forward', 'backward', 'optimizer step'):
        assert part in lines, part
        assert float(lines[part][32:].split()[0]) > 0  # CPU-clock ms per step
        assert float(lines[part][32:].split()[2]) > 0  # profiler ms per step
    assert (lib.search.step.select_teacher, lib.search.meta_matching.probe_deltas, torch.amp.GradScaler.step) == before
