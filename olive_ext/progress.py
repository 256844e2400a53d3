"""Progress of long phases (training, builds, evaluation): one display, three ways to follow it.

- On a terminal (or in Jupyter) a live rich bar per phase; log lines print above the bars.
- Anywhere else (a log file, CI, ``nohup``) a plain line for the current phase every ``interval`` seconds,
  plus one when a phase starts and one when it ends: a live bar cannot draw there.
- ``on_update`` receives a :class:`ProgressEvent` on every change, for notebooks and other programs::

      from olive_ext.progress import Progress
      from olive_ext.workflows.finetune import finetune

      finetune(model, out, progress=Progress(enabled=False, on_update=lambda e: print(e.phase, e.completed)))
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

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
from olive_ext.errors import UserInputError

INTERVAL_ENV = "OLIVE_EXT_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 15.0  # seconds between plain progress lines: often enough to see life, rare enough to read


@dataclass(frozen=True)
class ProgressEvent:
    """One change of one phase, as :class:`Progress` passes it to ``on_update``.

    ``kind`` is ``start``, ``update`` or ``end``; ``total`` is None for phases of unknown length
    (loading a model, an evaluation); ``info`` holds the phase's figures (training: ``loss``,
    ``tokens_per_second``; builds: ``detail``, the pipeline being built).
    """

    phase: str
    kind: Literal["start", "update", "end"]
    completed: float
    total: float | None
    info: Mapping[str, Any]
    elapsed: float  # seconds since the phase started
    eta: float | None  # seconds left at the rate of this phase so far, when it can be told


ProgressCallback = Callable[[ProgressEvent], None]


def interval_from_env(default: float = DEFAULT_INTERVAL) -> float:
    """Seconds between plain progress lines: ``$OLIVE_EXT_PROGRESS_INTERVAL`` when set to a positive number."""
    try:
        value = float(os.environ.get(INTERVAL_ENV, ""))
    except ValueError:
        return default
    return value if value > 0 else default


def format_info(info: Mapping[str, Any]) -> str:
    """A phase's figures as short text: ``loss 1.234 · 250 tok/s · model_builder -> parity_check``."""
    parts = []
    for key, value in info.items():
        if value is None:
            continue
        if key == "loss":
            parts.append(f"loss {value:.3f}")
        elif key == "tokens_per_second":
            parts.append(f"{value:,.0f} tok/s")
        elif key == "detail":
            parts.append(str(value))
        else:
            parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
    return " · ".join(parts)


