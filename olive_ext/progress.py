"""Progress bars (rich) for candidates, passes and long work inside passes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress

from olive_ext.console import make_console


class TaskHandle:
    """One bar: advance it, change its text, or show extra fields (loss, tokens/s)."""

    def __init__(self, progress: RichProgress | None, task_id: Any) -> None:
        self._progress = progress
        self._id = task_id

    def advance(self, n: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._id, n)

    def update(
        self,
        description: str | None = None,
        completed: float | None = None,
        total: float | None = None,
        info: str | None = None,
    ) -> None:
        if self._progress is None:
            return
        kwargs: dict[str, Any] = {}
        if description is not None:
            kwargs["description"] = description
        if completed is not None:
            kwargs["completed"] = completed
        if total is not None:
            kwargs["total"] = total
        if info is not None:
            kwargs["info"] = info
        self._progress.update(self._id, **kwargs)


class Progress:
    """A shared rich progress display; disabled (no output) when ``enabled`` is False."""

    def __init__(self, enabled: bool = True, console: Console | None = None) -> None:
        self.console = console or make_console(stderr=True)
        self._rich: RichProgress | None = None
        if enabled:
            self._rich = RichProgress(
                SpinnerColumn(),
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=self.console,
                transient=False,
            )
        self._depth = 0

    def __enter__(self) -> Progress:
        if self._rich is not None and self._depth == 0:
            self._rich.start()
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._rich is not None and self._depth == 0:
            self._rich.stop()

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None, transient: bool = False) -> Iterator[TaskHandle]:
        """Show a bar for the duration of the block; with ``transient`` it disappears at the end."""
        if self._rich is None:
            yield TaskHandle(None, None)
            return
        with self:
            task_id = self._rich.add_task(description, total=total, info="")
            try:
                yield TaskHandle(self._rich, task_id)
            finally:
                if transient:
                    self._rich.remove_task(task_id)
                else:
                    self._rich.stop_task(task_id)

    def print(self, *args: Any, **kwargs: Any) -> None:
        self.console.print(*args, **kwargs)
