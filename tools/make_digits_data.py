"""Write scikit-learn's UCI digits (1797 real 8x8 handwritten digits, 10 classes; shipped with the package, no
download) as an ImageFolder with a fixed stratified train/val split. Needs the extra: pip install -e '.[experiments]'

Example: python tools/make_digits_data.py --out data/digits --image-size 32
"""
import argparse

from lib.checked_io import check_output_folder, fraction_between, int_at_least
from lib.engine.guard import exit_on_error
from lib.experiments.digits import write_digits_imagefolder


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', required=True, help='output folder; must not exist or be empty')
    parser.add_argument('--image-size', type=int_at_least(8), default=32, help='side of the stored RGB images (px)')
    parser.add_argument('--val-fraction', type=fraction_between(0, 1), default=0.2, help='share of each class held out for val/')
    parser.add_argument('--seed', type=int_at_least(0), default=0, help='seed of the split')
    args = parser.parse_args(argv)
    check_output_folder(args.out, '--out', empty=True)
    info = write_digits_imagefolder(args.out, image_size=args.image_size, val_fraction=args.val_fraction,
                                    seed=args.seed)
    print(f'wrote {info["train_images"]} train + {info["val_images"]} val digits of {args.image_size} px to {args.out}')
    return info


if __name__ == '__main__':
    exit_on_error(main)
