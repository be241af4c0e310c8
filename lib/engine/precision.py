"""Native mixed precision: one autocast context and the grad scaler float16 needs."""
import contextlib

import torch

DTYPES = {'bfloat16': torch.bfloat16, 'float16': torch.float16}


def autocast(device: torch.device, enabled: bool, dtype_name: str = 'bfloat16'):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype_name])


def grad_scaler(device: torch.device, enabled: bool, dtype_name: str) -> torch.amp.GradScaler:
    """A real scaler only for float16 (bfloat16 has float32's range and needs none)."""
    return torch.amp.GradScaler(device.type, enabled=enabled and dtype_name == 'float16')
