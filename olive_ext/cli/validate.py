"""`olive-ext validate`: check a recipe and report every problem at once."""

from __future__ import annotations

import argparse
import sys

NAME = "validate"
HELP = "check a recipe (ours or an Olive run config) and list every problem"
DESCRIPTION = """Check a recipe file without running anything.

Every problem is listed with its key path, the value received, what is allowed, and a
"did you mean" for misspelt keys. Exit code 0 when the recipe is valid, 2 otherwise.

  olive-ext validate recipes/smollm2-lora-int4-cpu.yaml
  olive-ext validate olive-config.json --lenient   # Olive keys olive-ext does not honour: warnings
  olive-ext validate --list-passes
"""
ORDER = 91


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="recipe file (.yaml, .yml or .json)")
    p.add_argument("--config", dest="config_flag", help=argparse.SUPPRESS)
    p.add_argument("--list-passes", action="store_true", help="list the registered passes and their parameters")
    from olive_ext.cli.common import option
    from olive_ext.recipe.olive_shapes import TranslationOptions  # the flag's default and help, declared once

    option(p, TranslationOptions, "lenient", "--lenient", type=bool)
    p.add_argument("--log_level", default="2", help=argparse.SUPPRESS)


def main(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from olive_ext.console import make_console
    from olive_ext.errors import UserInputError
    from olive_ext.recipe.load import read_recipe_file
    from olive_ext.workflows.run import check_recipe_and_files

    console = make_console()
    if args.list_passes:
        return _list_passes()
    if args.config and args.config_flag and args.config != args.config_flag:  # B was not read, nor said to be
        raise UserInputError(f"two recipes given: {args.config} and --config {args.config_flag}",
                             hint="validate one at a time: olive-ext validate FILE")  # fmt: skip
    path = args.config or args.config_flag
    if not path:
        raise UserInputError("give a recipe file: olive-ext validate recipe.yaml")
    from pathlib import Path

    raw = read_recipe_file(path)
    recipe, problems = check_recipe_and_files(raw, Path(path).parent, args.lenient)
    errors = [p for p in problems if p.severity == "error"]
    for p in problems:
        style = "red" if p.severity == "error" else "yellow"
        # escaped: keys and values are the recipe's own text, and may hold [brackets] rich would read as markup
        console.print(f"[{style}]{p.severity}[/] {escape(p.render())}", highlight=False, markup=True, soft_wrap=True)
    if errors or recipe is None:
        summary = f"{path}: {len(errors)} problem{'s' if len(errors) != 1 else ''}"
        console.print(summary, style="bold red", markup=False, highlight=False, soft_wrap=True)
        return 2
    sections = f"{len(recipe.pipelines)} alternative pipelines" if recipe.pipelines else f"{len(recipe.passes)} passes"
    summary = f"{path}: valid ({sections}, {len(recipe.targets)} target(s))"
    console.print(summary, style="green", markup=False, highlight=False, soft_wrap=True)
    return 0


def _list_passes() -> int:
    """Print every registered pass with its parameters (a reader that stops early, `| head`: see cli.main)."""
    for line in pass_listing():
        print(line)
    sys.stdout.flush()
    return 0


def pass_listing() -> list[str]:
    """The lines of `validate --list-passes`: each pass, what it takes and makes, and each parameter's default."""
    from olive_ext.passes.base import registered_passes

    lines = []
    for name, cls in registered_passes().items():
        config = cls.config_class
        searchable = config.searchable_fields()
        lines.append(f"{name}: {cls.summary()}")
        makes = "the same kind" if cls.keeps_kind else cls.produces
        lines.append(f"    takes {'/'.join(sorted(cls.accepts))} -> {makes}; devices {', '.join(sorted(cls.devices))}")
        for field, info in config.model_fields.items():
            mark = " (searchable)" if field in searchable else ""
            default = "required" if info.is_required() else f"default {_shown(config.default_of(field))}"
            lines.append(f"    {field}{mark}: {info.description or ''} [{default}]")
    return lines


def _shown(value: object) -> str:
    """A default as a recipe would write it: none, true/false, a list, text without quotes."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_shown(v)}" for k, v in value.items()) + "}"
    return str(value)
