"""lib/engine/step_timing.py: warm-up steps untimed, then each timed step once; interleaved rounds one step of
each function per round; a loop that owns its iteration run once untimed, once timed."""
import torch

from lib.engine.step_timing import peak_gib, time_interleaved, time_loop, time_steps

CPU = torch.device('cpu')


def test_steps_after_the_warmup_are_timed_one_by_one_on_the_cpu():
    seen = []
    seconds, per_step = time_steps(seen.append, warmup=2, steps=3, device=CPU, sync_report={})
    assert seen == [0, 1, 2, 3, 4]
    assert len(per_step) == 3 and all(s >= 0 for s in per_step) and seconds >= sum(per_step) * 0.999
    assert peak_gib(CPU) is None


def test_interleaved_rounds_take_one_step_of_each_function():
    order = []
    per_step = time_interleaved([lambda i: order.append(('a', i)), lambda i: order.append(('b', i))],
                                warmup=1, steps=2, device=CPU, clock='cpu')
    assert order == [('a', 0), ('b', 0), ('a', 1), ('b', 1), ('a', 2), ('b', 2)]
    assert [len(seconds) for seconds in per_step] == [2, 2]


def test_a_loop_runs_its_warmup_then_its_timed_steps():
    runs = []
    assert time_loop(runs.append, warmup=2, steps=5, device=CPU) >= 0
    assert runs == [2, 5]
    time_loop(runs.append, warmup=0, steps=1, device=CPU)
    assert runs == [2, 5, 1]
