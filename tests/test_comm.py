import os
import subprocess
import sys
import textwrap

import pytest

from lib import comm
from tests.support.paths import REPO

# Thread names come from Linux's /proc. A fresh interpreter (this one imported torch._dynamo long ago): bring a one-rank gloo group up,
# take an optimizer step (it imports torch._dynamo when nothing did before), tear the group down
# and list the threads left.
_SCRIPT = textwrap.dedent('''
    import os, sys, tempfile
    import torch, torch.distributed as dist
    from lib import comm
    init = comm.init_process_group if sys.argv[1] == 'comm' else dist.init_process_group
    init(backend='gloo', init_method='file://' + tempfile.mkdtemp() + '/pg', rank=0, world_size=1)
    param = torch.nn.Parameter(torch.ones(3))
    param.grad = torch.ones(3)
    torch.optim.SGD([param], lr=0.1).step()
    comm.destroy_process_group(synchronize=True)
    print(' '.join(open(f'/proc/self/task/{task}/comm').read().strip() for task in os.listdir('/proc/self/task')))
''')


def _threads_after_teardown(init: str) -> str:
    out = subprocess.run([sys.executable, '-c', _SCRIPT, init], cwd=REPO, capture_output=True, text=True,
                         timeout=120, env={**os.environ, 'PYTHONPATH': str(REPO)})
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.process
def test_teardown_leaves_no_gloo_threads_behind():
    # The bare torch call shows what comm.init_process_group guards against: the group outlives
    # destroy_process_group, and its threads can abort the process at exit.
    assert 'gloo' in _threads_after_teardown('torch')
    assert 'gloo' not in _threads_after_teardown('comm')


def test_queries_answer_for_one_process_without_a_group():
    assert not comm.is_initialized()
    assert comm.get_rank() == 0 and comm.get_world_size() == 1
    comm.barrier()
    comm.destroy_process_group(synchronize=True)
