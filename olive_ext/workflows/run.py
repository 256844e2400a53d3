"""Run a recipe and write its output folder: the Python API behind `olive-ext run` and `validate`.

>>> import olive_ext
>>> problems = olive_ext.validate({"input_model": {"path": "org/model"}, "passes": {"b": {"type": "nope"}}})
>>> problems[0].path
'passes.b.type'
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from olive_ext.artifacts import Artifact
from olive_ext.cache import cache_memo
from olive_ext.data import smoke_prompts
from olive_ext.deploy.bundle import chat_template_text
from olive_ext.deploy.manifest import text_sha256
from olive_ext.engine.output import failed_run_output, output_claim, staged_output, write_json, write_yaml
from olive_ext.engine.preflight import check_recipe_before_work, file_problems
from olive_ext.engine.results import CandidateResult, RunResult
from olive_ext.engine.run import execute, raise_if_unmet
from olive_ext.engine.search import SearchSpace, large_grid
from olive_ext.errors import Problem, RecipeError, UserInputError
from olive_ext.evaluate.evaluator import load_tokenizer
from olive_ext.models.folder import absolute_if_local, export_artifact
from olive_ext.options import Options, field_of, problems_from_validation
from olive_ext.progress import Progress, progress_or_quiet
from olive_ext.quiet import api_call
from olive_ext.recipe import check_recipe, parse_recipe
from olive_ext.recipe.load import read_recipe_file, semantic_problems
from olive_ext.recipe.olive_compat import is_olive_config
from olive_ext.recipe.olive_shapes import TranslationOptions
from olive_ext.recipe.schema import ExecutorSpec, Recipe, resolved_recipe
from olive_ext.report import write_reports
from olive_ext.version import __version__

logger = logging.getLogger("olive_ext")

RecipeLike = str | Path | Mapping[str, Any] | Recipe


def plain_recipe(value: Any) -> Any:
    """A recipe mapping as YAML would give it: mappings as dicts, tuples as lists, paths (``pathlib.Path`` or any
    ``os.PathLike``) as their text (a Path in a Python recipe was refused: "Input should be a valid string")."""
    import os

    if isinstance(value, Mapping):
        return {k: plain_recipe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_recipe(v) for v in value]
    return os.fspath(value) if isinstance(value, os.PathLike) else value


class RunOptions(Options):
    """What `olive-ext run` takes besides the recipe: overrides of its output and cache."""

    config: str = Field(description="recipe file (.yaml, .yml or .json), ours or an Olive run config")
    model_name_or_path: str | None = Field(None, description="override the recipe's input model (Olive's `run -m`)")
    adapter_path: str | None = Field(None, description="override the input model's adapter (Olive's `run -a`)")
    output_path: str | None = Field(None, description="override the recipe's output path")
    overwrite: bool = Field(False, description="replace an existing output folder")
    cache_dir: str | None = Field(
        None, description="cache of built models and evaluations (default: $OLIVE_EXT_CACHE or ~/.cache/olive-ext)"
    )
    executor: Literal["local", "ray"] | None = Field(
        None, description="override the recipe's executor.type: local (default) or ray (candidates as Ray tasks)"
    )
    ray_address: str | None = field_of(ExecutorSpec, "address")
    lenient: bool = field_of(TranslationOptions, "lenient")


__all__ = ["RecipeLike", "RunOptions", "as_recipe", "run", "run_recipe", "validate", "write_run_output"]


def _with_olive_model(
    raw: dict[str, Any], model_path: str | Path | None, adapter_path: str | Path | None
) -> dict[str, Any]:
    """An Olive config with its input model's ``model_path``/``adapter_path`` replaced (absolute where local)."""
    model = dict(raw.get("input_model") or {}) if isinstance(raw.get("input_model"), dict) else {}
    if model_path:
        model["model_path"] = absolute_if_local(str(model_path))
    if adapter_path:
        model["adapter_path"] = absolute_if_local(str(adapter_path))
    return {**raw, "input_model": model}


