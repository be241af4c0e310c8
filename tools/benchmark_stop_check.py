"""What stopping on SIGTERM costs a distributed run per step: the time a training step spends in the stop
check (``lib.engine.stop.StopOnSigterm.poll``), on N gloo ranks of this machine training a small child network
with DDP; prints one JSON line.

Interleaved rounds of three kinds of step, so that a busy machine's load hits them alike: a plain DDP step;
the same with the check the training runs (an all-reduce of one number on its own gloo group, started at a step
boundary and read at the next); and, for scale, with a blocking all-reduce of the flag at every boundary
(``poll_now``). Per kind: the median step time and the median time spent in the check.

    python tools/benchmark_stop_check.py --ranks 2 --rounds 20 --steps 10
"""
import argparse
import json
import logging
import socket
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lib import comm
from lib.checked_io import int_at_least
from lib.engine.guard import exit_on_error
from lib.engine.stop import StopOnSigterm
from lib.models.childnet import build_childnet

ARCH = [[0], [0], [0], [0], [0], [0], [0]]


def _rank(rank: int, world: int, port: int, args, results) -> None:
    torch.set_num_threads(1)
    comm.init_process_group(backend='gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=world)
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(build_childnet(ARCH, num_classes=10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images, target = torch.randn(args.batch_size, 3, args.image_size, args.image_size), torch.zeros(
        args.batch_size, dtype=torch.long)

    def step():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images), target).backward()
        optimizer.step()

    timings = {kind: {'step': [], 'check': []} for kind in ('plain', 'lagged', 'blocking')}
    with StopOnSigterm(30.0, logging.getLogger('benchmark')) as stop:
        checks = {'plain': None, 'lagged': stop.poll, 'blocking': stop.poll_now}
        for round_no in range(args.warmup + args.rounds):
            for kind, check in checks.items():
                for _ in range(args.steps):
                    start = time.perf_counter()
                    step()
                    checked = time.perf_counter()
                    if check is not None:
                        check()
                    end = time.perf_counter()
                    if round_no >= args.warmup:
                        timings[kind]['step'].append(end - start)
                        timings[kind]['check'].append(end - checked)
                if kind == 'lagged':
                    stop.poll_now()  # settle the pending check before the next kind
    if rank == 0:
        results.put(timings)
    dist.destroy_process_group()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--ranks', type=int_at_least(1), default=2)
    parser.add_argument('--rounds', type=int_at_least(1), default=20, help='timed rounds (each: --steps steps of every kind)')
    parser.add_argument('--warmup', type=int_at_least(0), default=2, help='untimed rounds')
    parser.add_argument('--steps', type=int_at_least(1), default=10)
    parser.add_argument('--batch-size', type=int_at_least(1), default=8)
    parser.add_argument('--image-size', type=int_at_least(32), default=64)
    args = parser.parse_args(argv)
    if args.rounds * args.steps < 2:
        parser.error('--rounds x --steps must be at least 2 (the spread of the check times needs two)')
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    context = mp.get_context('spawn')
    results = context.SimpleQueue()
    processes = [context.Process(target=_rank, args=(rank, args.ranks, port, args, results))
                 for rank in range(args.ranks)]
    for process in processes:
        process.start()
    timings = results.get()
    for process in processes:
        process.join()
    report = {'ranks': args.ranks, 'batch_size': args.batch_size, 'image_size': args.image_size,
              'steps_per_kind': len(timings['plain']['step'])}
    for kind, times in timings.items():
        report[f'{kind}_step_ms'] = round(1e3 * statistics.median(times['step']), 3)
        report[f'{kind}_check_us'] = round(1e6 * statistics.median(times['check']), 1)
        report[f'{kind}_check_us_p10_p90'] = [round(1e6 * q, 1) for q in statistics.quantiles(times['check'], n=10)[::8]]
    report['lagged_step_over_plain'] = round(report['lagged_step_ms'] / report['plain_step_ms'], 4)
    print(json.dumps(report))
    return report


if __name__ == '__main__':
    exit_on_error(main)
