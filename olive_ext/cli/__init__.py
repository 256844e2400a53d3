"""The ``olive-ext`` command line. Each subcommand is one module in this package.

A command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``main(args) -> int``; modules are discovered, so a command is registered by adding
its file. Command modules import heavy libraries only inside ``main``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from types import ModuleType

from olive_ext.version import __version__

_NOT_COMMANDS = {"common"}


def _command_modules() -> list[ModuleType]:
    mods = []
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _NOT_COMMANDS and not info.name.startswith("_"):
            mod = importlib.import_module(f"{__name__}.{info.name}")
            if hasattr(mod, "NAME") and hasattr(mod, "main"):
                mods.append(mod)
    return sorted(mods, key=lambda m: getattr(m, "ORDER", 50))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand.

    Only ``command``'s flags are added (all commands' when it is None): a command's flags come from
    its options model, and importing every model would slow down `olive-ext --help`.
    """
    parser = argparse.ArgumentParser(
        prog="olive-ext",
        description=(
            "Fine-tune, convert, quantize, measure and package small language models for CPU, GPU and NPU. "
            "Flags follow Microsoft Olive's names, so `olive <command> ...` works as `olive-ext <command> ...`."
        ),
        epilog="Run `olive-ext <command> --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"olive-ext {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for mod in _command_modules():
        p = sub.add_parser(
            mod.NAME,
            help=mod.HELP,
            description=getattr(mod, "DESCRIPTION", mod.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if command is None or command == mod.NAME:
            mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    from olive_ext.cli.common import run_command
    from olive_ext.quiet import hide_library_noise

    hide_library_noise()  # the command line's own filters; importing olive_ext as a library changes none

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(next((a for a in argv if not a.startswith("-")), ""))
    if not argv:
        parser.print_help()
        return 0
    args, unknown = parser.parse_known_args(argv)
    mod = getattr(args, "_module", None)
    if mod is None:
        parser.print_help()
        return 2
    if unknown and not getattr(mod, "ACCEPTS_EXTRA_ARGS", False):
        from olive_ext.cli.common import unknown_flags_error

        return unknown_flags_error(parser, mod, unknown)
    args.extra_args = unknown
    return run_command(mod, args)