def as_recipe(
    recipe: RecipeLike,
    *,
    output_path: str | Path | None = None,
    overwrite: bool | None = None,
    cache_dir: str | None = None,
    executor: str | None = None,
    ray_address: str | None = None,
    lenient: bool = False,
    model_path: str | None = None,
    adapter_path: str | None = None,
) -> Recipe:
    """A validated Recipe from a file path (YAML/JSON, ours or Olive's), a mapping, or a Recipe.

    ``output_path`` and ``overwrite`` replace the recipe's ``output`` section, ``cache_dir`` its cache,
    ``executor`` and ``ray_address`` its executor's type and address, ``model_path`` and ``adapter_path`` its input
    model and adapter (Olive's `run -m/-a`), when given.
    ``lenient``: Olive keys olive-ext does not honour are warnings (kept for the report), not errors.
    Raises RecipeError listing every problem.
    """
    if isinstance(recipe, Recipe):  # built by the caller: the checks across sections that parse_recipe makes
        if errors := [p for p in semantic_problems(recipe) if p.severity == "error"]:
            raise RecipeError(errors, source="Recipe")
        parsed = recipe
    elif not isinstance(recipe, Mapping | str | Path):
        raise _not_a_recipe(recipe)
    for name, value in {"output_path": output_path, "cache_dir": cache_dir, "model_path": model_path,
                        "adapter_path": adapter_path}.items():  # fmt: skip
        if value is not None and not isinstance(value, str | Path):  # a TypeError from deep inside before
            raise RecipeError([Problem(name, f"must be a path (str or Path), not {type(value).__name__}", value,
                                       has_value=True)], source="options")  # fmt: skip
    given = {"path": model_path, "adapter_path": adapter_path}
    if not isinstance(recipe, Recipe):
        raw = plain_recipe(recipe) if isinstance(recipe, Mapping) else read_recipe_file(recipe)
        base_dir = Path(recipe).parent if isinstance(recipe, str | Path) else None
        if is_olive_config(raw) and (model_path or adapter_path):
            # Olive's `run -m/-a` changes the model before the config is read: its data configs then tokenize with
            # the new model's tokenizer (they kept the config's model's, and MiniLM's ids reached a BERT)
            raw = _with_olive_model(raw, model_path, adapter_path)
            given = {}
        parsed = parse_recipe(raw, source=str(recipe) if base_dir else None, base_dir=base_dir, lenient=lenient)
    changes: dict[str, Any] = {}
    if output_path is not None:
        changes["path"] = str(output_path)
    if overwrite is not None:
        changes["overwrite"] = overwrite
    warnings = list(parsed.translation_warnings)
    if changes:  # validated: model_copy(update=) took overwrite="false" as true and replaced the output
        parsed = parsed.model_copy(update={"output": _validated(parsed.output, changes, "output")})
    if cache_dir is not None:
        parsed = parsed.model_copy(update={"cache_dir": str(cache_dir)})
    model_changes = {k: absolute_if_local(str(v)) for k, v in given.items() if v}
    if model_changes:  # another model: what the recipe said of its own file and revision does not apply
        dropped = {"kind": None, "gguf_file": None, "revision": None} if model_path else {}
        model = _validated(parsed.input_model, {**dropped, **model_changes}, "input_model")
        parsed = parsed.model_copy(update={"input_model": model})
    exec_changes: dict[str, str | None] = {k: v for k, v in {"type": executor, "address": ray_address}.items()
                                           if v is not None}
    if executor == "local" and ray_address is None:  # a recipe written for a cluster, run here: its address unused
        exec_changes["address"] = None
    if exec_changes:
        parsed = parsed.model_copy(update={"executor": _validated(parsed.executor, exec_changes, "executor")})
    parsed.translation_warnings[:] = warnings
    return parsed


def _validated(section: Any, changes: dict[str, Any], where: str) -> Any:
    """A recipe section with the caller's ``changes``, checked as the recipe's own values are (RecipeError)."""
    cls = type(section)
    try:
        return cls.model_validate({**section.model_dump(), **changes})
    except ValidationError as e:
        raise RecipeError(problems_from_validation(e, cls, (where,)), source="options") from e


def _not_a_recipe(value: object) -> RecipeError:
    """The error for a ``recipe`` argument of another type (it was a TypeError, no OliveExtError)."""
    problem = Problem("recipe", f"must be a path, a mapping or a Recipe, not {type(value).__name__}", value,
                      has_value=True)  # fmt: skip
    return RecipeError([problem], source="options")


