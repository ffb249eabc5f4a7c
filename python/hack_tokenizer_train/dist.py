"""Several processes under `accelerate launch`: data parallel (DDP) with accelerate's Accelerator.

Launched by accelerate (its launchers set ACCELERATE_* variables; torchrun sets WORLD_SIZE), each process trains a
replica of the model on its own share of every step's windows; DDP averages the gradients. With N processes and a
batch of b windows each, a step trains on N*b windows: the windows one process with a batch of N*b would take, in the
same order (rank r takes the r-th b of each micro-batch's N*b), so the averaged gradient is that process's gradient.

Only rank 0 reports progress and writes checkpoints and the output directory; every rank reports its own errors.
Sharded setups (FSDP, DeepSpeed) are refused: our checkpoints and output read the unwrapped model and the plain
optimizer state on rank 0, which those shard (and the rows recipe's gradient mask would see shards).
"""
from __future__ import annotations

import os
from typing import Any, Optional

import torch

from .job import JobError

# accelerate's distributed types whose parameters and optimizer state are whole on every rank
REPLICATED = ("NO", "MULTI_CPU", "MULTI_GPU", "MULTI_NPU", "MULTI_MLU", "MULTI_SDAA", "MULTI_MUSA", "MULTI_XPU", "MULTI_HPU", "MULTI_NEURON")
SHARDED_WHY = ("the engine's checkpoints, resume and output read the model and the optimizer state on rank 0, which {kind} "
               "shards across processes (and the rows recipe's gradient mask would see flattened shards, not rows); "
               "use a data-parallel config (distributed_type: MULTI_GPU)")


def env_world() -> int:
    for k in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        if os.environ.get(k):
            return int(os.environ[k])
    return 1


def env_rank() -> int:
    for k in ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK"):
        if os.environ.get(k):
            return int(os.environ[k])
    return 0


def launched() -> bool:
    """Started by `accelerate launch` (any of its launchers sets ACCELERATE_MIXED_PRECISION) or by torchrun/MPI."""
    return "ACCELERATE_MIXED_PRECISION" in os.environ or env_world() > 1


def check_kind(kind: str, zero_stage: Optional[int] = None) -> None:
    """Refuse the distributed types the engine cannot train correctly (see the module's docstring)."""
    if kind in REPLICATED:
        return
    name = {"DEEPSPEED": f"DeepSpeed{f' ZeRO-{zero_stage}' if zero_stage is not None else ''}", "FSDP": "FSDP"}.get(kind, kind)
    raise JobError("accelerate_config", f"distributed_type {kind} is not supported: " + SHARDED_WHY.format(kind=name), "UNSUPPORTED_DISTRIBUTED")


class Dist:
    """One process's view: the Accelerator when launched, else a single process doing what the engine always did."""

    def __init__(self, accelerator=None):
        self.acc = accelerator
        self.world = accelerator.num_processes if accelerator is not None else 1
        self.rank = accelerator.process_index if accelerator is not None else 0
        self.main = self.rank == 0

    @classmethod
    def start(cls, device_wanted: str) -> "Dist":
        if not launched():
            return cls(None)
        from accelerate import Accelerator

        # cpu=True: gloo between CPU processes (torchrun launches them; without it accelerate would see no device)
        cpu = device_wanted == "cpu" or (device_wanted == "auto" and not torch.cuda.is_available())
        acc = Accelerator(cpu=cpu)
        kind = str(acc.distributed_type).split(".")[-1]
        ds = getattr(acc.state, "deepspeed_plugin", None)
        check_kind(kind, getattr(ds, "zero_stage", None) if ds is not None else None)
        return cls(acc)

    @property
    def device(self) -> torch.device:
        return self.acc.device

    @property
    def mixed_precision(self) -> str:
        return self.acc.mixed_precision if self.acc is not None else "no"

    def prepare(self, model, opt):
        """(model to run forward through, optimizer to step): the DDP wrapper and accelerate's optimizer, or the same
        objects in one process. Called per stage, after the recipe set requires_grad (DDP syncs only those)."""
        if self.acc is None:
            return model, opt
        return self.acc.prepare(model, opt)

    def backward(self, loss: torch.Tensor) -> None:
        if self.acc is None:
            loss.backward()
        else:
            self.acc.backward(loss)  # fp16 loss scaling from the accelerate config, when set

    def mean(self, value: float) -> float:
        """The mean over processes of a per-process number (each rank's loss -> the step's loss)."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return float(t.item()) / self.world

    def any(self, flag: bool) -> bool:
        """True on every rank when it is True on one: all ranks stop at the same step (a SIGINT reaches them apart)."""
        if self.world == 1:
            return flag
        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item())

    def end_stage(self) -> None:
        if self.acc is not None:
            self.acc.free_memory()  # drop the stage's DDP wrapper and optimizer (the next stage prepares its own)

    def barrier(self) -> None:
        if self.acc is not None:
            self.acc.wait_for_everyone()

    def end(self) -> None:
        if self.acc is not None:
            self.acc.end_training()

    def info(self) -> dict[str, Any]:
        if self.acc is None:
            return {"processes": 1}
        return {"processes": self.world, "distributed_type": str(self.acc.distributed_type).split(".")[-1],
                "mixed_precision": self.acc.mixed_precision}
