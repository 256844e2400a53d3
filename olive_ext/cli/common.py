"""Flags shared by commands, logging setup, and the error boundary of every command."""

from __future__ import annotations

import argparse
import difflib
import errno
import logging
import signal
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from olive_ext.errors import DISK_FULL_HINT, OliveExtError, Terminated, UserInputError, disk_full
from olive_ext.models.hub import go_offline_if_unreachable

if TYPE_CHECKING:  # pydantic is imported only when a command's flags are built, not for `olive-ext --help`
    from olive_ext.options import Options
    from olive_ext.recipe.schema import Recipe

OptionsT = TypeVar("OptionsT", bound="Options")

_OLIVE_LEVELS = {0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR, 4: logging.CRITICAL}


def add_log_level(parser: argparse.ArgumentParser, nested: bool = False) -> None:
    """--log_level with Olive's numbers (0 debug ... 4 critical) or a level name. ``nested``: a sub-command's
    parser (`cache ls --log_level 3`), which leaves the command's value when not given."""
    parser.add_argument(
        "--log_level",
        default=argparse.SUPPRESS if nested else "1",
        help="0 debug, 1 info (default), 2 warning, 3 error, 4 critical (Olive's numbers), or a level name",
    )


def add_output(parser: argparse.ArgumentParser, model: type[Options]) -> None:
    """-o/--output_path and --overwrite, as the command's options model declares them."""
    option(parser, model, "output_path", "-o", "--output_path")
    option(parser, model, "overwrite", action="store_true")


def add_cache_dir(parser: argparse.ArgumentParser, model: type[Options]) -> None:
    """--cache_dir, as the command's options model declares it."""
    option(parser, model, "cache_dir")


def add_executor(parser: argparse.ArgumentParser, model: type[Options]) -> None:
    """--executor local|ray and --ray_address, as the command's options model declares them."""
    group = parser.add_argument_group("where candidates run")
    option(group, model, "executor")
    option(group, model, "ray_address")


def add_olive_accepted(group: Any, *, config_file: bool = True) -> None:
    """Olive's --disable_telemetry and (``config_file``: for commands that write recipe.yaml) --save_config_file:
    accepted, as they change nothing here."""
    if config_file:
        group.add_argument(
            "--save_config_file", action="store_true", help="accepted for Olive: recipe.yaml is always written"
        )
    group.add_argument("--disable_telemetry", action="store_true", help="accepted for Olive: olive-ext sends nothing")


# Olive flags several commands share that olive-ext does not take -> what to write instead (a command's
# OLIVE_REPLACEMENTS spreads the groups it shares with Olive's command of the same name)
OLIVE_INPUT_MODEL_FLAGS = {
    "--test": "not supported: pass a small local model with -m",
    "--model_script": "write a recipe whose input_model has model_script (as in an Olive config) and run "
    "`olive-ext run --config RECIPE`",
    "--script_dir": "write a recipe whose input_model has script_dir (as in an Olive config)",
}
OLIVE_SHARED_CACHE_FLAGS = {
    "--account_name": "not supported: olive-ext caches locally (--cache_dir)",
    "--container_name": "not supported: olive-ext caches locally (--cache_dir)",
}
OLIVE_DATA_FLAGS = {
    "--subset": "dataset configurations (subsets) are not supported; use a local file (-d json --data_files)",
    "--add_special_tokens": "not needed: the tokenizer's BOS is added when the model expects it, EOS after answers",
}


def setup_logging(level: str) -> None:
    """Send olive-ext's log records through the rich console on stderr at ``level``."""
    from rich.logging import RichHandler

    from olive_ext.console import make_console

    numeric = _OLIVE_LEVELS.get(int(level)) if level.isdigit() else logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise UserInputError(f"--log_level {level!r} is not a level", hint="use 0-4 or debug/info/warning/error")
    handler = RichHandler(show_path=False, show_time=False, markup=False, console=make_console(stderr=True))
    logger = logging.getLogger("olive_ext")
    logger.handlers[:] = [handler]
    logger.setLevel(numeric)
    logger.propagate = False


# flags whose values may name hub models or datasets (probed once; see olive_ext/models/hub.py)
_HUB_ARGS = ("model_name_or_path", "base_model_path", "data_name", "adapter_path", "tokenizer")


def _hub_values(args: argparse.Namespace) -> list[str]:
    values: list[str] = []
    for name in _HUB_ARGS:
        value = getattr(args, name, None)
        values += [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)] if value else []
    return values


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


