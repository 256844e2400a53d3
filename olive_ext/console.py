"""The rich console every command prints through."""

from __future__ import annotations

import os
import sys
from typing import Any

# rich falls back to 80 columns when the output is not a terminal (a log file, CI), which cuts the
# candidate names and numbers out of our tables; such output gets this width instead.
NON_TERMINAL_WIDTH = 160


def make_console(stderr: bool = False) -> Any:
    """A rich Console on stdout (or stderr); terminals keep their own width, $COLUMNS wins when set. No emoji codes:
    a path in a message ("hf:m: ...") printed as "hfⓂ ..."."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    terminal = hasattr(stream, "isatty") and stream.isatty()
    width = None if terminal or os.environ.get("COLUMNS") else NON_TERMINAL_WIDTH
    return Console(stderr=stderr, width=width, emoji=False)
