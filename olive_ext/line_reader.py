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


class _PipeReader:
    """``input()`` for a stdin that is not a terminal: the same prompt, line and EOFError, read with ``select``."""

    def __init__(self, fd: int, wake: int, encoding: str, errors: str) -> None:
        self.fd, self.wake, self.encoding, self.errors = fd, wake, encoding, errors
        self.pending = b""
        self.closed = False

    def __call__(self, prompt: str) -> str:
        sys.stdout.write(prompt)
        sys.stdout.flush()
        while b"\n" not in self.pending and not self.closed:
            ready = select.select([self.fd, self.wake], [], [])[0]
            if self.wake in ready:  # a signal: Python runs its handler on return from this call
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake, _CHUNK)
            if self.fd in ready:
                chunk = os.read(self.fd, _CHUNK)
                self.pending += chunk
                self.closed = not chunk
        if not self.pending:
            raise EOFError
        line, _, self.pending = self.pending.partition(b"\n")
        return line.decode(self.encoding, self.errors)


@contextlib.contextmanager
def line_reader() -> Iterator[Callable[[str], str]]:
    """A function like ``input`` that reads stdin: ``input`` itself on a terminal (line editing), where signals
    cannot be waited on this way (not POSIX, not the main thread, stdin without a file descriptor), or
    :class:`_PipeReader` with a wakeup fd set for as long as the context lasts."""
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
        yield _PipeReader(fd, wake_r, sys.stdin.encoding or "utf-8", sys.stdin.errors or "strict")
    finally:
        signal.set_wakeup_fd(previous)
        os.close(wake_r)
        os.close(wake_w)
