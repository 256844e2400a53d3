"""The Python API the CLI uses: ``run(recipe)`` and friends.

``run`` expands the recipe into candidates, runs each candidate's passes through the
cache, evaluates them, selects one and writes the output folder::

    from olive_ext.api import run
    from olive_ext.recipe import load_recipe

    result = run(load_recipe("recipes/smollm2-int4-cpu.yaml"))
    print(result.chosen.artifact.path)
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from olive_ext import __version__
from olive_ext.artifacts import Artifact, fingerprint_input
from olive_ext.engine.cache import Cache
from olive_ext.engine.context import RunContext
from olive_ext.engine.output import ensure_output_free, staged_output, write_json, write_yaml
from olive_ext.engine.progress import Progress
from olive_ext.engine.runner import GGUF_CONVERSION, run_steps
from olive_ext.engine.search import Candidate, SearchSpace, make_strategy
from olive_ext.engine.select import (
    CandidateResult,
    accuracy_of,
    check_constraints,
    nearest_misses,
    objective_value,
    select,
)
from olive_ext.engine.steps import Step
from olive_ext.errors import ConstraintsNotMetError, OliveExtError
from olive_ext.evaluate.context import EvalContext
from olive_ext.evaluate.evaluator import evaluate
from olive_ext.hub import go_offline_if_unreachable
from olive_ext.model_folder import export_artifact, resolve_model_arg
from olive_ext.recipe.schema import Recipe
from olive_ext.targets.base import CPU, Target

logger = logging.getLogger("olive_ext")


@dataclass
class RunResult:
    """Every candidate, the chosen one, and where things were written."""

    results: list[CandidateResult]
    chosen: CandidateResult | None
    output_dir: Path | None
    seconds: float
    notes: list[str] = field(default_factory=list)
    reference: dict[str, Any] | None = None

    @property
    def cache_hits(self) -> int:
        return sum(r.cache_hit for c in self.results for r in c.records)

    @property
    def steps_run(self) -> int:
        return sum(len(c.records) for c in self.results)


def input_artifact(recipe: Recipe, cache: Cache) -> Artifact:
    """The recipe's input model as a fingerprinted artifact."""
    im = recipe.input_model
    art = resolve_model_arg(im.path, im.adapter_path, im.kind, im.gguf_file)
    if im.revision:
        art = Artifact(art.kind, art.path, art.adapter_path, art.gguf_file, meta={**art.meta, "revision": im.revision})
    art = fingerprint_input(art, cache.memo)
    cache.memo.save()
    return art


