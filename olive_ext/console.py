"""The rich console every command prints through."""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

# rich falls back to 80 columns when the output is not a terminal (a log file, CI), which cuts the
# candidate names and numbers out of our tables; such output gets this width instead.
NON_TERMINAL_WIDTH = 160


def make_console(stderr: bool = False) -> Any:
    """A rich Console on stdout (or stderr); terminals keep their own width, $COLUMNS wins when set. No emoji codes:
    a path in a message ("hf:m: ...") printed as "hfⓂ ..."."""
    stream = sys.stderr if stderr else sys.stdout
    terminal = hasattr(stream, "isatty") and stream.isatty()
    width = None if terminal or os.environ.get("COLUMNS") else NON_TERMINAL_WIDTH
    return _console_class()(stderr=stderr, width=width, emoji=False)


@functools.cache
def _console_class() -> Any:
    """rich's Console, except that a reader gone from the pipe raises BrokenPipeError, which the command line ends
    quietly with 0 (cli.main): rich's own exit 1 made `cache ls | head -1` fail about half the time."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError

    return _Console
