"""Cream networks: ``create_model`` and the six released ones (also timm's ``cream_014`` ... ``cream_604``).

Importing this package registers those names in timm (see ``lib.models.zoo``).
"""
from .childnet import RELEASED_MODELS, ArchError, build_childnet, build_released, resolve_selection
from .complexity import count_macs_params
from .zoo import CUSTOM_SELECTION, create_model

__all__ = [
    'RELEASED_MODELS', 'ArchError', 'CUSTOM_SELECTION', 'build_childnet', 'build_released', 'count_macs_params',
    'create_model', 'resolve_selection',
]
