"""Training on several processes with DistributedDataParallel (``torchrun``, ``radlens train --nproc N``).

``torchrun`` starts one process per GPU (or per share of the CPU cores) and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous in their environment; :func:`ranks_from_environment`
reads them, and ``train`` then:

* joins the process group (NCCL on GPUs, gloo on the CPU) and wraps the network in
  ``DistributedDataParallel``, which averages the gradients of every step across the ranks;
* gives each rank its own shard of every epoch (:func:`epoch_sampler`: a ``DistributedSampler``
  reseeded with ``set_epoch``), ``train.batch_size / world`` slices at a time, so that one step
  of all the ranks together sees ``train.batch_size`` slices, as one process does;
* sums the training loss across the ranks (:func:`sum_across`) and takes rank 0's decisions
  (early stopping, the end of the run: :func:`agree`);
* writes the run folder (checkpoints, metrics, best weights, card) from rank 0 only; every rank
  reads the last checkpoint when the run resumes, which is what ``torchrun --max-restarts``
  relies on (its restarts rerun the same command, with ``--resume``).

Validation runs on each rank over the whole validation split (it is small, and every rank then
holds the same figures without another collective).

Importing this module does not import torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from inference.errors import RadLensError

if TYPE_CHECKING:
    import torch


class DistributedError(RadLensError):
    """The distributed environment cannot be used (a bad torchrun environment, a batch that does not divide...)."""


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "")
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise DistributedError(f"the environment variable {name}={text!r} is not an integer") from None


def ranks_from_environment() -> Ranks:
    """The ranks ``torchrun`` (or another launcher following its conventions) set; one process when unset."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    local_world = _env_int("LOCAL_WORLD_SIZE", world)
    if world < 1 or not 0 <= rank < world or not 0 <= local_rank < max(local_world, 1):
        raise DistributedError(
            f"inconsistent torchrun environment: RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local_rank}"
        )
    return Ranks(rank, world, local_rank, local_world)


def rank_device(device: str, ranks: Ranks) -> str:
    """``cuda`` becomes this rank's GPU (``cuda:LOCAL_RANK``); the CPU stays the CPU."""
    if not (ranks.distributed and device == "cuda"):
        return device
    import torch

    if ranks.local_rank >= torch.cuda.device_count():
        raise DistributedError(
            f"local rank {ranks.local_rank} has no GPU of its own ({torch.cuda.device_count()} visible): "
            "start at most one process per GPU (torchrun --nproc-per-node)"
        )
    torch.cuda.set_device(ranks.local_rank)
    return f"cuda:{ranks.local_rank}"


def threads_per_rank(num_threads: int, ranks: Ranks) -> int:
    """``train.num_threads``, or with 0 (torch's default, every core) this rank's share of the cores:
    ranks that each start a thread per core fight over them."""
    if num_threads > 0 or not ranks.distributed:
        return num_threads
    return max(1, (os.cpu_count() or 1) // max(1, ranks.local_world))


def per_rank_batch(batch_size: int, ranks: Ranks) -> int:
    if batch_size % ranks.world:
        raise DistributedError(
            f"train.batch_size = {batch_size} does not divide among {ranks.world} processes; "
            f"choose a multiple of {ranks.world} (each step of all the processes sees train.batch_size samples)"
        )
    return batch_size // ranks.world


def _attempt_store(ranks: Ranks, timeout: timedelta) -> Any:
    """The rendezvous store of this attempt, or ``None`` (``env://``) outside torchrun's agent.

    Under ``torchrun`` the workers share their agent's store, and after a restart
    (``--max-restarts``) the previous attempt's addresses are still in it: the restarted ranks
    then tried to connect to the dead ones (measured: gloo's "connection refused", or a hang).
    Each attempt's keys therefore live under a prefix of their own."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    from torch.distributed import PrefixStore, TCPStore  # type: ignore[attr-defined]

    store = TCPStore(
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), ranks.world, is_master=False, timeout=timeout
    )
    return PrefixStore(f"radlens/attempt_{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)


@contextmanager
def process_group(ranks: Ranks, device: str) -> Iterator[None]:
    """The default process group while inside (NCCL for a GPU, gloo for the CPU), when distributed."""
    if not ranks.distributed:
        yield
        return
    import torch.distributed as dist

    created = False
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        timeout = timedelta(minutes=30)
        dist.init_process_group(
            backend, store=_attempt_store(ranks, timeout), rank=ranks.rank, world_size=ranks.world, timeout=timeout
        )
        created = True
    try:
        yield
        if created:
            dist.barrier()  # the ranks leave together: one destroying the group while another still used it hung
    finally:
        if created:
            dist.destroy_process_group()


def wrap(model: torch.nn.Module, ranks: Ranks, device: str) -> torch.nn.Module:
    """``model`` in ``DistributedDataParallel`` (gradients averaged across the ranks), or itself."""
    if not ranks.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [ranks.local_rank] if device.startswith("cuda") else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The network inside a ``DistributedDataParallel`` wrapper (its own attributes, its state dict)."""
    inner = getattr(model, "module", None)
    import torch

    return inner if isinstance(inner, torch.nn.Module) and type(model).__name__ == "DistributedDataParallel" else model


def epoch_sampler(dataset: Sequence[Any], ranks: Ranks, seed: int, epoch: int) -> Any:
    """This rank's shard of ``dataset`` for ``epoch``: the same permutation on every rank (``seed``
    and ``epoch``), every ``world``-th sample of it from ``rank`` on. The shards are padded to the
    same length (by repeating the first samples), so every rank takes the same number of steps."""
    from torch.utils.data import DistributedSampler

    shard: Any = dataset  # a sequence is all the sampler needs (its length)
    sampler: DistributedSampler[Any] = DistributedSampler(
        shard, num_replicas=ranks.world, rank=ranks.rank, shuffle=True, seed=seed & 0xFFFF_FFFF, drop_last=False
    )
    sampler.set_epoch(epoch)
    return sampler


def sum_across(values: Sequence[float], ranks: Ranks, device: str) -> list[float]:
    """Element-wise sums over the ranks (float64; on the GPU for NCCL)."""
    if not ranks.distributed:
        return list(values)
    import torch
    import torch.distributed as dist

    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t.cpu()]


def agree(flag: bool, ranks: Ranks, device: str) -> bool:
    """Rank 0's ``flag`` on every rank (a decision that must not differ between them)."""
    if not ranks.distributed:
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def torchrun_command(nproc: int, max_restarts: int, train_args: Sequence[str]) -> list[str]:
    """``torchrun`` on this machine (a standalone rendezvous on a free local port) running
    ``radlens train`` with ``train_args`` in ``nproc`` processes, restarting them up to
    ``max_restarts`` times (each restart resumes from the last checkpoint)."""
    import sys

    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
        f"--max-restarts={max_restarts}", "-m", "inference.cli.main", "train", *train_args,
    ]  # fmt: skip
