"""Print one JSON line about a Cream child network: name, resolution, parameters, MACs (thop), and with
``--latency TABLE`` its latency measured on the table's runtime and settings beside the table's prediction.

Examples:
    python tools/model_info.py --selection 287
    python tools/model_info.py --arch '[[0], [3], [3, 3], [3, 1, 3], [3, 3, 3, 3], [3, 3, 3], [0]]' --resolution 192
    python tools/model_info.py --arch output/demo_search_latency/best_arch.yaml --latency output/demo_latency.json

``--arch`` takes the path as a list or a config file holding INPUT_ARCH (a search's best_arch.yaml). With
``--latency`` the network is built for the table's classes and pooling and measured at the table's resolution.
"""
import argparse
import ast
import json
import os

import yaml

from lib.checked_io import int_at_least
from lib.engine.guard import exit_on_error
from lib.experiments.latency_check import predicted_and_measured, searched_path
from lib.latency.table import LatencyTableError, load_table
from lib.latency.timing import CLOCKS
from lib.models import CUSTOM_SELECTION, RELEASED_MODELS, ArchError, create_model, resolve_selection
from lib.models.complexity import count_macs_params


def model_info(selection=None, arch=None, resolution=None, keep_single_layer_default=False,
               num_classes=1000) -> dict:
    """What the tool prints, as a dict. MACs are counted at ``resolution`` (default: native / 224)."""
    if arch is not None:
        model = create_model(CUSTOM_SELECTION, arch=arch, keep_single_layer_default=keep_single_layer_default,
                             num_classes=num_classes)
        name, released = 'cream_custom', None
    else:
        released = RELEASED_MODELS[resolve_selection(selection)]
        model = create_model(released.selection, num_classes=num_classes)
        name = released.name
    size = resolution or model.pretrained_cfg['input_size'][-1]
    macs, params = count_macs_params(model, (1, 3, size, size))
    return {
        'name': name,
        'selection': released.selection if released else CUSTOM_SELECTION,
        'arch': [list(stage) for stage in (released.arch if released else arch)],
        'resolution': size,
        'params': params,
        'macs': macs,
        'macs_M': round(macs / 1e6, 3),
        # Released networks are named by the original's FLOPs count; others by ours (thop) in millions.
        'flops_name': f'{released.selection}M' if released else f'{round(macs / 1e6)}M',
    }


def read_arch(text: str):
    """--arch: a list of lists of op indices, or a config file (e.g. best_arch.yaml) with INPUT_ARCH."""
    if os.path.isfile(text):
        try:
            with open(text) as f:
                config = yaml.safe_load(f)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise ArchError(f'--arch {text} cannot be read as yaml ({type(err).__name__}: '
                            f'{str(err).splitlines()[0] if str(err) else err}); give a best_arch.yaml or the list '
                            'itself') from None
        arch = config.get('INPUT_ARCH') if isinstance(config, dict) else None
        if arch is None:
            raise ArchError(f'--arch {text} is a file without INPUT_ARCH; give a best_arch.yaml or the list itself')
        return arch
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ArchError(f"--arch is not a list of lists of op indices, nor a file: {text!r}; "
                        "e.g. '[[0], [3], ..., [0]]' or a best_arch.yaml") from None


def check_resolution(args, table) -> None:
    if args.resolution is not None and args.resolution != table.resolution:
        raise LatencyTableError(f'--resolution {args.resolution} differs from the resolution latency table '
                                f'{args.latency} was measured at ({table.resolution} px); leave --resolution out')


def with_latency(info: dict, args, table) -> dict:
    """``info`` plus the network's predicted and measured latency on ``table``'s runtime and settings."""
    path = searched_path(info['arch'], info['selection'] != CUSTOM_SELECTION or args.keep_single_layer_default)
    timing = table.meta.get('timing', {})
    latency = predicted_and_measured(table, path, warmup=timing.get('warmup', 10),
                                     repeats=args.repeats or timing.get('repeats', 50),
                                     block=timing.get('block', 10),
                                     clock=args.clock or timing.get('clock', 'wall'))
    return {**info, 'latency': latency}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument('--selection', help="released network: 14, 43, 114 (or 112), 287, 481, 604 or 'cream_287'")
    which.add_argument('--arch', help="any path: 7 lists of op indices, e.g. '[[0], [3], ..., [0]]'")
    parser.add_argument('--resolution', type=int, default=None,
                        help='input size in px (default: native, 224 for --arch)')
    parser.add_argument('--keep-single-layer-default', action='store_true',
                        help="--arch only: single-layer stages keep their default op (the original builder's rule)")
    parser.add_argument('--latency', metavar='TABLE', default=None,
                        help='a latency table (tools/latency_table.py): measure the network on its runtime and '
                             'settings and print the measured latency beside the predicted one')
    parser.add_argument('--repeats', type=int_at_least(1), default=None, help="--latency: timed calls (default: the table's)")
    parser.add_argument('--clock', choices=tuple(CLOCKS), default=None, help="--latency: default the table's")
    args = parser.parse_args(argv)
    if args.resolution is not None and args.resolution < 32:
        parser.error(f'--resolution must be at least 32 px (the network downsamples 32x), got {args.resolution}')
    try:
        arch = None if args.arch is None else read_arch(args.arch)
        table = None if args.latency is None else load_table(args.latency)
        if table is not None:
            check_resolution(args, table)  # before counting MACs at a resolution the table cannot price
        info = model_info(args.selection, arch, args.resolution or (table and table.resolution),
                          args.keep_single_layer_default, num_classes=table.num_classes if table else 1000)
    except ArchError as err:
        parser.error(str(err))
    if table is not None:
        info = with_latency(info, args, table)
    print(json.dumps(info))
    return info


if __name__ == '__main__':
    exit_on_error(main)
