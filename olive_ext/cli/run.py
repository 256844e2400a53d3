"""`olive-ext run --config recipe.yaml`: run any chain of passes from a recipe file."""

from __future__ import annotations

import argparse

from olive_ext.cli.common import (
    OLIVE_INPUT_MODEL_FLAGS,
    add_cache_dir,
    add_executor,
    add_log_level,
    add_olive_accepted,
    add_output,
    option,
)

NAME = "run"
HELP = "run a recipe (YAML/JSON, ours or an Olive run config)"
DESCRIPTION = """Run a recipe: expand searched parameters into candidates, build each through the
cache, evaluate, select, and write the output folder (model/, candidates.json,
lineage.json, report.md, recipe.yaml).

  olive-ext run --config recipes/smollm2-lora-int4-cpu.yaml
  olive-ext run --config olive-config.yaml --output_path out --overwrite
  olive-ext run --config olive-config.yaml -m models/base -a models/adapter   # another input model (Olive's -m/-a)
  olive-ext run --config olive-config.json --lenient   # Olive keys not honoured: warnings, listed in the report
  olive-ext run --run-config olive-config.json --list_required_packages   # what to pip install; runs nothing
"""
ORDER = 90
OLIVE_REPLACEMENTS = {
    **OLIVE_INPUT_MODEL_FLAGS,
    "-t": "set input_model.task in the recipe (olive-ext reads it from the model when it is not set)",
    "--task": "set input_model.task in the recipe (olive-ext reads it from the model when it is not set)",
    "--trust_remote_code": "set input_model.trust_remote_code: true in the recipe",
    "--tempdir": "not needed: olive-ext stages each step's output in its cache (--cache_dir)",
    "--package-config": "not supported: recipes run olive-ext's passes and olive-ai's own (`olive-ext validate "
    "--list-passes`)",
    "--setup": "not needed: olive-ext installs what its passes use (QLoRA: pip install 'olive-ext[qlora]')"
}


RESUMES = True  # an interrupted run's finished steps are cached: the same command resumes


def add_arguments(p: argparse.ArgumentParser) -> None:
    from olive_ext.workflows.run import RunOptions as O

    option(p, O, "config", "--config", "-c", "--run-config")  # --run-config: Olive 0.13's name
    option(p, O, "model_name_or_path", "-m", "--model_name_or_path")
    option(p, O, "adapter_path", "-a", "--adapter_path")
    add_output(p, O)
    p.add_argument("--setup", action="store_true", help="accepted for Olive compatibility: there is nothing to set up")
    p.add_argument(
        "--list_required_packages",
        action="store_true",
        help="list the pip packages the recipe needs that are not installed (as `olive-ext validate` finds them), "
        "with how to install them; runs nothing",
    )
    add_executor(p, O)
    add_cache_dir(p, O)
    option(p, O, "lenient", "--lenient", type=bool)
    add_olive_accepted(p, config_file=False)
    add_log_level(p)


def main(args: argparse.Namespace) -> int:
    import logging

    from olive_ext.cli.summary import print_run_summary
    from olive_ext.errors import ConstraintsNotMetError
    from olive_ext.progress import Progress
    from olive_ext.workflows.run import as_recipe, run_recipe

    if args.list_required_packages:
        return list_required_packages(args.config, bool(args.lenient))
    if args.setup:
        # Olive's --setup installs the config's packages and exits; the guides run `olive run --config X --setup` as
        # the step that fine-tunes, so the config is run (README: the guide's commands)
        logging.getLogger("olive_ext").warning(
            "--setup: nothing to set up (olive-ext installs what its passes use; --list_required_packages lists what "
            "is missing); running the config, as the guide's `olive run --config ... --setup` step expects")
    recipe = as_recipe(args.config, output_path=args.output_path, overwrite=args.overwrite or None,
                       cache_dir=args.cache_dir, executor=args.executor, ray_address=args.ray_address,
                       lenient=args.lenient, model_path=args.model_name_or_path,
                       adapter_path=args.adapter_path)  # fmt: skip
    progress = Progress()
    try:
        result = run_recipe(recipe, progress=progress)
    except ConstraintsNotMetError as e:
        if e.result is not None:
            print_run_summary(e.result, progress.console)
        raise
    print_run_summary(result, progress.console)
    return 0


def list_required_packages(config: str, lenient: bool = False) -> int:
    """Print the pip packages the recipe needs and this machine lacks (validate's "package" problems); runs nothing.

    Exit 0 when the list is complete (printed, or nothing is missing); 2 when the recipe has other problems,
    which `olive-ext validate` lists (a recipe that does not parse cannot name all its packages).
    """
    from pathlib import Path

    from olive_ext.recipe.load import read_recipe_file
    from olive_ext.workflows.run import check_recipe_and_files

    raw = read_recipe_file(config)
    _, problems = check_recipe_and_files(raw, Path(config).parent, lenient)
    errors = [p for p in problems if p.severity == "error"]
    packages = [p for p in errors if p.category == "package"]
    for problem in packages:
        print(f"missing: {problem.render()}")
    others = len(errors) - len(packages)
    if others:  # the list may be incomplete: a pass that does not parse names no package
        print(f"{config}: {others} other problem{'s' if others != 1 else ''}: `olive-ext validate {config}` lists them")
        return 2
    if not packages:
        print(f"{config}: nothing to install (olive-ext validate finds no missing package)")
    return 0