def run(
    recipe: Recipe,
    *,
    progress: Progress | None = None,
    reference_accuracy: float | None = None,
    write_output: bool = True,
) -> RunResult:
    """Run a recipe end to end. Raises ConstraintsNotMetError (after writing) when nothing fits."""
    started = time.perf_counter()
    out_dir = Path(recipe.output.path)
    if write_output:
        ensure_output_free(out_dir, recipe.output.overwrite)
    progress = progress or Progress(enabled=False)
    cache = Cache(recipe.cache_dir)
    go_offline_if_unreachable([recipe.input_model.path, *(d.name for d in recipe.data.values())])
    source = input_artifact(recipe, cache)
    targets = [Target(t.device, t.provider or "CPUExecutionProvider") for t in recipe.targets]
    space = SearchSpace.from_recipe(recipe)
    strategy = make_strategy(space, targets, recipe.search)
    ctx = RunContext(cache=cache, datasets=dict(recipe.data), input_model=recipe.input_model, progress=progress)
    total = sum(strategy.budget(t) for t in targets)
    single = total == 1
    results: list[CandidateResult] = []
    notes: list[str] = []
    reference = None
    want_reference = reference_accuracy is None and recipe.evaluate is not None
    with progress, progress.task("candidates", total=total) as bar:
        for candidate in strategy:
            bar.update(info=" -> ".join(s.type for s in candidate.steps))
            result = run_candidate(source, candidate, ctx, recipe, reference_accuracy)
            results.append(result)
            if result.exception is not None:
                if single:
                    raise result.exception
                logger.warning("candidate %s failed: %s", candidate.id, result.error)
            if want_reference and reference is None and result.artifact is not None:
                # the first built candidate tells which PyTorch model the candidates come from
                reference = evaluate_reference(source, result.artifact, recipe, ctx, progress)
                reference_accuracy = accuracy_of(reference["metrics"]) if reference else None
                want_reference = False
            strategy.tell(candidate, _search_score(result, recipe, reference_accuracy))
            bar.advance()
    chosen = _choose(results, recipe, reference_accuracy, notes)
    if any(r.ok and not r.candidate.target.is_available() for r in results):
        notes.append(
            "some targets' execution providers are not installed here: those candidates were built "
            "(cross-build) but not measured"
        )
    run_result = RunResult(
        results, chosen, out_dir if write_output else None, time.perf_counter() - started, notes, reference
    )
    if write_output:
        write_run_output(run_result, recipe, source)
    if recipe.evaluate and chosen is None and any(r.ok for r in results):
        misses = nearest_misses(results)
        lines = [
            f"  {m.candidate.id} {m.candidate.describe()}: broke "
            + ", ".join(k for k, v in m.constraints.items() if not v)
            for m in misses
        ]
        raise ConstraintsNotMetError(
            "no candidate met the constraints; nearest:\n" + "\n".join(lines),
            hint=f"every candidate's metrics are in {out_dir / 'candidates.json'}; relax a constraint to choose one",
            result=run_result,
        )
    if not any(r.ok for r in results):
        first = next((r.error for r in results if r.error), "no candidates")
        raise OliveExtError(f"every candidate failed; first error: {first}")
    return run_result


def run_candidate(
    source: Artifact, candidate: Candidate, ctx: RunContext, recipe: Recipe, reference_accuracy: float | None = None
) -> CandidateResult:
    """Build one candidate through the cache and evaluate it; failures are recorded, not raised."""
    result = CandidateResult(candidate)
    started = time.perf_counter()
    step_ctx = ctx.for_step(ctx.output_dir, candidate.target)
    try:
        result.artifact, result.records = run_steps(source, candidate.steps, step_ctx, candidate.id)
        if recipe.evaluate:
            dataset = recipe.data.get(recipe.evaluate.data) if recipe.evaluate.data else None
            ectx = EvalContext(recipe.evaluate, candidate.target, dataset)
            metrics = None
            if not candidate.target.is_available():
                metrics = [m for m in recipe.evaluate.metrics if m == "size"]
                result.notes.append(f"not measured here: {candidate.target.provider} is not available on this machine")
            result.metrics, result.eval_cache_hit = evaluate(result.artifact, ectx, ctx.cache, metrics)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # one candidate's failure must not end a search; it is recorded
        result.error = str(e) if isinstance(e, OliveExtError) else f"{type(e).__name__}: {e}"
        result.exception = e
        logger.debug("%s", "".join(traceback.format_exception(e)))
    result.seconds = time.perf_counter() - started
    return result


QUALITY_METRICS = {"accuracy", "exact_match", "perplexity"}


def evaluate_reference(
    source: Artifact, built: Artifact, recipe: Recipe, ctx: RunContext, progress: Progress
) -> dict[str, Any] | None:
    """Measure the PyTorch model the candidates were built from (after fine-tuning, adapter applied).

    Built artifacts name it in ``meta["source_model"]``; without that, the recipe's input
    model is the reference. It is the baseline for accuracy drops and speed-ups.
    """
    spec = recipe.evaluate
    if spec is None or spec.reference != "input" or not QUALITY_METRICS & set(spec.metrics):
        return None
    origin = built.meta.get("source_model") or {}
    with progress.task("reference: the source model in PyTorch", total=None):
        if origin.get("path") and Path(origin["path"]).is_dir():
            model = fingerprint_input(Artifact("hf", origin["path"], origin.get("adapter_path")), ctx.cache.memo)
        elif source.kind == "hf" or source.kind == "gguf":
            model = source
            if source.kind == "gguf":  # the dequantized HF conversion, cached like any step
                model, _ = run_steps(source, [Step(GGUF_CONVERSION, GGUF_CONVERSION, {})], ctx, "reference")
        else:
            return None
        dataset = recipe.data.get(spec.data) if spec.data else None
        try:
            metrics, hit = evaluate(model, EvalContext(spec, CPU, dataset), ctx.cache)
        except OliveExtError as e:
            logger.warning("could not measure the source model as a reference: %s", e)
            return None
    label = "source model (PyTorch fp32" + (", adapter applied)" if model.adapter_path else ")")
    return {"label": label, "artifact": model.to_json(), "metrics": metrics, "cache_hit": hit}


