"""The ``olive-ext`` command line. Each subcommand is one module in this package.

A command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``main(args) -> int``; modules are discovered, so a command is registered by adding
its file. Command modules import heavy libraries only inside ``main``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
from types import ModuleType

from olive_ext.version import __version__

_NOT_COMMANDS = {"common"}

# Olive 0.13's commands that olive-ext does not have, with what to run instead (one line each).
OLIVE_ONLY_COMMANDS = {
    "capture-onnx-graph": "to convert to ONNX run `olive-ext auto-opt -m MODEL --precision fp32 -o OUT` "
    "(LLMs, onnxruntime-genai) or `olive-ext quantize` (int4/int8); encoders: a recipe with the onnx_export pass",
    "convert-adapters": "run `olive-ext generate-adapter -m BASE --adapter_path ADAPTER... -o OUT`: it writes "
    ".onnx_adapter files checked against peft",
    "export-adapters": "run `olive-ext generate-adapter -m BASE --adapter_path ADAPTER... -o OUT`",
    "extract-adapters": "run `olive-ext generate-adapter` (a base and .onnx_adapter files), or a recipe "
    "with the extract_adapters pass",
    "benchmark": "`olive-ext auto-opt` measures latency, throughput, memory, size and accuracy of every "
    "candidate (candidates.json); `olive-ext verify BUNDLE` smoke-runs a packaged model",
    "tune-session-params": "`olive-ext auto-opt` measures each candidate with onnxruntime-genai; the "
    "model_builder pass's `threads` sets intra-op threads in genai_config.json",
    "perf-tuning": "`olive-ext auto-opt` measures each candidate with onnxruntime-genai; the "
    "model_builder pass's `threads` sets intra-op threads in genai_config.json",
    "run-pass": "write a recipe with that one pass and run `olive-ext run --config RECIPE` "
    "(`olive-ext validate --list-passes` lists the passes)",
    "shared-cache": "olive-ext has no cloud cache; `olive-ext cache ls|prune` manages the local one "
    "(--cache_dir or $OLIVE_EXT_CACHE may name a shared folder)",
    "cloud-cache": "olive-ext has no cloud cache; `olive-ext cache ls|prune` manages the local one",
    "configure-qualcomm-sdk": "not needed: the qdq_static pass writes QNN-ready QDQ models without "
    "the SDK (recipes/minilm-npu-qnn.yaml)",
    "manage-aml-compute": "olive-ext runs locally only (no Azure ML); run the same command on the machine",
    "generate-cost-model": "olive-ext does not split models across devices, so it needs no cost model",
    "diffusion-lora": "olive-ext fine-tunes language models only: `olive-ext finetune`",
    "init": "start from a ready recipe in recipes/ (see recipes/README.md) and check it with `olive-ext validate`",
    "generate-model-package": "run `olive-ext package -m OUT -o BUNDLE` (-m: one auto-opt or generate-adapter "
    "output; --name and --version for Olive's --model_name and --model_version)",
    "model-package": "run `olive-ext package -m OUT -o BUNDLE`",
}


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
    """Entry point of the console script; returns the exit code. Ctrl-C while it starts (importing, parsing) is
    exit 130 with one line, as during a command: it was a traceback through the imports. A reader that stopped
    early (`olive-ext cache ls | head -1`) ends any command quietly with 0, as `validate --list-passes` did (a
    traceback and exit 1 about half the time before); a closed stdout or stderr (`>&-`) is written nowhere (an
    AttributeError on None before)."""
    _closed_streams_to_devnull()
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("error: interrupted before the command started; nothing was done", file=sys.stderr)
        return 130
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise
        import os

        # what is still buffered goes nowhere, so the interpreter's exit does not fail on it again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _closed_streams_to_devnull() -> None:
    """sys.stdout/sys.stderr are None when the process starts with that descriptor closed."""
    import os

    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115 (the process's, for good)


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (poll says POLLERR), not some other broken pipe (a
    socket's, a subprocess's)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def negative_values(argv: list[str]) -> list[str]:
    """``--flag -1d`` as ``--flag=-1d``: argparse takes a value that starts with "-" for another flag unless it is a
    plain number, and said "expected one argument" (`cache prune --older-than -1d`, `--learning_rate -1e-4`); the
    value now reaches its check, which says what it must be."""
    out: list[str] = []
    for arg in argv:
        if out and re.match(r"-(\.?\d|inf$|nan$|infinity$)", arg, re.I) and re.fullmatch(r"--[A-Za-z][\w-]*", out[-1]):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def _main(argv: list[str] | None) -> int:
    from olive_ext.cli.common import run_command

    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), "")
    parser = build_parser(command)
    if command not in ("export", "run", "validate") and (said := llama_factory_answer(argv[argv.index(command) + 1 :]
                                                                                   if command else [])):  # fmt: skip
        from olive_ext.cli.common import print_error

        print_error(said)
        return 2
    if command and command not in subcommands(parser):
        return unknown_command_error(command, list(subcommands(parser)))
    if not argv:
        parser.print_help()
        return 0
    argv = negative_values(bare_bool_flags(parser, command, argv))
    args, unknown = parser.parse_known_args(argv)
    mod = getattr(args, "_module", None)
    if mod is None:
        parser.print_help()
        return 2
    from olive_ext.cli.common import print_error, repeated_flag_error

    if said := repeated_flag_error(parser, mod, argv):
        print_error(said)
        return 2
    if unknown and not getattr(mod, "ACCEPTS_EXTRA_ARGS", False):
        from olive_ext.cli.common import unknown_flags_error

        return unknown_flags_error(parser, mod, unknown)
    args.extra_args = unknown
    from olive_ext.cpu_threads import apply_wait_policy, plan_threads
    from olive_ext.onnx.runtime import runtime_telemetry_off
    from olive_ext.quiet import hide_library_noise

    # the command's own filters and switches (after parsing: --help stays fast); importing olive_ext changes none
    hide_library_noise()
    runtime_telemetry_off()  # before the command can import onnxruntime: it reads the switch once, at load
    apply_wait_policy(plan_threads())  # before torch loads OpenMP, which reads OMP_WAIT_POLICY once
    return run_command(mod, args)


def bare_bool_flags(parser: argparse.ArgumentParser, command: str, argv: list[str]) -> list[str]:
    """``argv`` with "true" after each bare boolean flag (``--lenient``) whose next word is not a boolean, so that
    argparse does not take that word as the flag's value: `validate --lenient FILE` failed "expected true or false,
    got 'FILE'"."""
    command_parser = subcommands(parser).get(command)
    if command_parser is None:  # `olive-ext --help`: nothing imported for it
        return argv
    from olive_ext.options import parse_bool  # loaded already: the command's flags were built from its options

    flags = {f for a in command_parser._actions if a.type is parse_bool and a.nargs == "?" for f in a.option_strings}
    if not any(not a.option_strings for a in command_parser._actions):
        return argv  # no positional argument to keep apart: `--gguf maybe` is argparse's "expected true or false"
    out: list[str] = []
    for i, word in enumerate(argv):
        out.append(word)
        following = argv[i + 1] if i + 1 < len(argv) else None
        if word in flags and following is not None and not following.startswith("-"):
            try:
                parse_bool(following)
            except argparse.ArgumentTypeError:
                out.append("true")
    return out