def run_command(mod: ModuleType, args: argparse.Namespace) -> int:
    """Run a command; a user's mistake prints a message (no traceback) and a non-zero code."""
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (a caller's): leave signals alone
        return _run(mod, args)
    try:
        return _run(mod, args)
    finally:  # main() called in a longer-lived process (tests, notebooks) gives its handler back
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _run(mod: ModuleType, args: argparse.Namespace) -> int:
    try:
        setup_logging(str(getattr(args, "log_level", "1")))
        if getattr(mod, "READS_HUB", True):  # commands on built models never read the hub: no probe, no warning
            go_offline_if_unreachable(_hub_values(args))
        return int(mod.main(args) or 0)
    except OliveExtError as e:
        print_error(str(e))
        return e.exit_code
    except KeyboardInterrupt as e:
        what = "terminated" if isinstance(e, Terminated) else "interrupted"
        # only the commands that run steps through the cache resume (export, package, prune said it too)
        resumes = getattr(mod, "RESUMES", False)
        print_error(f"{what}; finished steps are cached and a rerun resumes from them" if resumes else what)
        return 143 if isinstance(e, Terminated) else 130
    except OSError as e:  # a full disk while writing the output or the cache: said, not a traceback
        if e.errno == errno.ENAMETOOLONG:  # a traceback from the first look at any path flag
            name = max(Path(str(e.filename or "")).parts or [""], key=len)
            shown, size = str(e.filename)[:120], len(name.encode())
            print_error(f"a name in a path is longer than the file system takes ({e.strerror}: {shown}...)\n  hint: "
                        f"a folder or file name is at most 255 bytes (one here has {size}); shorten it")  # fmt: skip
            return 2
        if not disk_full(e):
            raise
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print_error(f"no space left on the device{where}; nothing was kept of this output\n  hint: {DISK_FULL_HINT}")
        return 1


def print_error(message: str) -> None:
    """Print a user-facing error in one red line (no traceback)."""
    from rich.markup import escape

    from olive_ext.console import make_console

    console = make_console(stderr=True)  # escape: messages quote runtime errors and lists, which hold brackets
    console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False, soft_wrap=True)


def command_parser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The subcommand ``name``'s parser in the top-level ``parser``; KeyError when there is none."""
    from olive_ext.cli import subcommands  # the package, loaded already: it calls this module

    return subcommands(parser)[name]


def unknown_flags_error(parser: argparse.ArgumentParser, mod: ModuleType, unknown: list[str]) -> int:
    """Name each unknown flag with a did-you-mean, or what to write instead (e.g. for Olive flags)."""
    known = [opt for action in command_parser(parser, mod.NAME)._actions for opt in action.option_strings]
    replacements: dict[str, str] = getattr(mod, "OLIVE_REPLACEMENTS", {})
    lines = []
    for flag in (u for u in unknown if u.startswith("-")):
        name = flag.split("=")[0]
        if name in replacements:
            lines.append(f"{name}: {replacements[name]}")
            continue
        # 0.7: at 0.6, --max_seq_len suggested --max_samples and --bits --split
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
        lines.append(f"{name}: unknown flag" + (f"; did you mean {close[0]}?" if close else ""))
    # a value right after an unknown flag is that flag's ("--num-splits 2": the 2 was named "unexpected" too)
    stray = [u for i, u in enumerate(unknown) if not u.startswith("-")
             and not (i > 0 and unknown[i - 1].startswith("-") and "=" not in unknown[i - 1])]  # fmt: skip
    if stray:
        lines.append(f"unexpected arguments: {' '.join(stray)}")
    print_error(f"olive-ext {mod.NAME}: " + "; ".join(lines) + f"\n  see: olive-ext {mod.NAME} --help")
    return 2


def repeated_flag_error(parser: argparse.ArgumentParser, mod: ModuleType, argv: list[str]) -> str | None:
    """The message for a one-value flag given twice with different values (argparse keeps the last silently: the
    first --train_split or --text_template was dropped), else None. Flags that take several values are left be."""
    single = {opt: action.dest for action in command_parser(parser, mod.NAME)._actions for opt in action.option_strings
              if isinstance(action, argparse._StoreAction) and action.nargs in (None, "?")}  # fmt: skip
    seen: dict[str, tuple[str, str]] = {}
    tokens = argv[argv.index(mod.NAME) + 1 :] if mod.NAME in argv else argv
    for i, token in enumerate(tokens):
        flag, eq, value = token.partition("=")
        if flag not in single:
            continue
        if not eq:
            value = tokens[i + 1] if i + 1 < len(tokens) and not tokens[i + 1].startswith("-") else ""
        dest = single[flag]
        if dest in seen and seen[dest][1] != value:
            return f"{flag} given twice ({seen[dest][1]!r}, then {value!r}): it takes one value\n  hint: keep one"
        seen.setdefault(dest, (flag, value))
    return None


