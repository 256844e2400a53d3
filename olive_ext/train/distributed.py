"""Data-parallel fine-tuning under ``torchrun`` or ``accelerate launch``: who trains, who writes.

Every process trains (the transformers Trainer shards the batches and averages the gradients: gloo on CPU,
nccl on GPU); only rank 0 goes through the recipe, the cache and the output folder, evaluates, and writes.
Rank 0 tells the other ranks what to train (the training call's arguments, once it knows them: the input
may first be converted, or found in the cache) over a gloo group, or that there is nothing to train (a cache
hit), so that no rank waits for a partner that never comes.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "barrier",
    "init",
    "is_distributed",
    "is_main",
    "local_world_size",
    "rank",
    "receive",
    "send",
    "total",
    "world_size",
]

_control: dict[str, Any] = {"group": None, "sent": False}


def rank() -> int:
    """This process's global rank (0 without torchrun/accelerate)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """How many processes train together (1 without torchrun/accelerate)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_world_size() -> int:
    """How many of them run on this machine (they share its cores)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))


def is_distributed() -> bool:
    """True under torchrun / accelerate launch with more than one process."""
    return world_size() > 1


def is_main() -> bool:
    """True on the process that writes outputs, metrics and the cache (rank 0; the only one when not distributed)."""
    return rank() == 0


def init() -> None:
    """Join the process group torchrun set up (gloo on CPU, nccl on GPU) and a gloo group for control messages."""
    if not is_distributed():
        return
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        gpu = torch.cuda.is_available()
        if gpu:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if gpu else "gloo")
    if _control["group"] is None:
        _control["group"] = dist.new_group(backend="gloo")


def send(message: Any) -> None:
    """Rank 0: tell the other ranks ``message`` (once per run; later calls are ignored)."""
    if not is_distributed() or not is_main() or _control["sent"]:
        return
    import torch.distributed as dist

    init()
    dist.broadcast_object_list([message], src=0, group=_control["group"])
    _control["sent"] = True


def receive() -> Any:
    """Other ranks: what rank 0 sent."""
    import torch.distributed as dist

    init()
    box: list[Any] = [None]
    dist.broadcast_object_list(box, src=0, group=_control["group"])
    return box[0]


def total(values: list[int]) -> list[int]:
    """The sums of ``values`` over every rank (the values themselves when not distributed)."""
    if not is_distributed():
        return values
    import torch
    import torch.distributed as dist

    init()
    tensor = torch.tensor(values, dtype=torch.int64)
    dist.all_reduce(tensor, group=_control["group"])
    return [int(v) for v in tensor.tolist()]


def barrier() -> None:
    """Wait until every rank reaches this point (rank 0 after writing, the others before reading)."""
    if not is_distributed():
        return
    import torch.distributed as dist

    init()
    dist.barrier(group=_control["group"])


def was_sent() -> bool:
    """Whether rank 0 has told the other ranks already."""
    return bool(_control["sent"])