def llama_factory_answer(args: list[str]) -> str | None:
    """What to run for a LLaMA-Factory YAML given as a command's argument, as its guide writes them
    (`llamafactory-cli train|chat|api FILE.yaml` with olive-ext in front): the finetune command a training config
    means, `export` for a merge, auto-opt then chat/serve for an inference config. None when no argument is one."""
    from pathlib import Path

    files = [a for a in args if a.endswith((".yaml", ".yml", ".json")) and Path(a).is_file()]
    model = next((args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-m", "--model_name_or_path")), None)
    if model is not None and model.endswith((".yaml", ".yml")) and Path(model).is_file():
        files = [model]  # `chat -m inference.yaml`: a YAML is no model ("holds no onnxruntime-genai model" before)
    elif not files or any(a in ("-m", "--model_name_or_path", "--config", "-h", "--help") for a in args):
        return None  # every other command line: nothing imported, start-up unchanged
    from olive_ext.errors import UserInputError
    from olive_ext.recipe.llama_factory import llama_factory_config_problem
    from olive_ext.recipe.load import read_recipe_file

    for arg in files:
        try:
            problem = llama_factory_config_problem(read_recipe_file(arg), Path(arg).parent, arg)
        except UserInputError:
            continue
        if problem is not None:
            return str(UserInputError(f"{arg}: {problem.message}", hint=problem.hint))
    return None


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The top-level ``parser``'s subcommands by name, each with its own parser."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def unknown_command_error(command: str, known: list[str]) -> int:
    """One line for a command we do not have: what to run instead of an Olive command, else a did-you-mean."""
    import difflib

    from olive_ext.cli.common import print_error

    if command in OLIVE_ONLY_COMMANDS:
        print_error(f"olive-ext has no {command} (an Olive command): {OLIVE_ONLY_COMMANDS[command]}")
        return 2
    # a did-you-mean names only our commands; a misspelt Olive command gets what to run instead of it
    close = difflib.get_close_matches(command, known + list(OLIVE_ONLY_COMMANDS), n=1, cutoff=0.6)
    if not close:
        guess = f"commands: {', '.join(sorted(known))}"
    elif close[0] in known:
        guess = f"did you mean {close[0]}?"
    else:
        guess = f"for Olive's {close[0]}: {OLIVE_ONLY_COMMANDS[close[0]]}"
    print_error(f"olive-ext has no command {command!r}; {guess} (see olive-ext --help)")
    return 2
