"""Print one JSON line about a Cream child network: name, resolution, parameters, MACs (thop).

Examples:
    python tools/model_info.py --selection 287
    python tools/model_info.py --arch '[[0], [3], [3, 3], [3, 1, 3], [3, 3, 3, 3], [3, 3, 3], [0]]' --resolution 192
"""
import argparse
import ast
import json

from lib.models import CUSTOM_SELECTION, RELEASED_MODELS, ArchError, create_model, resolve_selection
from lib.models.complexity import count_macs_params


def model_info(selection=None, arch=None, resolution=None, keep_single_layer_default=False) -> dict:
    """What the tool prints, as a dict. MACs are counted at ``resolution`` (default: native / 224)."""
    if arch is not None:
        model = create_model(CUSTOM_SELECTION, arch=arch, keep_single_layer_default=keep_single_layer_default)
        name, released = 'cream_custom', None
    else:
        released = RELEASED_MODELS[resolve_selection(selection)]
        model = create_model(released.selection)
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument('--selection', help="released network: 14, 43, 114 (or 112), 287, 481, 604 or 'cream_287'")
    which.add_argument('--arch', help="any path: 7 lists of op indices, e.g. '[[0], [3], ..., [0]]'")
    parser.add_argument('--resolution', type=int, default=None,
                        help='input size in px (default: native, 224 for --arch)')
    parser.add_argument('--keep-single-layer-default', action='store_true',
                        help="--arch only: single-layer stages keep their default op (the original builder's rule)")
    args = parser.parse_args(argv)
    if args.resolution is not None and args.resolution < 32:
        parser.error(f'--resolution must be at least 32 px (the network downsamples 32x), got {args.resolution}')
    arch = None
    if args.arch is not None:
        try:
            arch = ast.literal_eval(args.arch)
        except (ValueError, SyntaxError):
            parser.error(f"--arch is not a list of lists of op indices: {args.arch!r}; e.g. '[[0], [3], ..., [0]]'")
    try:
        info = model_info(args.selection, arch, args.resolution, args.keep_single_layer_default)
    except ArchError as err:
        parser.error(str(err))
    print(json.dumps(info))


if __name__ == '__main__':
    main()
