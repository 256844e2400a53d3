"""`olive-ext verify`: check a bundle before it goes onto a device."""

from __future__ import annotations

import argparse

from olive_ext.cli.common import add_log_level, option

READS_HUB = False  # built models only: no hub probe (olive_ext/cli/common.py)

NAME = "verify"
HELP = "check a bundle (folder or zip): digest, signature, checksums, loading, smoke generation, end of turn"
DESCRIPTION = """Check a bundle made by `olive-ext package`:

  - archives with absolute paths, '..', links or devices are refused before anything is extracted;
    in a folder, links and special files are named and never followed or read
  - with --expect: the manifest digest `package` printed (a file changed together with its
    line in manifest.json is caught here)
  - with --public_key: the model-signing signature (bundle.sig), with the key alone, offline
  - every file's sha256 and size against manifest.json (missing, extra or changed files are named)
  - the model loads on this machine's execution provider (when it is available here)
  - a smoke generation with the base model and with each adapter
  - the end-of-turn contract: the shipped chat template is the one used in fine-tuning, and
    generation stops at the end-of-turn token instead of running to the length limit

Exit codes: 0 when every check passes; 1 when the input is a bundle (manifest.json at its top) and a
check fails (a changed, missing or extra file, a manifest that does not parse, a bad signature, a model
that does not load or stop); 2 when the input is not a bundle to check: a bad flag, a path that is not
there, a zip that cannot be read, holds unsafe members or not exactly one top folder, or a folder or
zip without manifest.json.

  olive-ext verify bundles/tone-cpu.zip --expect sha256:<digest> --public_key pub.pem
"""
ORDER = 41
FAILURES_SHOWN = 10  # per check: a bundle with thousands of extra or changed files names ten, then counts the rest


def add_arguments(p: argparse.ArgumentParser) -> None:
    from olive_ext.workflows.package import VerifyOptions as O

    p.add_argument("bundle", help=O.model_fields["bundle"].description)
    option(p, O, "no_run", "--no_run", "--no-run", action="store_true")
    option(p, O, "expect")
    option(p, O, "public_key")
    add_log_level(p)


def main(args: argparse.Namespace) -> int:
    from olive_ext.cli.common import options_from_args
    from olive_ext.console import make_console
    from olive_ext.workflows.package import VerifyOptions, run_verify

    report = run_verify(options_from_args(VerifyOptions, args))
    console = make_console()
    shown: dict[str, int] = {}  # failures printed per check name
    for check in report.checks:
        if not check.ok:
            shown[check.name] = shown.get(check.name, 0) + 1
            if shown[check.name] > FAILURES_SHOWN:
                continue
        mark = "[green]ok[/]  " if check.ok else "[red]FAIL[/]"
        console.print(f"{mark} {check.name}: {_escape(check.detail)}", highlight=False, soft_wrap=True)
    for name, count in shown.items():
        if count > FAILURES_SHOWN:
            more = count - FAILURES_SHOWN
            console.print(f"[red]FAIL[/] {name}: {more} more like these ({count} in all)", highlight=False)
    console.print("[green]bundle verified[/]" if report.ok else "[red]bundle failed verification[/]")
    return 0 if report.ok else 1


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)  # details quote file names and model output, which may hold brackets
