"""`olive-ext verify`: check a bundle before it goes onto a device."""

from __future__ import annotations

import argparse

from olive_ext.cli.common import add_log_level

NAME = "verify"
HELP = "check a bundle (folder or zip): checksums, loading, smoke generation, end-of-turn contract"
DESCRIPTION = """Check a bundle made by `olive-ext package`:

  - every file's sha256 and size against manifest.json (missing, extra or changed files are named)
  - archives with absolute paths, '..' or links are refused before anything is extracted
  - the model loads on this machine's execution provider (when it is available here)
  - a smoke generation with the base model and with each adapter
  - the end-of-turn contract: the shipped chat template is the one used in fine-tuning, and
    generation stops at the end-of-turn token instead of running to the length limit

Exit code 0 when every check passes, 1 otherwise.

  olive-ext verify bundles/tone-cpu.zip
"""
ORDER = 41


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="bundle folder or .zip")
    p.add_argument("--no-run", action="store_true", help="check files only; do not load the model")
    add_log_level(p)


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from olive_ext.console import make_console
    from olive_ext.workflows.package import verify

    report = verify(Path(args.bundle), run_model=not args.no_run)
    console = make_console()
    for check in report.checks:
        mark = "[green]ok[/]  " if check.ok else "[red]FAIL[/]"
        console.print(f"{mark} {check.name}: {check.detail}", highlight=False)
    console.print("[green]bundle verified[/]" if report.ok else "[red]bundle failed verification[/]")
    return 0 if report.ok else 1