def option(group: Any, model: type[Options], name: str, *flags: str, **kwargs: Any) -> None:
    """Add the flag for option ``name`` of ``model``: its default and help text come from the model's field.

    A field without a default is a required flag; a bool field takes Olive's `--flag true|false` (bare: true).
    """
    from olive_ext.options import literal_choices, parse_bool

    info = model.model_fields[name]
    if info.is_required():
        kwargs.setdefault("required", True)
        kwargs.setdefault("default", None)
    kwargs.setdefault("default", model.default_of(name))
    kwargs.setdefault("help", model.help_of(name))
    choices = literal_choices(info.annotation)
    if choices and "choices" not in kwargs and kwargs.get("action") is None:
        kwargs["choices"] = choices
    if kwargs.get("type") is bool:
        kwargs.update(type=parse_bool, nargs="?", const=True)
    if kwargs.get("nargs") in ("+", "*") and kwargs.get("action") in (None, "extend"):
        kwargs["action"] = _Extend
    group.add_argument(*(flags or (f"--{name}",)), dest=name, **kwargs)


class _Extend(argparse.Action):
    """A flag taking several values, repeated: every occurrence's values, in order (`--device cpu --device gpu` was
    gpu alone); the first replaces the default (argparse's "extend" kept the default before the user's values)."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option_string: Any = None) -> None:
        current = getattr(namespace, self.dest, None)
        before = [] if current is None or current is self.default else list(current)
        setattr(namespace, self.dest, [*before, *(values if isinstance(values, list) else [values])])


def add_data_arguments(
    parser: argparse.ArgumentParser, model: type[Options], split_field: str, *split_flags: str
) -> None:
    """Olive's dataset flags: -d/--data_name, --data_files, the split flag (spelled ``split_flags`` too, as Olive's
    command of that name spells it), and how rows become text."""
    from olive_ext.data.spec import DataOptions

    group = parser.add_argument_group("data")
    option(group, DataOptions, "data_name", "-d", "--data_name")
    # repeated (--data_files a --data_files b) or several after one flag (a shell-expanded parts/*.jsonl): all kept
    option(group, DataOptions, "data_files", nargs="+")
    option(group, model, split_field, f"--{split_field}", *split_flags)
    option(group, DataOptions, "text_template")
    option(group, DataOptions, "text_field")
    option(group, DataOptions, "use_chat_template", action="store_true")
    option(group, DataOptions, "messages_field")
    option(group, DataOptions, "response_field")
    option(group, DataOptions, "response_template")
    option(group, DataOptions, "input_cols", nargs="+")
    option(group, DataOptions, "max_samples", type=int)


def options_from_args(model: type[OptionsT], args: argparse.Namespace) -> OptionsT:
    """The command's options model filled from the parsed flags that name its fields (unset flags keep defaults)."""
    from olive_ext.options import validate_options

    values = {name: getattr(args, name) for name in model.model_fields if getattr(args, name, None) is not None}
    return validate_options(model, values)


def print_dry_run(recipes: dict[str, Recipe], what: str = "candidate pipeline") -> int:
    """--dry_run: the checks a run makes before its first step, then each recipe (YAML on stdout) and a line per
    recipe on stderr; nothing is built."""
    import yaml

    from olive_ext.console import make_console
    from olive_ext.engine.preflight import check_recipe_before_work
    from olive_ext.recipe.schema import resolved_recipe

    for recipe in recipes.values():
        check_recipe_before_work(recipe)  # as run_recipe does before its first step
    print(yaml.safe_dump_all([resolved_recipe(r) for r in recipes.values()], sort_keys=False, allow_unicode=True),
          end="")  # fmt: skip
    console = make_console(stderr=True)
    for name, recipe in recipes.items():
        n = len(recipe.pipelines) or 1
        console.print(f"dry run: {name}: {n} {what}{'s' if n != 1 else ''}, nothing built (output "
                      f"{recipe.output.path})", highlight=False)  # fmt: skip
    return 0
