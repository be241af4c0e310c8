"""Write the procedurally drawn demo dataset (DATA_DIR/train, DATA_DIR/val ImageFolder trees).

Example: python tools/make_demo_data.py --out data/demo --classes 10
"""
import argparse
import logging

from lib.checked_io import check_output_folder, int_at_least
from lib.data.demo import make_demo_dataset
from lib.engine.guard import exit_on_error


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', required=True, help='output folder; must not exist or be empty')
    parser.add_argument('--classes', type=int_at_least(1), default=10)
    parser.add_argument('--train-per-class', type=int_at_least(1), default=60)
    parser.add_argument('--val-per-class', type=int_at_least(1), default=20)
    parser.add_argument('--image-size', type=int_at_least(8), default=72, help='side of the square images (px)')
    parser.add_argument('--seed', type=int_at_least(0), default=0)
    args = parser.parse_args(argv)
    check_output_folder(args.out, '--out', empty=True)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    root = make_demo_dataset(args.out, num_classes=args.classes, train_per_class=args.train_per_class,
                             val_per_class=args.val_per_class, image_size=args.image_size,
                             seed=args.seed)
    print(f'wrote {args.classes} classes x ({args.train_per_class} train + {args.val_per_class} val) '
          f'images of {args.image_size}px to {root}')


if __name__ == '__main__':
    exit_on_error(main)
