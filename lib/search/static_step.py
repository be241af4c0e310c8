"""The search step's fixed-network ceiling: one path built as a fixed child network, trained with what
``lib.search.step.search_step`` trains with (the search's optimizer groups with the meta-matching network's,
its linear LR schedule, loss, AMP and on-device sums) and nothing else: no path bookkeeping, no board, no teacher,
no gradient all-reduce. Its shapes never change, so ``COMPILE`` compiles it whole. tools/benchmark.py's 'static'
phase times it beside the search step's phases."""
from dataclasses import dataclass
from typing import Callable

import torch

from lib.engine.precision import autocast, grad_scaler
from lib.models.childnet import build_childnet
from lib.models.supernet import path_to_arch
from lib.search.meta_matching import MetaMatchingNetwork
from lib.search.parts import build_linear_schedule, build_loss, build_search_optimizer
from lib.search.step import step_sums


@dataclass
class StaticParts:
    cfg: object
    model: torch.nn.Module
    forward: Callable  # the model, or its torch.compile'd forward under COMPILE
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: object
    loss_fn: Callable
    device: torch.device


def build_static_parts(cfg, path, device: torch.device, *, total_steps: int) -> StaticParts:
    """``path`` (a search path) as a child network on ``device`` (weights seeded with SEED), in train mode and
    cfg's layout (CHANNELS_LAST), with the search's optimizer, schedule over ``total_steps``, scaler and loss."""
    torch.manual_seed(cfg.SEED)
    model = build_childnet(path_to_arch(path), num_classes=cfg.DATASET.NUM_CLASSES,
                           bn_momentum=cfg.BATCHNORM.BN_MOMENTUM, bn_eps=cfg.BATCHNORM.BN_EPS)
    model.to(device)
    if cfg.CHANNELS_LAST:
        model.to(memory_format=torch.channels_last)
    model.train()
    mmn = MetaMatchingNetwork(cfg.SUPERNET.SLICE, cfg.DATASET.NUM_CLASSES).to(device)  # its optimizer group
    optimizer = build_search_optimizer(cfg, model, mmn)
    return StaticParts(cfg=cfg, model=model, forward=torch.compile(model) if cfg.COMPILE else model,
                       optimizer=optimizer, scheduler=build_linear_schedule(optimizer, total_steps),
                       scaler=grad_scaler(device, cfg.AMP, cfg.AMP_DTYPE), loss_fn=build_loss(cfg), device=device)


def static_step(parts: StaticParts, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """One training step of the fixed network: forward and loss (under AMP), backward, optimizer and LR step.
    Returns the step's sums as ``search_step`` does (device; ``lib.search.step.SearchSums``)."""
    cfg = parts.cfg
    with autocast(parts.device, cfg.AMP, cfg.AMP_DTYPE):
        logits = parts.forward(images)
        loss = parts.loss_fn(logits, target)
    parts.optimizer.zero_grad(set_to_none=True)
    parts.scaler.scale(loss).backward()
    parts.scaler.step(parts.optimizer)
    parts.scaler.update()
    parts.scheduler.step()
    return step_sums(logits.detach(), loss.detach(), None, target, meta_updates=0)
