"""Flags shared by commands, logging setup, and the error boundary of every command."""

from __future__ import annotations

import argparse
import difflib
import logging
from types import ModuleType
from typing import Any

from olive_ext.errors import OliveExtError
from olive_ext.hub import go_offline_if_unreachable

_OLIVE_LEVELS = {0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR, 4: logging.CRITICAL}


def add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log_level",
        default="1",
        help="0 debug, 1 info (default), 2 warning, 3 error, 4 critical (Olive's numbers), or a level name",
    )


def add_output(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    parser.add_argument(
        "-o",
        "--output_path",
        default=default,
        required=default is None,
        help="output folder; an existing non-empty folder is kept unless --overwrite",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")


def add_cache_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache_dir",
        default=None,
        help="cache of built models and evaluations (default: $OLIVE_EXT_CACHE or ~/.cache/olive-ext)",
    )


def setup_logging(level: str) -> None:
    from rich.logging import RichHandler

    from olive_ext.console import make_console

    numeric = _OLIVE_LEVELS.get(int(level)) if level.isdigit() else logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise OliveExtError(f"--log_level {level!r} is not a level", hint="use 0-4 or debug/info/warning/error")
    handler = RichHandler(show_path=False, show_time=False, markup=False, console=make_console(stderr=True))
    logger = logging.getLogger("olive_ext")
    logger.handlers[:] = [handler]
    logger.setLevel(numeric)
    logger.propagate = False


# flags whose values may name hub models or datasets (probed once; see olive_ext/hub.py)
_HUB_ARGS = ("model_name_or_path", "base_model_path", "data_name", "adapter_path", "tokenizer")


def _hub_values(args: argparse.Namespace) -> list[str]:
    values: list[str] = []
    for name in _HUB_ARGS:
        value = getattr(args, name, None)
        values += [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)] if value else []
    return values


def run_command(mod: ModuleType, args: argparse.Namespace) -> int:
    """Run a command; a user's mistake prints a message (no traceback) and a non-zero code."""
    try:
        setup_logging(str(getattr(args, "log_level", "1")))
        go_offline_if_unreachable(_hub_values(args))
        return int(mod.main(args) or 0)
    except OliveExtError as e:
        print_error(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        print_error("interrupted; finished steps are cached and a rerun resumes from them")
        return 130


def print_error(message: str) -> None:
    from rich.markup import escape

    from olive_ext.console import make_console

    console = make_console(stderr=True)  # escape: messages quote runtime errors and lists, which hold brackets
    console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False, soft_wrap=True)


def unknown_flags_error(parser: argparse.ArgumentParser, mod: ModuleType, unknown: list[str]) -> int:
    """Name each unknown flag with a did-you-mean, or what to write instead (e.g. for Olive flags)."""
    sub = next(a for a in parser._subparsers._group_actions if isinstance(a, argparse._SubParsersAction))  # type: ignore[union-attr]
    known = [opt for action in sub.choices[mod.NAME]._actions for opt in action.option_strings]
    replacements: dict[str, str] = getattr(mod, "OLIVE_REPLACEMENTS", {})
    lines = []
    for flag in (u for u in unknown if u.startswith("-")):
        name = flag.split("=")[0]
        if name in replacements:
            lines.append(f"{name}: {replacements[name]}")
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        lines.append(f"{name}: unknown flag" + (f"; did you mean {close[0]}?" if close else ""))
    stray = [u for u in unknown if not u.startswith("-")]
    if stray:
        lines.append(f"unexpected arguments: {' '.join(stray)}")
    print_error(f"olive-ext {mod.NAME}: " + "; ".join(lines) + f"\n  see: olive-ext {mod.NAME} --help")
    return 2


def parse_bool(value: str) -> bool:
    """Olive writes booleans as flags with values (`--gradient_checkpointing true`)."""
    lowered = str(value).lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def unescape_template(template: str) -> str:
    r"""Shell users type `\n` literally inside quotes (as Olive's docs do); make it a newline."""
    return template.replace("\\r\\n", "\n").replace("\\n", "\n").replace("\\t", "\t")


def add_data_arguments(parser: argparse.ArgumentParser, split_flag: str, split_default: str | None) -> None:
    """Olive's dataset flags: -d/--data_name, --data_files, a split flag, and how rows become text."""
    group = parser.add_argument_group("data")
    group.add_argument(
        "-d",
        "--data_name",
        default=None,
        help="'json', 'csv' or 'parquet' with --data_files, a local file, or a hub dataset id",
    )
    group.add_argument("--data_files", default=None, help="local data file(s), comma-separated")
    group.add_argument(split_flag, default=split_default, help="split expression, e.g. 'train[:90%%]'")
    group.add_argument(
        "--text_template",
        default=None,
        help="e.g. 'Q: {question}\\nA: {answer}'; a trailing {column} is the answer "
        "(\\n typed literally becomes a newline)",
    )
    group.add_argument("--text_field", default=None, help="column holding ready text")
    group.add_argument(
        "--use_chat_template",
        action="store_true",
        help="rows hold chat messages (column 'messages'), rendered with the model's chat template",
    )
    group.add_argument(
        "--response_field",
        default=None,
        help="column with the expected answer (default: the template's trailing field)",
    )
    group.add_argument("--max_samples", type=int, default=None, help="use at most this many rows")


def dataset_spec_from_args(args: argparse.Namespace, split: str | None) -> Any:
    """A DatasetSpec from the data flags, or None when no data was named."""
    from olive_ext.data.load import builder_for_file
    from olive_ext.errors import UserInputError
    from olive_ext.recipe.schema import DatasetSpec

    name, files = args.data_name, args.data_files
    file_list = [f.strip() for f in files.split(",") if f.strip()] if files else None
    if name is None and file_list:
        name = builder_for_file(file_list[0]) or "json"
    if name is None:
        return None
    fmt = "messages" if args.use_chat_template else ("text" if args.text_field else "auto")
    try:
        return DatasetSpec(
            name=name,
            data_files=file_list[0] if file_list and len(file_list) == 1 else file_list,
            split=split or "train",
            format=fmt,
            text_template=unescape_template(args.text_template) if args.text_template else None,
            text_field=args.text_field,
            response_field=args.response_field,
            max_samples=args.max_samples,
        )
    except ValueError as e:  # pydantic's ValidationError is a ValueError
        raise UserInputError(f"data flags: {e}") from e
