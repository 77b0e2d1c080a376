"""All terminal output goes through here: Rich progress and messages on stderr, paths on stdout."""

from __future__ import annotations

import functools
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from adcli.batch.status import out_of_memory_message
from adcli.errors import AdcliError, render
from adcli.presets import SETTINGS

stderr = Console(stderr=True, highlight=False)
stdout = Console(highlight=False, soft_wrap=True)


def flag(name: str) -> str:
    """How the command line spells the setting ``name`` in a message: its option (``lr`` → ``--lr``)."""
    return SETTINGS[name].flag if name in SETTINGS else "--" + name.replace("_", "-")


def fail(message: str, code: int = 2) -> None:
    stderr.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn user mistakes into one line and an exit code; ADCLI_DEBUG=1 shows the traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except AdcliError as error:
            if os.environ.get("ADCLI_DEBUG"):
                traceback.print_exc()
            fail(error.render(flag), error.exit_code)
        except KeyboardInterrupt:
            stderr.print(
                "[yellow]interrupted[/]: finished images are kept, nothing half-written was left; "
                "run the same command with --resume to continue"
            )
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as error:  # a bug, not a user mistake: still one line unless debugging
            if type(error).__name__ == "OutOfMemoryError":  # torch's, recognised without importing torch
                fail(render(out_of_memory_message(""), flag) + "; or close other programs using the GPU", 1)
            if os.environ.get("ADCLI_DEBUG"):
                traceback.print_exc()
            fail(f"internal error: {type(error).__name__}: {error} (set ADCLI_DEBUG=1 to see the traceback)", 1)

    return wrapper


def step_detail(info: dict[str, Any]) -> str:
    """``step 3/50 · AD iteration 2/3`` for sampling (and the window batch when expanding)."""
    if "ad_iterations" not in info:
        return ""
    text = f"step {info['step']}/{info['total']}"
    if info["ad_iterations"]:
        text += f" · AD iteration {info['ad_iteration']}/{info['ad_iterations']}"
    if info.get("windows"):
        text += f" · windows {info.get('windows_done', 0)}/{info['windows']}"
    return text


class RichReporter:
    """Progress for the batch and for the current image, with the loss as it falls."""

    def __init__(self, quiet: bool = False, label: str = ""):
        self.quiet = quiet
        self.label = label  # e.g. "[rank 1] " in a multi-process run
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TextColumn("{task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=stderr,
            disable=self.quiet,
            transient=True,
        )
        self.batch_task: int | None = None
        self.item_task: int | None = None

    def __enter__(self) -> RichReporter:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def info(self, message: str) -> None:
        """A remark from below the CLI; its setting placeholders are spelled as flags."""
        if not self.quiet:
            self.progress.console.print(escape(self.label + render(message, flag)), soft_wrap=True)

    def loading(self, what: str) -> None:
        self.info(f"loading {what}")

    def job_started(self, index: int, total: int, name: str, steps: int) -> None:
        if total > 1:
            if self.batch_task is None:
                self.batch_task = self.progress.add_task("batch", total=total, loss="", detail="")
            self.progress.update(self.batch_task, completed=index)
        if self.item_task is not None:
            self.progress.remove_task(self.item_task)
        self.item_task = self.progress.add_task(escape(name), total=steps or None, loss="", detail="")

    def step(self, info: dict[str, Any]) -> None:
        """One engine progress report: the bar moves every iteration or step, with the loss."""
        if self.item_task is None:
            return
        step, total = info["step"], info["total"]
        fields: dict[str, str] = {}
        if info.get("loss") is not None:
            fields["loss"] = f"loss {info['loss']:.4f}"
        detail = step_detail(info)
        if detail:
            fields["detail"] = escape(detail)
        done = step if info.get("ad_iteration", 0) == info.get("ad_iterations", 0) else step - 1
        self.progress.update(self.item_task, completed=done, total=total, **fields)

    def job_done(self, name: str, path: Path, seconds: float) -> None:
        if self.batch_task is not None:
            self.progress.advance(self.batch_task)
        self.info(f"wrote {path} ({seconds:.1f} s)")
        stdout.print(escape(str(path)))

    def job_failed(self, name: str, message: str) -> None:
        if self.batch_task is not None:
            self.progress.advance(self.batch_task)
        self.progress.console.print(
            f"{escape(self.label)}[bold red]failed[/] {escape(name)}: {escape(message)}", soft_wrap=True
        )

    def job_skipped(self, name: str, path: Path) -> None:
        """Counted in the run's summary; one line per skipped job would drown a resumed batch."""
