"""Measure the train loader's throughput (augmentations on); prints one JSON line.

Example: python tools/benchmark_loader.py --data data/demo --workers 1 --batch-size 64 --image-size 64
"""
import argparse
import json
import time

import torch

from lib.checked_io import int_at_least
from lib.data.loaders import build_train_loader
from lib.config.timm_names import check_auto_augment
from lib.engine.guard import exit_on_error


def _batches(loader, count: int):
    """count batches, running over as many epochs as that takes."""
    epoch = 0
    while True:
        loader.set_epoch(epoch)
        for batch in loader:
            yield batch
            count -= 1
            if count == 0:
                return
        epoch += 1


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', required=True, help='DATA_DIR holding train/')
    parser.add_argument('--workers', type=int_at_least(0), default=1)
    parser.add_argument('--batch-size', type=int_at_least(1), default=64)
    parser.add_argument('--image-size', type=int_at_least(8), default=224)
    parser.add_argument('--batches', type=int, default=50, help='timed batches')
    parser.add_argument('--warmup', type=int, default=3, help='untimed batches (worker start-up)')
    parser.add_argument('--aa', default='rand-m9-mstd0.5', help="RandAugment policy, '' for none")
    parser.add_argument('--color-jitter', type=float, default=0.4)
    parser.add_argument('--re-prob', type=float, default=0.2)
    parser.add_argument('--re-mode', choices=('const', 'rand', 'pixel'), default='pixel')
    parser.add_argument('--interpolation', default='random')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--prefetcher', action='store_true',
                        help='normalize/erase on the device instead of in the workers')
    args = parser.parse_args(argv)
    if args.batches < 1 or args.warmup < 0:
        parser.error('--batches must be >= 1 and --warmup >= 0')
    if not (0 <= args.re_prob <= 1 and args.color_jitter >= 0):
        parser.error('--re-prob must be a probability in [0, 1] and --color-jitter at least 0')
    check_auto_augment(args.aa)

    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda but no CUDA GPU is visible; use --device cpu')
    device = torch.device(args.device)
    loader = build_train_loader(
        data_dir=args.data, image_size=args.image_size, batch_size=args.batch_size,
        workers=args.workers, pin_memory=device.type == 'cuda', interpolation=args.interpolation,
        auto_augment=args.aa, color_jitter=args.color_jitter, re_prob=args.re_prob,
        re_mode=args.re_mode, device=device, use_prefetcher=args.prefetcher)
    images = 0
    start = None
    for i, (x, _) in enumerate(_batches(loader, args.warmup + args.batches)):
        if i == args.warmup:
            start = time.perf_counter()
        if i >= args.warmup:
            images += x.shape[0]
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    print(json.dumps(dict(
        img_per_s=round(images / seconds, 1),
        img_per_s_per_worker=round(images / seconds / max(args.workers, 1), 1),
        images=images, seconds=round(seconds, 3), workers=args.workers,
        batch_size=args.batch_size, image_size=args.image_size, auto_augment=args.aa,
        re_prob=args.re_prob, device=str(device), prefetcher=args.prefetcher,
        skipped=loader.skipped_total)))


if __name__ == '__main__':
    exit_on_error(main)  # a user's mistake (e.g. no DATA folder): one error: line, exit status 2
