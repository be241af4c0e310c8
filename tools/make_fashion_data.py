"""Write Fashion-MNIST (Debian package dataset-fashion-mnist; nothing is downloaded) as an ImageFolder: train/ and
val/ a fixed seeded per-class split of its training set, test/ from its test set.

Example: apt-get install dataset-fashion-mnist
         python tools/make_fashion_data.py --out data/fashion --image-size 32 --train-per-class 300
"""
import argparse

from lib.engine.guard import exit_on_error
from lib.experiments.fashion import DEFAULT_SOURCE, write_fashion_imagefolder


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', required=True, help='output folder; must not exist, be empty or hold this very set')
    parser.add_argument('--source', default=DEFAULT_SOURCE, help='folder of the four gzipped idx files')
    parser.add_argument('--image-size', type=int, default=28, help='side of the stored RGB images (px; 28: as is)')
    parser.add_argument('--train-per-class', type=int, default=0, help='training images per class (0: all the rest)')
    parser.add_argument('--val-per-class', type=int, default=500, help='training images per class held out for val/')
    parser.add_argument('--test-per-class', type=int, default=0, help='test images per class (0: all 1000)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the train/val split')
    args = parser.parse_args(argv)
    info = write_fashion_imagefolder(args.out, source=args.source, image_size=args.image_size,
                                     train_per_class=args.train_per_class, val_per_class=args.val_per_class,
                                     test_per_class=args.test_per_class, seed=args.seed)
    print(f'{args.out}: {info["train_images"]} train, {info["val_images"]} val, {info["test_images"]} test '
          f'Fashion-MNIST images of {info["image_size"]} px')
    return info


if __name__ == '__main__':
    exit_on_error(main)
