"""Where a latency is measured: PyTorch eager on the CPU or a CUDA GPU, or onnxruntime on the CPU (the
deployment runtime tools/export_onnx.py targets), with a batch size, a thread count and the memory format.

``prepare(module, shape, settings)`` returns a callable that runs ``module`` once on a fixed input batch
of ``settings.batch_size`` images of ``shape``: the thing a table times. For onnxruntime the module is
exported with torch.onnx (the exporter tools/export_onnx.py uses) at that batch size and run by an
``InferenceSession`` with ``threads`` intra-op threads.
"""
import os
import platform
from dataclasses import asdict, dataclass
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn as nn

from lib.errors import CreamError

RUNTIMES = ('torch', 'onnxruntime')
DEVICES = ('cpu', 'cuda')


class LatencySettingsError(CreamError, ValueError):
    """A runtime, device or setting a latency cannot be measured with."""


@dataclass(frozen=True)
class RuntimeSettings:
    runtime: str = 'onnxruntime'
    device: str = 'cpu'
    batch_size: int = 1
    threads: int = 1
    channels_last: bool = False

    def check(self) -> 'RuntimeSettings':
        """Settings a latency can be measured with on this machine (``check_values``, and a visible GPU for cuda)."""
        self.check_values()
        if self.device == 'cuda' and not torch.cuda.is_available():
            raise LatencySettingsError('--device cuda but no CUDA GPU is visible; use --device cpu')
        return self

    def check_values(self) -> 'RuntimeSettings':
        """Settings that make sense anywhere (a table's record is checked with this when it is loaded)."""
        def count(value) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value >= 1
        if self.runtime not in RUNTIMES:
            raise LatencySettingsError(f'runtime {self.runtime!r} is not one of {", ".join(RUNTIMES)}')
        if self.device not in DEVICES:
            raise LatencySettingsError(f'device {self.device!r} is not one of {", ".join(DEVICES)}')
        if self.runtime == 'onnxruntime' and self.device != 'cpu':
            raise LatencySettingsError('onnxruntime is measured on the CPU here; use --device cpu, or --runtime '
                                       'torch for a CUDA GPU')
        if self.runtime == 'onnxruntime' and self.channels_last:
            raise LatencySettingsError('--channels-last applies to PyTorch eager only: onnxruntime chooses its own '
                                       'layout; leave it out with --runtime onnxruntime')
        if not (count(self.batch_size) and count(self.threads)):
            raise LatencySettingsError(f'batch size and threads must be integers of at least 1; got '
                                       f'{self.batch_size!r} and {self.threads!r}')
        if not isinstance(self.channels_last, bool):
            raise LatencySettingsError(f'channels_last must be true or false; got {self.channels_last!r}')
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def configure_threads(settings: RuntimeSettings) -> None:
    """PyTorch's intra-op threads (onnxruntime gets its count per session)."""
    torch.set_num_threads(settings.threads)


def sync_for(settings: RuntimeSettings) -> Optional[Callable[[], None]]:
    return torch.cuda.synchronize if settings.device == 'cuda' else None


def onnx_bytes(module: nn.Module, example: torch.Tensor) -> bytes:
    """``module`` exported with torch.onnx (dynamo), its shapes fixed to ``example``'s, as a serialized model."""
    program = torch.onnx.export(module, (example,), dynamo=True, verbose=False)
    return program.model_proto.SerializeToString()


def onnx_session(model: bytes, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(model, options, providers=['CPUExecutionProvider'])


def prepare(module: nn.Module, shape: Tuple[int, ...], settings: RuntimeSettings,
            seed: int = 0) -> Callable[[], object]:
    """A callable that runs ``module`` (eval mode, no gradients) once on a fixed batch of images of ``shape``."""
    module = module.eval()
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(settings.batch_size, *shape, generator=generator)
    if settings.runtime == 'onnxruntime':
        session = onnx_session(onnx_bytes(module, x), settings.threads)
        feed = {session.get_inputs()[0].name: x.numpy()}
        return lambda: session.run(None, feed)
    device = torch.device(settings.device)
    module, x = module.to(device), x.to(device)
    if settings.channels_last:
        module, x = module.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode():
            return module(x)
    return run


def device_name(device: str) -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one) or the CUDA GPU's name."""
    if device == 'cuda':
        return torch.cuda.get_device_name()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(settings: RuntimeSettings) -> Dict[str, object]:
    """The device and software a table was measured with (written into it)."""
    import timm

    versions = {'python': platform.python_version(), 'torch': torch.__version__, 'timm': timm.__version__}
    if settings.runtime == 'onnxruntime':
        import onnx
        import onnxruntime
        versions.update(onnxruntime=onnxruntime.__version__, onnx=onnx.__version__)
    if settings.device == 'cuda':
        versions['cuda'] = torch.version.cuda
    return {'device': {'type': settings.device, 'name': device_name(settings.device), 'cpu_count': os.cpu_count(),
                       'platform': platform.platform()},
            'versions': versions}