@api_call()
def run(
    recipe: RecipeLike,
    *,
    output_path: str | Path | None = None,
    overwrite: bool | None = None,
    cache_dir: str | None = None,
    executor: str | None = None,
    ray_address: str | None = None,
    progress: Progress | None = None,
    lenient: bool = False,
    model_path: str | None = None,
    adapter_path: str | None = None,
) -> RunResult:
    """Run a recipe end to end and write its output folder (as ``olive-ext run --config``; ``model_path`` and
    ``adapter_path`` replace its input model, as `run -m/-a` does).

    ``recipe`` is a path to a YAML/JSON recipe or Olive run config, a mapping, or a Recipe.
    Returns the RunResult; ``result.model_path`` is the chosen model in the output folder.
    Raises RecipeError for an invalid recipe, ConstraintsNotMetError (after writing every
    candidate's metrics) when no candidate meets the constraints.

        >>> result = olive_ext.run("recipes/smollm2-lora-int4-cpu.yaml", output_path="out/run")  # doctest: +SKIP
        >>> result.model_path  # doctest: +SKIP
        PosixPath('out/run/model')
    """
    parsed = as_recipe(recipe, output_path=output_path, overwrite=overwrite, cache_dir=cache_dir, executor=executor,
                       ray_address=ray_address, lenient=lenient, model_path=model_path,
                       adapter_path=adapter_path)  # fmt: skip
    return run_recipe(parsed, progress=progress_or_quiet(progress))


def run_recipe(
    recipe: Recipe,
    *,
    progress: Progress | None = None,
    reference_accuracy: float | None = None,
    write_output: bool = True,
    spelled: Mapping[str, str] | None = None,
) -> RunResult:
    """Run a validated Recipe: execute it, write the output folder, raise when nothing could be chosen
    (``spelled``: how the caller's user writes each constraint, for that message)."""
    out_dir = Path(recipe.output.path)
    check_recipe_before_work(recipe, write_output)
    with output_claim(out_dir) if write_output else contextlib.nullcontext():
        result = execute(recipe, progress=progress, reference_accuracy=reference_accuracy)
        result.notes[:0] = [f"recipe: {w}" for w in recipe.translation_warnings]  # e.g. Olive keys --lenient let by
        if write_output:
            result.output_dir = out_dir if result.chosen else failed_run_output(out_dir, recipe.output.overwrite)
            if result.output_dir != out_dir:
                logger.warning("nothing was chosen: %s keeps the model of the run before; this run's candidates "
                               "and report are in %s", out_dir, result.output_dir)  # fmt: skip
            write_run_output(result, recipe, result.source, overwrite=True if result.output_dir != out_dir else None)
    raise_if_unmet(result, recipe, spelled)
    return result


def validate(recipe: RecipeLike, lenient: bool = False) -> list[Problem]:
    """Every problem in a recipe (ours or an Olive run config), without running anything; [] when valid.

    ``recipe``: what :func:`run` takes (a path, a mapping, or a Recipe). Notes (severity "note") are included
    beside errors; a file that cannot be read is one problem. ``lenient``: Olive keys olive-ext does not honour
    are notes, not errors.
    """
    if isinstance(recipe, Recipe):  # each section valid by construction: the checks across them, then its files
        problems = semantic_problems(recipe)
        return problems if any(p.severity == "error" for p in problems) else problems + file_problems(recipe)
    if not isinstance(recipe, str | Path | Mapping):
        return list(_not_a_recipe(recipe).problems)
    try:
        raw = read_recipe_file(recipe) if isinstance(recipe, str | Path) else plain_recipe(recipe)
    except RecipeError as e:
        return list(e.problems)
    except UserInputError as e:  # unreadable file, bad YAML: one problem at the top
        return [Problem("", e.message, hint=e.hint)]
    base_dir = Path(recipe).parent if isinstance(recipe, str | Path) else None
    return check_recipe_and_files(raw, base_dir, lenient)[1]


def check_recipe_and_files(
    raw: dict[str, Any], base_dir: Path | None, lenient: bool = False
) -> tuple[Recipe | None, list[Problem]]:
    """:func:`check_recipe`, then (when that finds no error) :func:`file_problems`: what `validate` reports."""
    parsed, problems = check_recipe(raw, base_dir=base_dir, lenient=lenient)
    if parsed is not None and not any(p.severity == "error" for p in problems):
        problems += file_problems(parsed, olive=is_olive_config(raw))
        if warning := large_grid(SearchSpace.from_recipe(parsed), parsed.search):
            problems.append(Problem("search", warning, severity="note"))
    return parsed, problems


