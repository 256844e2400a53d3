"""Helpers shared by the benchmark scripts: timing a command's process tree, the machine line, RESULTS.md sections."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    import psutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "OLIVE_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}


@dataclass
class Timed:
    argv: list[str]
    returncode: int
    seconds: float
    peak_rss_mb: float
    log: Path
    timed_out: bool = False
    over_memory: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.over_memory

    def error(self) -> str:
        """The root cause in the log: the first exception line (chained tracebacks print it first) or CLI 'error: '."""
        text = re.sub(r"\x1b\[[0-9;]*m", "", self.log.read_text(errors="replace")) if self.log.exists() else ""
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        errors = [ln for ln in lines if re.match(r"^([\w.]*(Error|Exception)|error): ", ln)]
        if self.over_memory:
            return f"stopped at {self.peak_rss_mb:.0f} MB (over the run's memory limit)"
        if self.timed_out:
            return f"stopped after {self.seconds:.0f} s"
        return (errors[0] if errors else (lines or ["failed"])[-1])[:200].replace("|", "/")


def run_timed(
    argv: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 3600,
    max_rss_mb: float | None = None,
) -> Timed:
    """Run a command to completion; wall time and the peak RSS of its whole process tree (sampled every 50 ms).

    The tree is killed past ``timeout`` seconds, or when its RSS passes ``max_rss_mb`` (a watchdog for a
    shared machine).
    """
    import psutil

    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **OFFLINE_ENV, **(env or {})}
    started = time.perf_counter()
    timed_out = over_memory = False
    peak = 0
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=cwd)
        root = psutil.Process(proc.pid)
        try:
            while proc.poll() is None:
                with contextlib.suppress(psutil.Error):
                    peak = max(peak, sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]))
                over = max_rss_mb is not None and peak > max_rss_mb * 2**20
                if (time.perf_counter() - started > timeout or over) and not (timed_out or over_memory):
                    timed_out, over_memory = not over, over
                    _kill_tree(root)
                time.sleep(0.05)
        except BaseException:  # Ctrl-C or an error here: the tree must not outlive the benchmark
            _kill_tree(root)
            proc.wait()
            raise
    return Timed(argv, proc.returncode, time.perf_counter() - started, peak / 2**20, log, timed_out, over_memory)


def _kill_tree(root: psutil.Process) -> None:
    """Kill a process and its descendants (children first), ignoring those already gone."""
    import psutil

    procs = [root]
    with contextlib.suppress(psutil.Error):
        procs = [*root.children(recursive=True), root]
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()


def spread(values: list[float], digits: int = 1) -> str:
    """'median (min-max)' of a list of numbers."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def wait_for_quiet(max_load: float, max_wait: float) -> float:
    """Wait (up to max_wait seconds) until the 1-minute load average drops below max_load; return it."""
    deadline = time.time() + max_wait
    while load_average() >= max_load and time.time() < deadline:
        time.sleep(15)
    return load_average()


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_line() -> str:
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    return f"{platform.machine()} {cpu_name()}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"


def today() -> str:
    return datetime.date.today().isoformat()


def portable_paths(text: str) -> str:
    """``text`` with this machine's paths made readable elsewhere: the repository's relative, the home as ``~``.

    RESULTS.md is read on other machines; a path like /work/main/recipes/data/tone.jsonl means nothing there.
    """
    home = str(Path.home())
    for root, shown in ((str(ROOT), "."), *(((home, "~"),) if home not in ("/", "") else ())):
        text = text.replace(root + os.sep, "" if shown == "." else shown + os.sep)
        text = re.sub(re.escape(root) + r"(?![\w.-])", shown, text)
    return text


def output_path(text: str | Path) -> Path:
    """An argparse ``type`` for --write/--json: the path (relative to the current directory) made absolute.

    Its folder is created now; refused before any benchmark runs when it could not be written at the end:
    a folder, a read-only file, or a parent folder that cannot be created or written.
    """
    path = Path(text).expanduser().absolute()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder: give a file path")
    if path.exists() and not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text} is not writable: give a file you can write")
    if path.parent.exists() and not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{path.parent} is a file, not a folder: give another path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot create {path.parent} ({e.strerror}): give another path") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{path.parent} is not writable: give another path")
    return path


def shown_path(path: Path) -> str:
    """``path`` as a command line quoted in RESULTS.md shows it: relative to the repository root when inside it."""
    path = Path(path).absolute()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def run_main(main: Callable[[], object]) -> NoReturn:
    """Run a benchmark's ``main()`` and exit with its result; Ctrl-C exits 130 with one line, not a traceback."""
    try:
        result = main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    raise SystemExit(result if isinstance(result, int) else 0)


def write_section(path: Path, title: str, body: str) -> None:
    """Replace the '## title' section of a markdown file (or append it), keeping the others in place.

    Paths are written relative to the repository (see portable_paths); the file's folder is created if missing."""
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    section = f"## {title}\n\n{portable_paths(body).strip()}\n"
    start = old.find(f"\n## {title}\n")
    if start >= 0:
        end = old.find("\n## ", start + 1)
        new = old[: start + 1] + section + ("\n" + old[end + 1 :] if end >= 0 else "")
    else:
        new = old.rstrip() + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)
