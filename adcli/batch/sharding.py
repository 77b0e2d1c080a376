"""Splitting a job list across processes (``accelerate launch``, ``torchrun``, or RANK/WORLD_SIZE set by hand).

Job ``i`` belongs to process ``i % world``: every process plans the same list, so no job is run
twice or missed, and nothing needs to be sent between processes until the end, when the main
process gathers the results (over gloo, which works with or without GPUs) to print the summary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from adcli.errors import InputError

# Processes finish their shares at different times; the main one waits this long for the others.
GATHER_TIMEOUT = timedelta(hours=72)


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise InputError(f"environment variable {name}={text!r} must be a whole number") from None


@dataclass(frozen=True)
class Shard:
    """This process's place among the processes of a run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    connected: bool = False  # a launcher's rendezvous address (MASTER_ADDR) is there to gather results

    @property
    def gathers(self) -> bool:
        """Whether this process hands its results to the main one (else it reports them itself)."""
        return self.world > 1 and self.connected

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, index: int) -> bool:
        return index % self.world == self.rank

    def device(self, requested: str) -> str:
        """Each process of a multi-GPU run takes its own GPU (``cuda:LOCAL_RANK``) unless told otherwise."""
        if self.world > 1 and requested.strip().lower() in ("auto", "cuda"):
            import torch  # only in a multi-process run: the CLI starts without the model libraries

            if not torch.cuda.is_available():
                return requested
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return requested


def current_shard() -> Shard:
    """The shard the launcher gave this process (RANK, WORLD_SIZE, LOCAL_RANK), or the whole list."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise InputError(f"RANK={rank} and WORLD_SIZE={world} do not describe a process of the run (need 0 <= RANK < WORLD_SIZE)")
    connected = bool(os.environ.get("MASTER_ADDR"))
    return Shard(rank=rank, world=world, local_rank=_env_int("LOCAL_RANK", rank), connected=connected)


def gather(value: Any, shard: Shard) -> list[Any] | None:
    """Every process's ``value``, in rank order, on the main process (None elsewhere).

    Without a launcher's rendezvous address (RANK/WORLD_SIZE set by hand, e.g. one process per
    machine with no network between them) each process keeps only its own value.
    """
    if not shard.gathers:
        return [value]
    import torch.distributed as dist

    created = not dist.is_initialized()
    if created:
        dist.init_process_group("gloo", rank=shard.rank, world_size=shard.world, timeout=GATHER_TIMEOUT)
    try:
        group = dist.new_group(backend="gloo", timeout=GATHER_TIMEOUT) if not created else None
        values: list[Any] | None = [None] * shard.world if shard.is_main else None
        dist.gather_object(value, values, dst=0, group=group)
        return values
    finally:
        if created:
            dist.destroy_process_group()
