"""This machine's timing lock: one candidate timed at a time, across processes (olive-ext runs, Ray workers).

A ``flock`` on files in the machine's temporary folder, released by the kernel when its process dies. Timings
hold it exclusively (:func:`measure_lock`); Ray builds hold it shared (:func:`build_share`), so a timing waits for
the builds in flight on its node and the builds that start after it asked wait for it (a turnstile file gives the
waiting timing the next turn). An evaluation worker takes it around its timing (``evaluate/worker.py``) unless its
parent holds it already (:data:`HELD_ENV`: a Ray task holds it around the whole evaluation).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger("olive_ext")

# set by a process that holds the lock for its evaluation workers (they would wait for their own parent)
HELD_ENV = "OLIVE_EXT_TIMING_LOCK_HELD"


def _lock_path(name: str) -> Path:
    return Path(tempfile.gettempdir()) / f"olive-ext-{name}-{os.getuid()}.lock"


def _flock_saying(fd: int, mode: int, path: Path) -> None:
    """``flock(fd, mode)``, saying first when another process holds it (a run stopped with Ctrl-Z holds it for as
    long as it is stopped: the waiting run would look hung)."""
    import fcntl

    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        logger.info("waiting for another process's timing or build on this machine (the lock %s)", path)
        fcntl.flock(fd, mode)


@contextlib.contextmanager
def measure_lock() -> Iterator[float]:
    """Hold this machine's timing lock: one candidate measured at a time per machine, and no Ray build beside
    it. Yields the seconds spent waiting."""
    import fcntl  # POSIX only, as the cache's build locks
    import time

    started = time.perf_counter()
    with open(_lock_path("turnstile"), "a+") as gate, open(_lock_path("measure"), "a+") as f:
        _flock_saying(gate.fileno(), fcntl.LOCK_EX, _lock_path("turnstile"))
        try:
            _flock_saying(f.fileno(), fcntl.LOCK_EX, _lock_path("measure"))
            try:
                yield time.perf_counter() - started
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        finally:
            fcntl.flock(gate.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def build_share() -> Iterator[None]:
    """Hold this machine's timing lock shared while a candidate builds: builds run side by side, never while
    a candidate is timed (a Ray node's other tasks made a time to first token 4-7x slower)."""
    import fcntl

    with open(_lock_path("turnstile"), "a+") as gate, open(_lock_path("measure"), "a+") as f:
        fcntl.flock(gate.fileno(), fcntl.LOCK_EX)  # a measurement waiting holds it: builds queue behind
        fcntl.flock(gate.fileno(), fcntl.LOCK_UN)
        fcntl.flock(f.fileno(), fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def timing_lock() -> Iterator[float]:
    """:func:`measure_lock` unless a parent process holds it for this one (:data:`HELD_ENV`); yields the wait."""
    if os.environ.get(HELD_ENV) == "1":
        yield 0.0
        return
    with measure_lock() as waited:
        yield waited