def write_run_output(
    result: RunResult, recipe: Recipe, source: Artifact | None = None, overwrite: bool | None = None
) -> None:
    """model/, candidates.json, lineage.json, recipe.yaml and report.md in the output folder (replaced when
    ``overwrite``, by default the recipe's ``output.overwrite``)."""
    assert result.output_dir is not None
    with staged_output(result.output_dir, recipe.output.overwrite if overwrite is None else overwrite) as stage:
        if result.chosen and result.chosen.artifact:
            info = deployment_info(result.chosen, recipe, source)
            if not result.accuracy_measured:
                info["selection"] = "speed and size alone: task accuracy was not measured"
            export_artifact(result.chosen.artifact, stage, info, memo=cache_memo(recipe.cache_dir))
        write_json(
            stage / "candidates.json",
            {
                "olive_ext_version": __version__,
                "chosen": result.chosen.candidate.id if result.chosen else None,
                "objective": recipe.evaluate.objective if recipe.evaluate else None,
                "notes": result.notes,
                "accuracy_measured": result.accuracy_measured,
                "unchecked_constraints": result.unchecked_constraints,
                "reference": result.reference,
                "candidates": [r.to_json() for r in result.results],
            },
        )
        write_json(stage / "lineage.json", [rec.to_json() for r in result.results for rec in r.records])
        write_yaml(
            stage / "recipe.yaml",
            resolved_recipe(recipe),
            header="resolved recipe: rerun with `olive-ext run --config recipe.yaml`",
        )
        write_reports(stage, result, recipe)


def deployment_info(chosen: CandidateResult, recipe: Recipe, source: Artifact | None = None) -> dict[str, Any]:
    """What `package` and `verify` need beside the model: target, smoke prompts, the fine-tuning chat template."""
    assert chosen.artifact is not None
    target = chosen.candidate.target
    info: dict[str, Any] = {
        "candidate": chosen.candidate.id,
        "target": {"device": target.device, "provider": target.provider},
        "metrics": {k: v for k, v in chosen.metrics.items() if "." not in k},
    }
    # the adapter the model was fine-tuned with: as recorded at build time, else this run's input (a cache hit
    # records the folder the build first came from, which may since have moved)
    if "base_model" in chosen.artifact.meta:  # this run's input as its passes saw it: a cache hit kept the
        info["base_model"] = recipe.input_model.path  # spelling of the run that built it (pypi:... for the .gguf)
    origin = chosen.artifact.meta.get("source_model") or {}
    adapters = [origin.get("adapter_path"), source.adapter_path if source else None, recipe.input_model.adapter_path]
    adapter = next((a for a in adapters if a and Path(a).is_dir()), None)
    template = chat_template_text(Path(adapter)) if adapter else None
    if template:
        info["finetune_chat_template_sha256"] = text_sha256(template)
    if recipe.evaluate and recipe.evaluate.data and chosen.artifact.kind in {"genai", "gguf"}:
        artifact = chosen.artifact
        # a text template's prompts test the end of turn of a model fine-tuned on them; a model that never was (a
        # downloaded GGUF measured on the user's rows) continues such text to verify's limit, and every bundle of
        # it failed verify: it gets package's greeting in its chat template. Chat rows are in that template anyway.
        fine_tuned = adapter is not None or "adapter_merged" in (source.meta if source else {})
        tokenizer = functools.cache(lambda: load_tokenizer(artifact))  # loaded once, and only where asked
        prompts = smoke_prompts(recipe.data[recipe.evaluate.data], tokenizer, chat_only=not fine_tuned)
        if prompts:
            info["smoke_prompts"] = prompts
        template = recipe.data[recipe.evaluate.data].text_template
        # chat and serve's chat completions wrap prompts in the chat template: said where the template is another form
        if fine_tuned and template and not in_chat_form(template, tokenizer()):
            info["text_template"] = template
    return info


def in_chat_form(template: str, tokenizer: Any) -> bool:
    """Whether a text template already writes the chat template's turns: it holds what the chat template puts
    between a user's message and the assistant's answer (the demo's `<|im_end|>\n<|im_start|>assistant\n`)."""
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "\x00"}], tokenize=False,
                                             add_generation_prompt=True)  # fmt: skip
    except Exception:  # no chat template, or one that refuses a lone user turn: chat refuses or says so itself
        return False
    between = str(text).split("\x00", 1)[-1].strip()
    return bool(between) and between in template