def _search_score(result: CandidateResult, recipe: Recipe, reference_accuracy: float | None) -> float | None:
    if not result.ok or not recipe.evaluate:
        return None
    value = objective_value(result.metrics, recipe.evaluate.objective)
    if value is None:
        return None
    broken = check_constraints(result.metrics, recipe.evaluate.constraints, reference_accuracy)
    return value + 1e6 * sum(not ok for ok in broken.values())


def _choose(
    results: list[CandidateResult], recipe: Recipe, reference_accuracy: float | None, notes: list[str]
) -> CandidateResult | None:
    if recipe.evaluate:
        return select(results, recipe.evaluate, reference_accuracy)
    ok = [r for r in results if r.ok]
    if not ok:
        return None
    if len(ok) > 1:
        notes.append("no `evaluate` section: the first successful candidate was chosen")
    ok[0].chosen = True
    return ok[0]


def write_run_output(result: RunResult, recipe: Recipe, source: Artifact | None = None) -> None:
    """model/, candidates.json, lineage.json, recipe.yaml and report.md in the output folder."""
    from olive_ext.report import write_reports

    assert result.output_dir is not None
    with staged_output(result.output_dir, recipe.output.overwrite) as stage:
        if result.chosen and result.chosen.artifact:
            export_artifact(result.chosen.artifact, stage, deployment_info(result.chosen, recipe, source))
        write_json(
            stage / "candidates.json",
            {
                "olive_ext_version": __version__,
                "chosen": result.chosen.candidate.id if result.chosen else None,
                "objective": recipe.evaluate.objective if recipe.evaluate else None,
                "notes": result.notes,
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
    from olive_ext.deploy.bundle import chat_template_text
    from olive_ext.deploy.manifest import text_sha256

    assert chosen.artifact is not None
    target = chosen.candidate.target
    info: dict[str, Any] = {
        "candidate": chosen.candidate.id,
        "target": {"device": target.device, "provider": target.provider},
        "metrics": {k: v for k, v in chosen.metrics.items() if "." not in k},
    }
    # the adapter the model was fine-tuned with: as recorded at build time, else this run's input (a cache hit
    # records the folder the build first came from, which may since have moved)
    origin = chosen.artifact.meta.get("source_model") or {}
    adapters = [origin.get("adapter_path"), source.adapter_path if source else None, recipe.input_model.adapter_path]
    adapter = next((a for a in adapters if a and Path(a).is_dir()), None)
    template = chat_template_text(Path(adapter)) if adapter else None
    if template:
        info["finetune_chat_template_sha256"] = text_sha256(template)
    if recipe.evaluate and recipe.evaluate.data and chosen.artifact.kind == "genai":
        from olive_ext.data import load_examples
        from olive_ext.evaluate.evaluator import load_tokenizer

        examples = load_examples(recipe.data[recipe.evaluate.data], load_tokenizer(chosen.artifact))
        info["smoke_prompts"] = [e.prompt for e in examples if e.prompt][:3]
    return info


def resolved_recipe(recipe: Recipe) -> dict[str, Any]:
    """The recipe with defaults filled in, as plain data."""
    data = recipe.model_dump(mode="json", exclude_none=True)

    def section(passes: dict[str, Any]) -> dict[str, Any]:
        return {name: {"type": spec.type, **spec.params()} for name, spec in passes.items()}

    data["passes"] = section(recipe.passes)
    data["pipelines"] = [section(p) for p in recipe.pipelines]
    if not data["pipelines"]:
        del data["pipelines"]
    return data
