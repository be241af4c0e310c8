"""Export a Cream child network to ONNX (dynamic batch), run the file with onnxruntime and print one JSON line
with the largest absolute difference from PyTorch on the same input.

The network and its weights come from the config as for test.py: ``--cfg`` files and trailing ``KEY VALUE``
pairs (MODEL_SELECTION / INPUT_ARCH or a search's best_arch.yaml, DATASET.NUM_CLASSES, DATASET.IMAGE_SIZE,
RESUME_PATH: the checkpoint, read with the project's safe loader; empty: random weights).

    python tools/export_onnx.py --out cream_287.onnx MODEL_SELECTION 287 RESUME_PATH ./287.pth.tar
    python tools/export_onnx.py --out demo.onnx --cfg configs/demo/test.yaml --cfg output/demo_search/best_arch.yaml
    python tools/export_onnx.py --out cream_014.onnx --torch-export cream_014.pt2 MODEL_SELECTION 14
"""
import argparse
import json

import numpy as np
import torch

from lib.checked_io import check_output_file, make_parent
from lib.checkpoint.weights import load_model_weights
from lib.config import ConfigError, load_config
from lib.engine.guard import exit_on_error
from lib.errors import CreamError
from lib.fileio import atomic_path, write_failed
from lib.models.from_config import build_child_from_cfg

INPUT_NAME, OUTPUT_NAME = 'image', 'logits'



def _replace_atomically(write, path: str) -> None:
    """``write(tmp_path)`` through ``lib.fileio.atomic_path``: never a half-written file at ``path``."""
    try:
        with atomic_path(make_parent(path)) as tmp:
            write(tmp)
    except CreamError:
        raise
    except OSError as err:
        raise write_failed(path, err, 'choose a writable folder for --out / --torch-export') from None


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: str) -> int:
    """One self-contained .onnx file (weights inside) whose batch dimension is free; returns its opset."""
    import onnx

    batch = torch.export.Dim('batch', min=1)
    program = torch.onnx.export(model, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                dynamic_shapes={'x': {0: batch}}, dynamo=True, verbose=False)
    _replace_atomically(lambda tmp: program.save(tmp, external_data=False), path)
    return next(op.version for op in onnx.load(path, load_external_data=False).opset_import if op.domain == '')


def onnxruntime_check(path: str, model: torch.nn.Module, inputs) -> dict:
    """Largest |onnxruntime - PyTorch| over every output of every input batch, and the largest |PyTorch|
    output for scale."""
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    worst = largest = 0.0
    for x in inputs:
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
        with torch.no_grad():
            want = model(x).numpy()
        if got.shape != want.shape:
            raise RuntimeError(f'onnxruntime returned {got.shape} for input {tuple(x.shape)}; PyTorch {want.shape}')
        worst = max(worst, float(np.abs(got - want).max()))
        largest = max(largest, float(np.abs(want).max()))
    return {'max_abs_diff': worst, 'max_abs_output': largest, 'onnxruntime': onnxruntime.__version__}


def export_torch_program(model: torch.nn.Module, example: torch.Tensor, path: str, inputs) -> float:
    """torch.export with a free batch dimension, saved as .pt2; returns the largest difference after reloading."""
    batch = torch.export.Dim('batch', min=1)
    program = torch.export.export(model, (example,), dynamic_shapes={'x': {0: batch}})
    _replace_atomically(lambda tmp: torch.export.save(program, tmp), path)
    reloaded = torch.export.load(path).module()
    with torch.no_grad():
        return max(float((reloaded(x) - model(x)).abs().max()) for x in inputs)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog='Trailing KEY VALUE pairs override the config, as for test.py')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--cfg', action='append', default=[], metavar='FILE', help='yaml config; repeat to layer')
    parser.add_argument('--batch', type=int, default=2, help='batch of the example input (default 2); '
                        'the check also runs batch+1 to show the batch dimension is free')
    parser.add_argument('--torch-export', metavar='FILE.pt2', default='',
                        help='also save a torch.export program and check it the same way')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random check input')
    parser.add_argument('opts', nargs=argparse.REMAINDER, metavar='KEY VALUE', help='config overrides')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    """The export; a user's mistake (config, arch, checkpoint, an unwritable --out) is a CreamError, raised before
    any export work."""
    args = parse_args(argv)
    if args.batch < 1:
        raise ConfigError(f'--batch must be at least 1, got {args.batch}')
    cfg = load_config(args.cfg, args.opts)
    check_output_file(args.out, '--out')
    if args.torch_export:
        check_output_file(args.torch_export, '--torch-export')
    model, info = build_child_from_cfg(cfg)
    weights = 'random init (RESUME_PATH is empty)'
    if cfg.RESUME_PATH:
        weights = load_model_weights(model, cfg.RESUME_PATH, use_ema=cfg.NET.EMA.USE)
    model.eval()
    generator = torch.Generator().manual_seed(args.seed)
    size = (3, info.resolution, info.resolution)
    inputs = [torch.randn(b, *size, generator=generator) for b in (args.batch, args.batch + 1)]
    opset = export_onnx(model, inputs[0], args.out)
    result = {
        'onnx': args.out, 'model': info.name, 'arch': info.arch, 'resolution': info.resolution,
        'num_classes': cfg.DATASET.NUM_CLASSES, 'checkpoint': cfg.RESUME_PATH or None, 'weights': weights,
        'opset': opset, 'batches_checked': [int(x.shape[0]) for x in inputs],
        **onnxruntime_check(args.out, model, inputs),
    }
    if args.torch_export:
        result['torch_export'] = args.torch_export
        result['torch_export_max_abs_diff'] = export_torch_program(model, inputs[0], args.torch_export, inputs)
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    exit_on_error(main)  # a user's mistake: one error: line, exit status 2
