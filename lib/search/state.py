"""What a search checkpoint holds beyond a retraining checkpoint, and putting it back.

A search checkpoint is a retraining checkpoint (``lib.engine.resume``: released-format keys with
``state_dict`` = the supernet, optimizer, LR scheduler, AMP scaler, position in the run, every rank's
RNG states and mid-epoch running sums, best-epoch history, config) plus ``search_extras``: the
meta-matching network, the board with its probe tensors, the path sampler's generator, the search
space it belongs to, and the names of the parameters holding a gradient (under SUPERNET.STEP_ONLY_PATH
False every parameter ever sampled keeps a zero gradient and so takes every optimizer step: a resumed
run must give them back their zero gradients to continue exactly). Everything is tensors and plain python (``torch.load(weights_only=True)``).
"""
from typing import Any, Dict

import torch

from lib.engine.resume import ResumeError
from lib.search.flops import SearchSpace

SEARCH_FORMAT = 'cream-search-1'
ARCH_NAME = 'cream_supernet'


def search_space_record(space: SearchSpace) -> Dict[str, Any]:
    return {'layers_per_stage': [int(n) for n in space.layers_per_stage], 'resolution': int(space.resolution)}


def _names_with_grad(module) -> list:
    return [name for name, param in module.named_parameters() if param.grad is not None]


def _restore_zero_grads(module, names) -> None:
    params = dict(module.named_parameters())
    for name in names:
        params[name].grad = torch.zeros_like(params[name])


def search_extras(*, space: SearchSpace, supernet, mmn, board, path_sampler) -> Dict[str, Any]:
    return {
        'search_format': SEARCH_FORMAT,
        'search_space': search_space_record(space),
        'mmn': mmn.state_dict(),
        'board': board.state_dict(),
        'path_sampler': path_sampler.state_dict(),
        'params_with_grad': {'supernet': _names_with_grad(supernet), 'mmn': _names_with_grad(mmn)},
    }


def load_search_extras(checkpoint: Dict[str, Any], source: str, *, search_space: Dict[str, Any], supernet, mmn,
                       board, path_sampler, device) -> None:
    """Check that ``checkpoint`` belongs to this search, then restore MMN, board and path sampler."""
    if not isinstance(checkpoint, dict) or checkpoint.get('search_format') != SEARCH_FORMAT:
        raise ResumeError(f'{source} is not a search checkpoint written by train.py; point RESUME_PATH at the '
                          'last.pth.tar or recovery.pth.tar of a search (or empty it to use the run folder\'s)')
    saved = checkpoint['search_space']
    for key in ('layers_per_stage', 'resolution'):
        if saved[key] != search_space[key]:
            raise ResumeError(f'{source} searched a space with {key} {saved[key]}, but this config gives '
                              f'{search_space[key]}; resume with the same SUPERNET.FLOPS_MINIMUM/MAXIMUM')
    try:
        mmn.load_state_dict(checkpoint['mmn'])
        board.load_state_dict(checkpoint['board'], device=device)
    except (RuntimeError, ValueError) as err:
        raise ResumeError(f'cannot continue the search in {source}: {err}') from None
    path_sampler.load_state_dict(checkpoint['path_sampler'])
    with_grad = checkpoint.get('params_with_grad', {})
    try:
        _restore_zero_grads(supernet, with_grad.get('supernet', ()))
        _restore_zero_grads(mmn, with_grad.get('mmn', ()))
    except KeyError as err:
        raise ResumeError(f'{source} names a parameter {err} this supernet does not have; resume with the '
                          'config the search started with') from None
