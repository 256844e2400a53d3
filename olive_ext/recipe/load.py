"""Reading recipes: YAML or JSON, ours or Olive's, with every problem reported at once.

``load_recipe(path)`` returns a validated :class:`Recipe` or raises :class:`RecipeError`
listing each problem with its key path, the value received, what is allowed, and a
"did you mean" for misspelt keys. Nothing heavy is imported here.
"""

from __future__ import annotations

import difflib
import json
import logging
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from olive_ext.errors import Problem, RecipeError, UserInputError
from olive_ext.evaluate.registry import known_metrics
from olive_ext.models.folder import infer_kind
from olive_ext.options import problems_from_validation
from olive_ext.passes.base import check_pass_params, get_pass, registered_passes
from olive_ext.recipe import olive_compat
from olive_ext.recipe.schema import InputModel, PassSpec, Recipe, TargetSpec, named_steps

logger = logging.getLogger("olive_ext")

# --------------------------------------------------------------------------- reading


def read_recipe_file(path: str | Path) -> dict[str, Any]:
    """Parse a YAML or JSON file into a mapping; syntax errors name the line."""
    p = Path(path)
    if not p.is_file():
        raise UserInputError(f"recipe file {str(p)!r} does not exist")
    text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise UserInputError(f"{p}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserInputError(f"{p}: invalid YAML{where}: {getattr(e, 'problem', e)}") from e
    if not isinstance(data, dict):
        raise UserInputError(f"{p}: a recipe must be a mapping of keys, got {type(data).__name__}")
    return data


def load_recipe(path: str | Path) -> Recipe:
    """Read, translate (if Olive-format) and validate a recipe file."""
    raw = read_recipe_file(path)
    return parse_recipe(raw, source=str(path), base_dir=Path(path).parent)


def parse_recipe(raw: dict[str, Any], source: str | None = None, base_dir: Path | None = None) -> Recipe:
    """Validate a recipe mapping; raise RecipeError with all problems found."""
    recipe, problems = check_recipe(raw, base_dir=base_dir)
    errors = [p for p in problems if p.severity == "error"]
    for note in problems:
        if note.severity == "note":
            logger.warning("%s", note.render())
    if errors or recipe is None:
        raise RecipeError(errors, source=source)
    return recipe


def check_recipe(raw: dict[str, Any], base_dir: Path | None = None) -> tuple[Recipe | None, list[Problem]]:
    """Return (recipe or None, every problem). Olive run configs are translated first."""
    problems: list[Problem] = []
    if olive_compat.is_olive_config(raw):
        raw, olive_problems = olive_compat.translate(raw)
        problems += olive_problems
    if base_dir is not None:
        raw = _resolve_relative_paths(raw, base_dir)
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as e:
        problems += problems_from_validation(e, Recipe)
        problems += _section_problems(raw, {p.path.split(".")[0].split("[")[0] for p in problems})
        return None, _unique(problems)
    problems += semantic_problems(recipe)
    return recipe, _unique(problems)


def _unique(problems: list[Problem]) -> list[Problem]:
    """One problem per (key path, message): the Olive translation and the schema may both notice one."""
    seen: set[tuple[str, str]] = set()
    out = []
    for p in problems:
        if (p.path, p.message) not in seen:
            seen.add((p.path, p.message))
            out.append(p)
    return out


def _section_problems(raw: dict[str, Any], broken: set[str]) -> list[Problem]:
    """Pass-level checks on the sections that do validate, so one bad section hides nothing else."""
    fields = Recipe.model_fields
    partial: dict[str, Any] = {}
    for name in ("input_model", "passes", "targets"):
        if name in raw and name not in broken:
            try:
                adapter: TypeAdapter[Any] = TypeAdapter(fields[name].annotation)  # type: ignore[arg-type]
                value = raw[name]
                if name == "passes":
                    value = named_steps(value)
                partial[name] = adapter.validate_python(value)
            except ValidationError:
                return []
    if "passes" not in partial:
        return []
    input_model = partial.get("input_model")
    targets = partial.get("targets") or [TargetSpec()]
    return pass_problems(partial["passes"], input_model, targets)


def _resolve_relative_paths(raw: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Data files named relative to the recipe resolve against the recipe's folder when they exist there."""
    raw = dict(raw)
    data = raw.get("data")
    if isinstance(data, dict):
        fixed = {}
        for name, spec in data.items():
            if isinstance(spec, dict) and spec.get("data_files"):
                files = spec["data_files"]
                as_list = files if isinstance(files, list) else [files]
                resolved = [_rebase(f, base_dir) for f in as_list]
                spec = {**spec, "data_files": resolved if isinstance(files, list) else resolved[0]}
            fixed[name] = spec
        raw["data"] = fixed
    return raw


def _rebase(path: Any, base_dir: Path) -> Any:
    if not isinstance(path, str) or Path(path).is_absolute() or Path(path).exists():
        return path
    candidate = base_dir / path
    return str(candidate) if candidate.exists() else path


# --------------------------------------------------------------------------- semantic checks


def semantic_problems(recipe: Recipe) -> list[Problem]:
    """Checks across sections: passes exist, their params fit, the chain of kinds works, targets fit."""

    problems: list[Problem] = []
    if recipe.passes and recipe.pipelines:
        problems.append(Problem("pipelines", "give either `passes` or `pipelines` (alternatives), not both"))
    for prefix, section in recipe.alternatives():
        problems += pass_problems(section, recipe.input_model, recipe.targets, prefix)
    if recipe.evaluate:
        if recipe.evaluate.data and recipe.evaluate.data not in recipe.data:
            problems.append(
                Problem(
                    "evaluate.data",
                    "names a dataset that `data` lacks",
                    recipe.evaluate.data,
                    True,
                    allowed=", ".join(recipe.data) or "(no datasets defined)",
                )
            )
        known = known_metrics()
        for i, metric in enumerate(recipe.evaluate.metrics):
            if metric not in known:
                close = difflib.get_close_matches(metric, known, n=1, cutoff=0.5)
                problems.append(
                    Problem(
                        f"evaluate.metrics[{i}]",
                        "unknown metric",
                        metric,
                        True,
                        ", ".join(known),
                        f"did you mean '{close[0]}'?" if close else None,
                    )
                )
    if not recipe.passes and not recipe.pipelines and not recipe.evaluate:
        problems.append(Problem("passes", "the recipe has no passes and nothing to evaluate: nothing to do"))
    return problems


def pass_problems(
    passes: dict[str, PassSpec], input_model: InputModel | None, targets: list[TargetSpec], prefix: str = "passes"
) -> list[Problem]:
    """Each pass exists, its params fit its config, it takes what the step before gives, it supports the targets."""
    problems: list[Problem] = []
    kind: str | None = None
    if input_model is not None:
        kind = input_model.kind or infer_kind(input_model.path)
    producer = "input_model"
    names = list(registered_passes())
    for step_name, spec in passes.items():
        path = f"{prefix}.{step_name}"
        cls = get_pass(spec.type)
        if cls is None:
            olive_name = olive_compat.olive_pass_names().get(spec.type)
            close = difflib.get_close_matches(spec.type, names, n=1, cutoff=0.5)
            hint = (
                f"'{spec.type}' is an Olive pass name: write '{olive_name}'"
                if olive_name
                else (f"did you mean '{close[0]}'?" if close else None)
            )
            problems.append(Problem(f"{path}.type", "unknown pass type", spec.type, True, ", ".join(names), hint))
            kind = None  # the chain after an unknown pass cannot be checked
            continue
        problems += check_pass_params(cls, spec.params(), path)
        if kind is not None:
            takes = set(cls.accepts) | ({"gguf"} if "hf" in cls.accepts else set())
            if kind not in takes:
                problems.append(
                    Problem(
                        path,
                        f"pass '{spec.type}' takes {'/'.join(sorted(cls.accepts))} models, "
                        f"but {producer} gives a {kind} model",
                        hint="reorder the passes or add a conversion step before it",
                    )
                )
        for i, target in enumerate(targets):
            if target.device not in cls.devices:
                problems.append(
                    Problem(
                        path,
                        f"pass '{spec.type}' does not support device '{target.device}' (targets[{i}])",
                        allowed=", ".join(sorted(cls.devices)),
                    )
                )
        kind, producer = cls.output_kind(kind) if kind else cls.produces, f"pass '{step_name}'"
    return problems