def _clock(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class _Phase:
    """What is known about one phase; ``baseline`` is where this session's rate is measured from."""

    description: str
    total: float | None
    completed: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    baseline: tuple[float, float] | None = None  # (completed, time) when counting began; None: (0, started)
    last_line: float = 0.0

    def eta(self, now: float) -> float | None:
        if self.total is None:
            return None
        base_done, base_time = self.baseline or (0.0, self.started)
        done, since = self.completed - base_done, now - base_time
        if done <= 0 or since <= 0:
            return None
        return max(0.0, (self.total - self.completed) * since / done)

    def event(self, kind: Literal["start", "update", "end"]) -> ProgressEvent:
        now = time.monotonic()
        return ProgressEvent(self.description, kind, self.completed, self.total, dict(self.info),
                             now - self.started, self.eta(now))  # fmt: skip

    def line(self, kind: Literal["start", "update", "end"]) -> str:
        """The plain line for a log: ``fine-tuning (lora): 12/40 (30%) · loss 1.234 · elapsed 0:31 · eta 1:12``."""
        now = time.monotonic()
        if self.total is not None:
            share = f" ({100 * self.completed / self.total:.0f}%)" if self.total else ""
            state = f"{self.completed:g}/{self.total:g}{share}"
        else:
            state = "started" if kind == "start" else "done" if kind == "end" else "running"
        parts = [f"{self.description}: {state}"]
        if self.info:
            parts.append(format_info(self.info))
        if kind != "start":
            parts.append(f"{'took' if kind == 'end' else 'elapsed'} {_clock(now - self.started)}")
        eta = self.eta(now)
        if kind == "update" and eta is not None:
            parts.append(f"eta {_clock(eta)}")
        return " · ".join(p for p in parts if p)


class TaskHandle:
    """One phase: advance it, change its text, or show its figures (loss, tokens/s, the step being built)."""

    def __init__(self, owner: Progress | None, phase: _Phase | None, task_id: Any = None) -> None:
        self._owner = owner
        self._phase = phase
        self._id = task_id

    def advance(self, n: float = 1) -> None:
        """Count ``n`` more units of work done."""
        if self._phase is not None:
            self.update(completed=self._phase.completed + n)

    def update(
        self,
        description: str | None = None,
        completed: float | None = None,
        total: float | None = None,
        info: str | Mapping[str, Any] | None = None,
    ) -> None:
        """Change what is shown; ``info`` is a mapping of figures (see :func:`format_info`) or plain text."""
        if self._owner is None or self._phase is None:
            return
        self._owner._update(self._phase, self._id, description, completed, total, info)


class Progress:
    """Progress of long phases: a live bar on a terminal, plain lines in a log, events for ``on_update``.

    ``enabled=False`` shows nothing (``on_update`` still gets every event). ``interval`` is the
    seconds between plain lines (default ``$OLIVE_EXT_PROGRESS_INTERVAL`` or 15).
    """

    def __init__(
        self,
        enabled: bool = True,
        console: Console | None = None,
        on_update: ProgressCallback | None = None,
        interval: float | None = None,
    ) -> None:
        self.console = console or make_console(stderr=True)
        self.on_update = on_update
        self.interval = interval if interval is not None and interval > 0 else interval_from_env()
        live = enabled and (self.console.is_terminal or self.console.is_jupyter)
        self._lines = enabled and not live
        self._rich: RichProgress | None = None
        if live:
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
        self._phases: list[_Phase] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._log_consoles: list[tuple[Any, Any]] = []

    def __enter__(self) -> Progress:
        if self._depth == 0:
            if self._rich is not None:
                self._route_log_handlers()
                self._rich.start()
            elif self._lines:
                self._stop.clear()
                self._ticker = threading.Thread(target=self._tick, name="olive-ext-progress", daemon=True)
                self._ticker.start()
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            if self._rich is not None:
                self._rich.stop()
                self._restore_log_handlers()
            if self._ticker is not None:
                self._stop.set()
                self._ticker.join()
                self._ticker = None

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None, transient: bool = False) -> Iterator[TaskHandle]:
        """Show a phase for the duration of the block; with ``transient`` its bar disappears at the end."""
        phase = _Phase(description, total)
        with self:
            task_id = self._rich.add_task(description, total=total, info="") if self._rich is not None else None
            with self._lock:
                self._phases.append(phase)
            self._emit(phase, "start")
            try:
                yield TaskHandle(self, phase, task_id)
            finally:
                with self._lock:
                    self._phases.remove(phase)
                if self._rich is not None and task_id is not None:
                    if transient:
                        self._rich.remove_task(task_id)
                    else:
                        self._rich.stop_task(task_id)
                self._emit(phase, "end")

    def print(self, *args: Any, **kwargs: Any) -> None:
        """Print through the progress console (above the live bars)."""
        self.console.print(*args, **kwargs)

    def _update(self, phase: _Phase, task_id: Any, description: str | None, completed: float | None,
                total: float | None, info: str | Mapping[str, Any] | None) -> None:  # fmt: skip
        with self._lock:
            if description is not None:
                phase.description = description
            if total is not None:
                phase.total = total
            if completed is not None:
                if total is not None:  # the count starts (or restarts, resuming training) here: the rate too
                    phase.baseline = (completed, time.monotonic())
                phase.completed = completed
            if info is not None:
                phase.info = {"detail": info} if isinstance(info, str) else dict(info)
        if self._rich is not None:
            fields: dict[str, Any] = {"description": description, "completed": completed, "total": total}
            if info is not None:
                fields["info"] = format_info(phase.info)
            self._rich.update(task_id, **{k: v for k, v in fields.items() if v is not None})
        if self.on_update is not None:
            self.on_update(phase.event("update"))

    def _emit(self, phase: _Phase, kind: Literal["start", "end"]) -> None:
        if self._lines:
            self._print_line(phase, kind)
        if self.on_update is not None:
            self.on_update(phase.event(kind))

    def _print_line(self, phase: _Phase, kind: Literal["start", "update", "end"]) -> None:
        phase.last_line = time.monotonic()
        self.console.print(phase.line(kind), markup=False, highlight=False, soft_wrap=True)

    def _tick(self) -> None:
        """Every ``interval`` seconds, a line for the innermost phase (plain-line mode).

        Only the innermost: the outer ones (the candidates of a fine-tune) would repeat the same
        line; they print when they start and end."""
        while not self._stop.wait(min(1.0, self.interval / 4)):
            now = time.monotonic()
            with self._lock:
                if self._phases and now - self._phases[-1].last_line >= self.interval:
                    self._print_line(self._phases[-1], "update")

    def _route_log_handlers(self) -> None:
        """Send rich log handlers through this console while the bars are live, so lines print above them.

        A second console on the same terminal writes past rich's live display, and its lines land in
        the middle of the bars."""
        from rich.logging import RichHandler

        for name in ("olive_ext", ""):
            for handler in logging.getLogger(name).handlers:
                if isinstance(handler, RichHandler) and handler.console is not self.console:
                    self._log_consoles.append((handler, handler.console))
                    handler.console = self.console

    def _restore_log_handlers(self) -> None:
        for handler, console in self._log_consoles:
            handler.console = console
        self._log_consoles.clear()


def progress_or_quiet(progress: Any) -> Progress:
    """``progress`` as the API's functions take it: a :class:`Progress`, or None for none shown. Anything else is
    refused by name (``finetune(progress=1)`` was a TypeError deep in training)."""
    if progress is None:
        return Progress(enabled=False)
    if not isinstance(progress, Progress):
        raise UserInputError(
            f"progress={progress!r} is not an olive_ext.progress.Progress",
            hint="give Progress(on_update=callback) to follow the phases, or leave progress out",
        )
    return progress
