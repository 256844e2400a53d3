"""Reading recipes: YAML or JSON, ours or Olive's, with every problem reported at once.

``load_recipe(path)`` returns a validated :class:`Recipe` or raises :class:`RecipeError`
listing each problem with its key path, the value received, what is allowed, and a
"did you mean" for misspelt keys. Nothing heavy is imported here.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from olive_ext.errors import Problem, RecipeError, UserInputError
from olive_ext.evaluate.registry import ACCURACY_METRICS, OBJECTIVE_METRICS, QUALITY_METRICS, known_metrics
from olive_ext.evaluate.spec import EvaluateSpec
from olive_ext.models.folder import PYPI_PREFIX, infer_kind
from olive_ext.options import problems_from_validation
from olive_ext.passes.base import Pass, check_pass_params, get_pass, registered_passes
from olive_ext.recipe.llama_factory import llama_factory_config_problem
from olive_ext.recipe.olive_compat import LENIENT_HINT, is_olive_config, olive_pass_names, translate_config
from olive_ext.recipe.olive_sections import user_script_problem
from olive_ext.recipe.read import parse, read_text
from olive_ext.recipe.schema import InputModel, PassSpec, Recipe, TargetSpec, named_steps

logger = logging.getLogger("olive_ext")
NOTHING_TO_DO = "the recipe has no passes and nothing to evaluate: nothing to do"

# --------------------------------------------------------------------------- reading


def read_recipe_file(path: str | Path) -> dict[str, Any]:
    """Parse a YAML or JSON file into a mapping; syntax errors name the line.

    The path, size, encoding, nesting depth, alias expansion, integer length and duplicate keys are checked
    here (olive_ext/recipe/read.py), so nothing after this walks a runaway document.
    """
    name = str(path)
    data = parse(name, read_text(name), as_json=name.lower().endswith(".json"))
    if data is None:
        raise UserInputError(f"{name}: the file is empty", hint="a recipe needs at least input_model and passes")
    if not isinstance(data, dict):
        raise UserInputError(f"{name}: a recipe must be a mapping of keys, got {_kind(data)}")
    return data


def _kind(value: Any) -> str:
    return {list: "a list", str: "text", int: "a number", float: "a number", bool: "true/false"}.get(
        type(value), type(value).__name__
    )


def load_recipe(path: str | Path, lenient: bool = False) -> Recipe:
    """Read, translate (if Olive-format) and validate a recipe file."""
    raw = read_recipe_file(path)
    return parse_recipe(raw, source=str(path), base_dir=Path(path).parent, lenient=lenient)


def parse_recipe(
    raw: dict[str, Any], source: str | None = None, base_dir: Path | None = None, lenient: bool = False
) -> Recipe:
    """Validate a recipe mapping; raise RecipeError with all problems found.

    ``lenient``: Olive keys olive-ext does not honour are warnings, not errors; they are logged and kept in
    ``recipe.translation_warnings`` for the run's report.
    """
    recipe, problems = check_recipe(raw, base_dir=base_dir, lenient=lenient)
    errors = [p for p in problems if p.severity == "error"]
    for note in problems:
        if note.severity == "note":
            logger.warning("%s", note.render())
    if errors or recipe is None:
        raise RecipeError(errors, source=source)
    recipe.translation_warnings.extend(p.render() for p in problems if p.severity == "note")
    return recipe


def check_recipe(
    raw: dict[str, Any], base_dir: Path | None = None, lenient: bool = False
) -> tuple[Recipe | None, list[Problem]]:
    """Return (recipe or None, every problem). Olive run configs are translated first, and problems found in
    the translation name the keys as the Olive file spells them; ``lenient`` makes the Olive keys olive-ext
    does not honour (category "unhonoured") notes."""
    recipe, problems = _check(raw, base_dir)
    if lenient:
        problems = [
            dataclasses.replace(p, severity="note", hint=(p.hint or "").removesuffix(LENIENT_HINT) or None)
            if p.category == "unhonoured" and p.severity == "error"
            else p
            for p in problems
        ]
    return recipe, problems


def _check(raw: dict[str, Any], base_dir: Path | None) -> tuple[Recipe | None, list[Problem]]:
    if lf_problem := llama_factory_config_problem(raw, base_dir):  # one problem: what runs it (each key was refused)
        return None, [lf_problem]
    translation = None
    first: list[Problem] = []
    if is_olive_config(raw):
        translation = translate_config(raw, base_dir)
        raw, first = translation.recipe, translation.problems
    if base_dir is not None:
        raw = _resolve_relative_paths(raw, base_dir)
    recipe: Recipe | None = None
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as e:
        later = problems_from_validation(e, Recipe)
        later += _section_problems(raw, {p.path.split(".")[0].split("[")[0] for p in later})
    else:
        later = semantic_problems(recipe)
    if translation is not None:
        later = [translation.user_problem(p) for p in later]
        if any(p.severity == "error" for p in first):  # "no passes" after every pass was refused repeats those
            later = [p for p in later if p.message != NOTHING_TO_DO]
        if any(p.severity == "error" and p.path.split(".")[0] in {"input_model", "model"} for p in first):
            # the model section was refused as written: what the schema then misses in it follows from that
            later = [p for p in later if not p.path.startswith("input_model")]
        if any(p.severity == "error" and p.path.startswith("passes") and p.path.endswith(".type") for p in first):
            # a refused pass is left out of the translation: the model kinds around the gap are not the user's error
            later = [p for p in later if not _KIND_CHAIN.search(p.message)]
    return recipe, _unique(first + later)


_KIND_CHAIN = re.compile(r"^pass '[^']+' takes [a-z/]+ models, but .+ gives an? [a-z]+ model$")


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
    data = raw.get("data", {})
    datasets = data if "data" not in broken and isinstance(data, dict) else None
    return pass_problems(partial["passes"], input_model, targets, datasets=datasets)


def _resolve_relative_paths(raw: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """The input model and data files named relative to the recipe resolve against the recipe's folder when they
    exist there (before the working folder: a data/qa.jsonl there was read instead without a word), else
    against the working folder; both absolute, so the recipe.yaml a run writes reruns from anywhere."""
    raw = dict(raw)
    model = raw.get("input_model")
    if isinstance(model, dict):
        raw["input_model"] = {**model, **{k: _rebase(model[k], base_dir) for k in ("path", "adapter_path")
                                          if isinstance(model.get(k), str)}}  # fmt: skip
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
    evaluate = raw.get("evaluate")
    lm_eval = evaluate.get("lm_eval") if isinstance(evaluate, dict) else None
    if isinstance(evaluate, dict) and isinstance(lm_eval, dict) and isinstance(lm_eval.get("tasks"), list):
        # inline lm-eval tasks' local data files too (they resolved against the working folder)
        tasks = [_rebase_task(t, base_dir) for t in lm_eval["tasks"]]
        raw["evaluate"] = {**evaluate, "lm_eval": {**lm_eval, "tasks": tasks}}
    return raw


def _rebase_task(task: Any, base_dir: Path) -> Any:
    """An inline lm-eval task's ``dataset_kwargs.data_files`` (a path, a list, or split -> path(s)) rebased."""
    kwargs = task.get("dataset_kwargs") if isinstance(task, dict) else None
    if not isinstance(kwargs, dict) or "data_files" not in kwargs:
        return task

    def rebase(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: rebase(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rebase(v) for v in value]
        return _rebase(value, base_dir)

    return {**task, "dataset_kwargs": {**kwargs, "data_files": rebase(kwargs["data_files"])}}


def _rebase(path: Any, base_dir: Path) -> Any:
    if not isinstance(path, str) or not path or Path(path).is_absolute() or path.startswith(PYPI_PREFIX):
        return path
    for folder in (base_dir, Path.cwd()):
        candidate = folder / path
        if _exists(candidate):
            return str(candidate.resolve())
    return path  # a hub id, or a file that is missing: the checks name it as written


def _exists(path: Path) -> bool:
    """Path.exists, False for a path the system refuses (too long, a NUL): the data checks name those."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------- semantic checks


def _infer_kind(path: str) -> str | None:
    """The input's kind from its path; None (not checked) when the path cannot be looked at."""
    try:
        return infer_kind(path)
    except (OSError, ValueError):
        return None


def dataset_problems(cls: type[Pass[Any]], spec: PassSpec, path: str, datasets: Collection[str]) -> list[Problem]:
    """The datasets a pass names exist in ``data``; a pass that needs one and names none finds exactly one."""
    problems: list[Problem] = []
    params = spec.params()
    defined = ", ".join(map(str, datasets)) or "(no datasets defined)"
    for field, needed in cls.config_class.dataset_fields().items():
        name = params.get(field)
        if isinstance(name, str) and name not in datasets:
            close = difflib.get_close_matches(name, list(map(str, datasets)), n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else "define it under `data` (data_configs in an Olive file)"
            problems.append(Problem(f"{path}.{field}", "names a dataset that `data` lacks", name, True, defined, hint))
        elif name is None and needed and len(datasets) != 1:
            count = len(datasets) or "none"
            problems.append(
                Problem(
                    path,
                    f"pass '{spec.type}' needs a dataset: {field} is unset and `data` defines {count}",
                    allowed=defined if datasets else None,
                    hint=f"set {field} to one of them" if datasets else "define one under `data`",
                )
            )
    return problems


def semantic_problems(recipe: Recipe) -> list[Problem]:
    """Checks across sections: passes exist, their params fit, the chain of kinds works, targets fit."""

    problems: list[Problem] = []
    if recipe.passes and recipe.pipelines:
        problems.append(Problem("pipelines", "give either `passes` or `pipelines` (alternatives), not both"))
    for i, alternative in enumerate(recipe.pipelines):
        if not alternative:
            problems.append(
                Problem(f"pipelines[{i}]", "an alternative with no passes", hint="give it passes, or drop it")
            )
    seen: dict[str, int] = {}
    for i, target in enumerate(recipe.targets):  # each candidate was built, measured and listed twice
        key = target.model_dump_json()
        if key in seen:
            problems.append(Problem(f"targets[{i}]", f"repeats targets[{seen[key]}]", hint="drop one of them"))
        seen.setdefault(key, i)
    for prefix, section in recipe.alternatives():
        problems += pass_problems(section, recipe.input_model, recipe.targets, prefix, datasets=recipe.data)
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
        problems += _quality_problems(recipe.evaluate)
    if not recipe.passes and not recipe.pipelines and not recipe.evaluate:
        problems.append(Problem("passes", NOTHING_TO_DO))
    return problems


def _quality_problems(spec: EvaluateSpec) -> list[Problem]:
    """Accuracy metrics need eval rows, and objective 'accuracy' an accuracy metric (the first failed each
    candidate at run time, exit 1; the second ranked by size without a word)."""
    quality = [m for m in spec.metrics if m in QUALITY_METRICS]
    problems = []
    if quality and not spec.data:
        problems.append(Problem("evaluate.data", f"metric {quality[0]!r} scores eval rows, and none are named",
                                hint="name a dataset of `data` in evaluate.data, or drop the metric"))  # fmt: skip
    measured = set(spec.metrics)
    wanted = OBJECTIVE_METRICS.get(spec.objective, ())
    asked = "objective" in spec.model_fields_set  # the default (latency) falls back to what is measured
    if asked and spec.objective != "accuracy" and wanted and not measured & set(wanted):
        problems.append(Problem("evaluate.objective", f"ranks candidates by {spec.objective}, which evaluate.metrics "
                                "does not measure", spec.objective, True,
                                hint=f"add {wanted[0]} to evaluate.metrics"))  # fmt: skip
    limits = {"max_latency_ms": "latency", "min_latency_improvement_pct": "latency", "max_size_mb": "size",
              "min_throughput": "throughput", "max_memory_mb": "memory"}  # fmt: skip
    for name, metric in limits.items():
        if getattr(spec.constraints, name) is not None and metric not in measured:
            problems.append(Problem(f"evaluate.constraints.{name}", f"limits {metric}, which evaluate.metrics does "
                                    "not measure: it would not be checked", getattr(spec.constraints, name), True,
                                    hint=f"add {metric} to evaluate.metrics, or drop the limit"))  # fmt: skip
    drop = spec.constraints.max_accuracy_drop
    explicit = "max_accuracy_drop" in spec.constraints.model_fields_set
    if explicit and drop is not None and not measured & {*ACCURACY_METRICS}:
        problems.append(Problem("evaluate.constraints.max_accuracy_drop", "limits accuracy in points, which "
                                "evaluate.metrics does not measure (exact_match, or accuracy for a classifier): it "
                                "would not be checked", drop, True, hint="add exact_match (or accuracy) to "
                                "evaluate.metrics, with eval rows in evaluate.data, or drop the limit"))  # fmt: skip
    if spec.objective == "accuracy" and not quality:
        problems.append(Problem(
            "evaluate.objective", "'accuracy' ranks candidates by exact_match, accuracy or perplexity, and "
            "evaluate.metrics measures none of them", spec.objective, True,
            hint="add exact_match (or accuracy for a classifier) to evaluate.metrics, or choose latency, throughput "
            "or size"))  # fmt: skip
    return problems


def _checked_params(cls: type[Pass[Any]], params: dict[str, Any], path: str) -> list[Problem]:
    """``check_pass_params``; an Olive pass's check imports the user scripts its config names (as Olive does), so
    a package such a script lacks, or an error the script raises, is a problem of the recipe, not a crash."""
    if cls.name != "olive":
        return check_pass_params(cls, params, path)
    try:
        return check_pass_params(cls, params, path)
    except Exception as e:  # the user's own code failing while Olive imports it
        return [user_script_problem(path, e, "a user script of this pass")]


def pass_problems(
    passes: dict[str, PassSpec],
    input_model: InputModel | None,
    targets: list[TargetSpec],
    prefix: str = "passes",
    datasets: Collection[str] | None = None,
) -> list[Problem]:
    """Each pass exists, its params fit its config, it takes what the step before gives, it supports the targets,
    and the datasets it names are in ``datasets`` (when given)."""
    problems: list[Problem] = []
    kind: str | None = None
    if input_model is not None:
        kind = input_model.kind or _infer_kind(input_model.path)
    producer = "input_model"
    names = list(registered_passes())
    for step_name, spec in passes.items():
        path = f"{prefix}.{step_name}"
        cls = get_pass(spec.type)
        if cls is None:
            olive_name = olive_pass_names().get(spec.type)
            close = difflib.get_close_matches(spec.type, names, n=1, cutoff=0.5)
            hint = (
                f"'{spec.type}' is an Olive pass name: write '{olive_name}'"
                if olive_name
                else (f"did you mean '{close[0]}'?" if close else None)
            )
            problems.append(Problem(f"{path}.type", "unknown pass type", spec.type, True, ", ".join(names), hint))
            kind = None  # the chain after an unknown pass cannot be checked
            continue
        # the params as each target's run sees them: what the target sets (a GPU target's use_gpu) under them
        seen: list[dict[str, Any]] = []
        for target in targets or [TargetSpec()]:
            params = cls.params_for(target.target(), spec.params())
            if params in seen:
                continue
            seen.append(params)
            problems += [p for p in _checked_params(cls, params, path) if p not in problems]
        if datasets is not None:
            problems += dataset_problems(cls, spec, path, datasets)
        accepts = cls.accepts_for(spec.params())
        if kind is not None:
            takes = set(accepts) | ({"gguf"} if "hf" in accepts else set())
            if kind not in takes:
                shown = spec.params().get("olive_type") or spec.type  # an Olive step: the user's pass type
                hint = "reorder the passes or add a conversion step before it"
                if kind == "openvino":  # Olive's stable diffusion configs list passes for both runtimes
                    hint = (
                        "keep one runtime's passes, OpenVINO's or onnxruntime's: Olive runs every listed pass "
                        "in order and fails here too (its examples' scripts delete the other runtime's first)"
                    )
                problems.append(
                    Problem(
                        path,
                        f"pass '{shown}' takes {'/'.join(sorted(accepts))} models, "
                        f"but {producer} gives {'an' if kind[0] in 'aeiouh' else 'a'} {kind} model",
                        hint=hint,
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
        # "" : the pass cannot tell (an Olive pass of an unknown type), so the chain after it is not checked
        kind, producer = cls.output_kind_for(spec.params(), kind or "") or None, f"pass '{step_name}'"
    return problems
