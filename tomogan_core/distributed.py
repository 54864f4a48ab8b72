"""Data-parallel training across processes, when ``tomogan-train`` is launched by ``torchrun``.

``torchrun --nproc_per_node N -m tomogan_core.train ...`` starts N processes; :func:`setup` joins them
into one process group (NCCL on CUDA, gloo on CPU). Launched any other way, every helper here is a no-op.

How :func:`tomogan_core.train.train` uses it:

* the generator is wrapped in :class:`torch.nn.parallel.DistributedDataParallel`, which averages its
  gradients across ranks during the backward pass;
* the critic's gradients (when the loss has an adversarial term, so that there is a critic) are averaged
  by :meth:`Context.average_gradients` after each critic backward instead: the WGAN-GP penalty
  differentiates through the critic's input gradient (``autograd.grad`` with ``create_graph``), which
  DistributedDataParallel does not support;
* each rank draws its own patches: its own seed and its own shard of the training slices;
* only rank 0 validates, writes checkpoints, ``log.csv`` and ``model.pt`` (the plain generator's weights,
  loadable in a single process); the others wait at a barrier.

A resumed distributed run restarts every rank's patch stream from (seed, rank, step): it continues the
training, but bit-identical resumption is promised only for single-process runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Context", "setup"]


@dataclass
class Context:
    """Where this process stands: ``rank`` of ``world`` processes (1 when not distributed)."""

    rank: int = 0
    world: int = 1

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The module as DistributedDataParallel when distributed, else itself."""
        if not self.enabled:
            return module
        ids = [device.index] if device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)

    def average_gradients(self, module: torch.nn.Module) -> None:
        """Average the gradients of ``module``'s parameters across ranks, in place."""
        if not self.enabled:
            return
        for p in module.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad /= self.world

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def setup(device: torch.device) -> tuple[Context, torch.device]:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Returns the context and the device this rank uses (its own GPU, ``cuda:LOCAL_RANK``, on CUDA).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context(), device
    rank = int(os.environ["RANK"])
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Context(rank=rank, world=world), device
