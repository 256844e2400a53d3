"""One exception hierarchy for everything a user can cause or fix.

The CLI prints these without a traceback; any other exception is a bug in olive-ext
and keeps its traceback.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Any, Literal


class OliveExtError(Exception):
    """Base class: an error the user can act on. `hint` says what to do."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a recipe or a command line, located by its key path."""

    path: str
    message: str
    value: Any = field(default=None)
    has_value: bool = False
    allowed: str | None = None
    hint: str | None = None
    # "note": named to the user but not fatal (an Olive key we deliberately do differently).
    severity: Literal["error", "note"] = "error"
    # Why it is refused, where that is one of the reasons a recipe may legitimately stop at:
    # "sdk" / "device" (a vendor SDK or a device this machine lacks), "package" (a pip package to install),
    # "user_file" (a file the recipe names is missing), "hub" (a Hugging Face hub model or file a user script
    # loads, absent offline), "olive_refuses" (olive-ai's own check refuses the config, quoted), or "unhonoured"
    # (an Olive key olive-ext would drop: `--lenient` makes it a warning).
    category: Literal["sdk", "device", "package", "user_file", "hub", "olive_refuses", "unhonoured"] | None = None

    def render(self) -> str:
        """One line: key path, message, the value received, what is allowed, a hint."""
        parts = [f"{self.path}: {self.message}" if self.path else self.message]
        if self.has_value:
            parts.append(f"got {_short(self.value)}")
        if self.allowed:
            parts.append(f"allowed: {self.allowed}")
        text = "; ".join(parts)
        if self.hint:
            text += f" ({self.hint})"
        return text


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class UserInputError(OliveExtError):
    """Bad input: a flag, a file, a dataset, a model path. Exit code 2."""

    exit_code = 2


class RecipeError(UserInputError):
    """A recipe with one or more problems; every problem is reported at once."""

    def __init__(self, problems: list[Problem], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f" in {source}" if source else ""
        lines = [f"{len(problems)} problem{'s' if len(problems) != 1 else ''}{where}:"]
        lines += [f"  - {p.render()}" for p in problems]
        super().__init__("\n".join(lines))


class OutputExistsError(UserInputError):
    """The output folder exists and is not empty, and --overwrite was not given."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"output folder {path} exists and is not empty; nothing was written",
            hint="pass --overwrite (in Python: overwrite=True) to replace it, or choose another --output_path",
        )


class MissingDependencyError(OliveExtError):
    """An optional library needed for this step is not installed."""

    def __init__(self, package: str, purpose: str, install: str | None = None) -> None:
        super().__init__(
            f"{purpose} needs the Python package '{package}', which is not installed or cannot load",
            hint=f"install it with: pip install {install or package}",
        )


DISK_FULL_HINT = ("free space on that disk (`df -h PATH` shows it), or write elsewhere: --output_path for the output, "
                  "--cache_dir or OLIVE_EXT_CACHE for the cache of built models")


def disk_full(error: BaseException | None) -> bool:
    """Whether ``error`` (or what caused it) is a full disk: ENOSPC, also inside shutil's copytree error list."""
    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, OSError) and (error.errno == errno.ENOSPC or "[Errno 28]" in str(error)):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


class PassError(OliveExtError):
    """A pass failed while running; names the pass and what went wrong."""

    def __init__(self, pass_name: str, message: str, hint: str | None = None) -> None:
        super().__init__(f"pass '{pass_name}' failed: {message}", hint=hint)
        self.pass_name = pass_name


class ConstraintsNotMetError(OliveExtError):
    """No candidate met the run's constraints. Results are kept on disk; ``result`` holds them."""

    exit_code = 3

    def __init__(self, message: str, hint: str | None = None, result: Any = None) -> None:
        super().__init__(message, hint)
        self.result = result


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's preemption, `docker stop`, `kill PID`), raised where the command is: it ends as after
    Ctrl-C (temporary folders removed, a fine-tune's checkpoint written), not killed mid-write. Code that takes
    Ctrl-C as "stop this answer" (chat) lets it through."""
