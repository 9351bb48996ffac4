"""Sharded evaluation over processes started by `accelerate launch` or `torchrun`.

The launcher sets RANK, WORLD_SIZE and LOCAL_RANK; this module reads them, joins the ranks with
`torch.distributed` (gloo on CPU, NCCL on CUDA; one GPU per rank, `cuda:LOCAL_RANK`) and offers the three
collectives the runner needs: a barrier, "rank 0 does this, everyone learns how it went", and shutdown.
Items are split in whole generation batches (the batches a single process forms over the full item list, dealt
round-robin by global batch index), so every rank generates exactly what one process would, and the merged run is
identical to a single-process run.

torch is imported only inside the functions that need it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Mapping, Sequence, TypeVar

from csr_bench.errors import UserError

T = TypeVar("T")

# How long a rank waits at a barrier for the others (the slowest shard's remaining generation). Generous: a
# rank that dies is reaped by the launcher, which then stops the others, so this only bounds true hangs.
BARRIER_TIMEOUT = timedelta(hours=3)


@dataclass(frozen=True)
class LaunchEnv:
    """Where this process sits among the ranks a launcher started (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.world_size > 1


def _env_int(environ: Mapping[str, str], key: str, default: int) -> int:
    raw = environ.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise UserError(f"environment variable {key}={raw!r}: expected an integer (set by accelerate launch or torchrun)") from None


def launch_env(environ: Mapping[str, str] | None = None) -> LaunchEnv:
    """The launch environment from RANK, WORLD_SIZE and LOCAL_RANK (as accelerate launch and torchrun set them)."""
    environ = os.environ if environ is None else environ
    world_size = _env_int(environ, "WORLD_SIZE", 1)
    rank = _env_int(environ, "RANK", 0)
    local_rank = _env_int(environ, "LOCAL_RANK", rank)
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise UserError(f"RANK={rank}, WORLD_SIZE={world_size}, LOCAL_RANK={local_rank}: expected 0 <= RANK < WORLD_SIZE")
    return LaunchEnv(rank=rank, world_size=world_size, local_rank=local_rank)


def is_main_process(environ: Mapping[str, str] | None = None) -> bool:
    """True in a single process and on rank 0 of a launch: the process that prints results."""
    return launch_env(environ).is_main


def uses_cuda(environ: Mapping[str, str] | None = None) -> bool:
    """CUDA is used when a device is visible, unless accelerate was told to stay on the CPU."""
    import torch

    environ = os.environ if environ is None else environ
    forced_cpu = environ.get("ACCELERATE_USE_CPU", "").strip().lower() in ("1", "true", "yes", "on")
    return torch.cuda.is_available() and not forced_cpu


def rank_device(env: LaunchEnv) -> str:
    """The device this rank's model lives on: `cuda:LOCAL_RANK` on CUDA, else `cpu`."""
    if not uses_cuda():
        return "cpu"
    import torch

    count = torch.cuda.device_count()
    if env.local_rank >= count:
        raise UserError(
            f"LOCAL_RANK={env.local_rank} but {count} CUDA device(s) are visible: start at most {count} process(es) "
            "per machine, or run on the CPU (CUDA_VISIBLE_DEVICES=)"
        )
    return f"cuda:{env.local_rank}"


def cut_batches(items: Sequence[T], batch_size: int) -> list[list[T]]:
    """The generation batches of a run: consecutive slices of the FULL item list (the last one may be short).

    Cut from all items, never from the items a resume still has to do, so that a fresh run, any resume, and any
    world size form the same batches (global batch b holds items b*batch_size ...).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: expected at least 1")
    return [list(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]


def shard_batches(batches: Sequence[T], rank: int, world_size: int) -> list[T]:
    """This rank's generation batches: the run's batches (see `cut_batches`), dealt round-robin by global batch
    index (batch b goes to rank b % world_size).

    Whole batches (not single items) keep every batch's composition, hence its padding and, when sampling,
    its seeded random draws, exactly as in a single-process run. Give it the batches of the run's full item
    list; the runner skips the batches a resumed run has already done.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world of size {world_size}")
    return list(batches[rank::world_size])


class ProcessGroup:
    """The ranks of a launch, joined with torch.distributed for the duration of a `with` block.

    A group that already exists (the caller's own) is used and left running; one made here is destroyed on
    exit. Only the main rank runs `on_main` work; the outcome, or its error, reaches every rank.
    """

    def __init__(self, env: LaunchEnv, *, timeout: timedelta = BARRIER_TIMEOUT):
        self.env = env
        self.timeout = timeout
        self.backend: str | None = None
        self._owned = False
        self._device_ids: list[int] | None = None

    def __enter__(self) -> "ProcessGroup":
        import torch
        import torch.distributed as dist

        if not dist.is_available():
            raise UserError("this torch build has no torch.distributed; run without a launcher")
        cuda = uses_cuda()
        if dist.is_initialized():
            self.backend = str(dist.get_backend())
            if dist.get_world_size() != self.env.world_size or dist.get_rank() != self.env.rank:
                raise RuntimeError("the existing torch.distributed group does not match RANK/WORLD_SIZE")
        else:
            kwargs: dict[str, Any] = {}
            if cuda:
                device = torch.device(rank_device(self.env))
                torch.cuda.set_device(device)
                kwargs["device_id"] = device  # binds NCCL to this rank's GPU
            self.backend = "nccl" if cuda else "gloo"
            dist.init_process_group(
                backend=self.backend, rank=self.env.rank, world_size=self.env.world_size, timeout=self.timeout, **kwargs
            )
            self._owned = True
        if self.backend == "nccl":
            self._device_ids = [torch.cuda.current_device()]
        return self

    def barrier(self) -> None:
        import torch.distributed as dist

        if self._device_ids is not None:
            dist.barrier(device_ids=self._device_ids)
        else:
            dist.barrier()

    def on_main(self, work: Callable[[], T]) -> T:
        """Run `work` on rank 0 only; every rank returns its (picklable) result or raises its error.

        A UserError reaches every rank as the same UserError, so all ranks fail with one line and exit 2
        instead of the others waiting at the next barrier. Doubles as a barrier.
        """
        import torch.distributed as dist

        outcome: list[Any] = [None]
        crash: BaseException | None = None
        if self.env.is_main:
            try:
                outcome[0] = ("ok", work())
            except UserError as e:
                outcome[0] = ("user_error", str(e))
            except BaseException as e:  # a bug: rank 0 re-raises it with its traceback, the others stop too
                crash = e
                outcome[0] = ("crash", f"{type(e).__name__}: {e}")
        dist.broadcast_object_list(outcome, src=0)
        kind, value = outcome[0]
        if kind == "ok":
            return value
        if crash is not None:
            raise crash
        if kind == "user_error":
            raise UserError(value)
        raise RuntimeError(f"rank 0 failed: {value}")

    def __exit__(self, *exc: object) -> bool:
        if self._owned:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self._owned = False
        return False
