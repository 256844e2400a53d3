"""Read chat messages from a pipe so that a signal always ends the wait.

``input()`` on a pipe has a window no signal handler can reach: a SIGTERM that arrives after the prompt is written
and before ``read()`` blocks sets Python's flag, the handler waits for the next bytecode, and the process sleeps in
``read()`` until the input closes (`docker stop` then kills it 10 s later). CPython's own answer is the wakeup fd:
the C-level handler writes a byte to it, so a ``select`` on stdin and that fd returns even when the signal came
before the wait began, and Python runs the handler as soon as ``select`` returns.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
from collections.abc import Callable, Iterator

_CHUNK = 1 << 16


class LineTooLongError(Exception):
    """A line longer than the reader's limit: its bytes were read and dropped up to its newline."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"a line of {size} bytes (more than {limit})")
        self.size, self.limit = size, limit


class _PipeReader:
    """``input()`` for a stdin that is not a terminal: the same prompt, line and EOFError, read with ``select``.

    A line longer than ``max_line_bytes`` is read to its end and dropped, then :class:`LineTooLongError` is raised:
    a 30 MB line was held whole, decoded and tokenized (20 s and 1 GB) before the model's context refused it."""

    def __init__(self, fd: int, wake: int, encoding: str, errors: str, max_line_bytes: int | None = None) -> None:
        self.fd, self.wake, self.encoding, self.errors = fd, wake, encoding, errors
        self.max_line_bytes = max_line_bytes
        self.pending = bytearray()
        self.closed = False

    def _read_some(self) -> bytes:
        """The next bytes of stdin (b"" at its end), waiting in ``select`` so that a signal ends the wait."""
        while True:
            ready = select.select([self.fd, self.wake], [], [])[0]
            if self.wake in ready:  # a signal: Python runs its handler on return from this call
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake, _CHUNK)
            if self.fd in ready:
                return os.read(self.fd, _CHUNK)

    def __call__(self, prompt: str) -> str:
        sys.stdout.write(prompt)
        sys.stdout.flush()
        end = self.pending.find(b"\n")
        dropped = 0  # bytes of an over-long line read and let go
        while end < 0 and not self.closed:
            if self.max_line_bytes is not None and len(self.pending) + dropped > self.max_line_bytes:
                dropped += len(self.pending)
                self.pending.clear()
            chunk = self._read_some()
            self.closed = not chunk
            end = chunk.find(b"\n")
            if end >= 0:
                end += len(self.pending)
            self.pending += chunk
        size = dropped + (end if end >= 0 else len(self.pending))
        if self.max_line_bytes is not None and size > self.max_line_bytes:
            del self.pending[: end + 1 if end >= 0 else len(self.pending)]
            raise LineTooLongError(size, self.max_line_bytes)
        if not self.pending:
            raise EOFError
        if end < 0:
            end = len(self.pending)
        line = bytes(self.pending[:end])
        del self.pending[: end + 1]
        return line.decode(self.encoding, self.errors)


@contextlib.contextmanager
def line_reader(max_line_bytes: int | None = None) -> Iterator[Callable[[str], str]]:
    """A function like ``input`` that reads stdin: ``input`` itself on a terminal (line editing), where signals
    cannot be waited on this way (not POSIX, not the main thread, stdin without a file descriptor), or
    :class:`_PipeReader` with a wakeup fd set for as long as the context lasts, which raises
    :class:`LineTooLongError` for a line over ``max_line_bytes`` (a terminal's line is as long as a person types)."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a StringIO (notebooks, tests) or closed
        yield input
        return
    if os.name != "posix" or os.isatty(fd) or threading.current_thread() is not threading.main_thread():
        yield input
        return
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    previous = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    try:
        yield _PipeReader(fd, wake_r, sys.stdin.encoding or "utf-8", sys.stdin.errors or "strict", max_line_bytes)
    finally:
        signal.set_wakeup_fd(previous)
        os.close(wake_r)
        os.close(wake_w)
