"""The engine's run loop: a recipe becomes candidates, each is built through the cache and measured, one is chosen.

:func:`execute` does the work and returns a :class:`~olive_ext.engine.results.RunResult`; it writes
nothing outside the cache. Writing the output folder is the caller's job (``olive_ext.run`` does it),
which keeps this layer free of reports and packaging.
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from olive_ext.artifacts import Artifact, fingerprint_input
from olive_ext.cache import Cache
from olive_ext.cpu_threads import plan_threads
from olive_ext.engine.background import BackgroundBuilds, background_prefixes, why_not_background
from olive_ext.engine.executor import Executor, Job, LocalExecutor, opened
from olive_ext.engine.results import CandidateResult, RunResult
from olive_ext.engine.runner import implicit_conversion, run_steps
from olive_ext.engine.search import Candidate, SearchSpace, Strategy, large_grid, make_strategy
from olive_ext.engine.select import (
    accuracy_of,
    check_constraints,
    nearest_misses,
    objective_value,
    select,
    stopped_after,
    unchecked_constraints,
)
from olive_ext.engine.steps import Step
from olive_ext.errors import ConstraintsNotMetError, OliveExtError
from olive_ext.evaluate.context import EvalContext
from olive_ext.evaluate.evaluator import evaluate, olive_reference
from olive_ext.evaluate.racing import Race
from olive_ext.evaluate.registry import ACCURACY_METRICS, QUALITY_METRICS
from olive_ext.evaluate.spec import EvaluateSpec
from olive_ext.models.folder import model_task, resolve_model_arg
from olive_ext.models.hub import go_offline_if_unreachable
from olive_ext.onnx.genai_builder import release_loads
from olive_ext.passes.context import RunContext
from olive_ext.passes.parity_check import forget_recorded
from olive_ext.passes.shared import forget_shared
from olive_ext.progress import Progress, progress_or_quiet
from olive_ext.recipe.schema import Recipe
from olive_ext.targets.base import CPU

logger = logging.getLogger("olive_ext")

__all__ = ["accuracy_not_measured", "execute", "input_artifact", "raise_if_unmet", "run_candidate"]

PERPLEXITY_NOT_CHECKED = (
    "max_accuracy_drop was NOT checked: it limits accuracy in points (exact_match, accuracy), and the candidates "
    "were scored by perplexity alone; use --metric exact_match to have it checked, or compare their perplexity "
    "in the table"
)
def accuracy_not_measured(spec: EvaluateSpec | None, why: str | None = None) -> str:
    """The run's note when accuracy was not measured, saying why (``why``, else what the recipe lacks)."""
    if why is None:
        why = "no eval data" if spec is None or spec.data is None else "evaluate.metrics has no exact_match or accuracy"
    return (
        f"accuracy was not measured ({why}): max_accuracy_drop was NOT checked and the choice was made on speed and "
        "size alone; give eval data (auto-opt: --data_files, --eval_split, --text_template, or a finetune output made "
        "with --eval_split; a recipe: evaluate.data and exact_match in evaluate.metrics) to have it measured"
    )


def input_artifact(recipe: Recipe, cache: Cache) -> Artifact:
    """The recipe's input model as a fingerprinted artifact."""
    im = recipe.input_model
    art = resolve_model_arg(im.path, im.adapter_path, im.kind, im.gguf_file)
    if im.revision:
        art = Artifact(art.kind, art.path, art.adapter_path, art.gguf_file, meta={**art.meta, "revision": im.revision})
    if im.olive:  # an Olive model config (load_kwargs, the user's hooks): the olive step loads the model with it
        art = Artifact(art.kind, art.path, art.adapter_path, art.gguf_file, meta={**art.meta, "olive_model": im.olive})
    art = fingerprint_input(art, cache.memo)
    cache.memo.save()
    return art


def execute(
    recipe: Recipe,
    *,
    progress: Progress | None = None,
    reference_accuracy: float | None = None,
) -> RunResult:
    """Build and measure every candidate of ``recipe`` and choose one; nothing is written but the cache.

    A recipe with a single candidate raises that candidate's error; with several, failures are
    recorded on their results and the search goes on. ``output_dir`` of the result is None.
    """
    started = time.perf_counter()
    progress = progress_or_quiet(progress)
    cache = Cache(recipe.cache_dir)
    go_offline_if_unreachable([recipe.input_model.path, *(d.name for d in recipe.data.values())])
    source = input_artifact(recipe, cache)
    targets = [t.target() for t in recipe.targets]
    space = SearchSpace.from_recipe(recipe)
    strategy = make_strategy(space, targets, recipe.search)
    ctx = RunContext(cache=cache, datasets=dict(recipe.data), input_model=recipe.input_model, progress=progress)
    if warning := large_grid(space, recipe.search):
        logger.warning("%s", warning)
    total = sum(strategy.budget(t) for t in targets)
    single = total == 1
    results: list[CandidateResult] = []
    notes: list[str] = []
    reference = None
    want_reference = recipe.evaluate is not None and (
        reference_accuracy is None or recipe.evaluate.constraints.min_latency_improvement_pct is not None
    )
    inflight: deque[tuple[Candidate, Job]] = deque()
    reference_olive = _olive_goal_reference(recipe, source, cache)

    def finish(candidate: Candidate, job: Job) -> None:
        nonlocal reference, reference_accuracy, want_reference
        result = job.result()
        results.append(result)
        if result.exception is not None:
            if single or getattr(result.exception, "fails_every_candidate", False):
                # a model-level failure (an architecture or config field the builder cannot take) would
                # repeat for every candidate: say it once, now
                raise result.exception
            logger.warning("candidate %s failed: %s", candidate.id, result.error)
        if want_reference and reference is None and result.artifact is not None:
            # the first built candidate tells which PyTorch model the candidates come from
            with measuring():
                reference = evaluate_reference(source, result.artifact, recipe, ctx, progress)
            if reference_accuracy is None:
                reference_accuracy = accuracy_of(reference["metrics"]) if reference else None
            if reference and (warning := no_exact_answers(reference["metrics"])):
                logger.warning("%s", warning)
                notes.append(warning)
            want_reference = False
        strategy.tell(candidate, _search_score(result, recipe, reference_accuracy, _latency(reference)))
        bar.advance()

    with (
        progress,
        progress.task("candidates", total=total) as bar,
        opened(recipe.executor, cache.root) as executor,
        _run_scoped_builds(),
        _background(source, strategy, executor, ctx) as background,
    ):
        # around each evaluation: a background build is paused by the worker while it times, resumed after
        measuring = background.measuring if background else nullcontext
        for candidate in background.run_order(strategy) if background else strategy:
            bar.update(info=" -> ".join(s.type for s in candidate.steps))
            race = race_for(recipe, _race_reference(results, reference_accuracy, recipe))
            job = executor.submit(run_candidate, source, candidate, ctx, recipe, reference_accuracy, race, measuring)
            inflight.append((candidate, job))
            # results are taken in submission order; the loop waits for them while the window is full, while
            # the search needs each score before its next suggestion, and until the first build gave the reference
            while inflight and (len(inflight) >= executor.slots or strategy.adaptive or want_reference):
                finish(*inflight.popleft())
        while inflight:
            finish(*inflight.popleft())
        notes += left_out_notes(results, said_once(ctx)["said"])
        chosen = _choose(results, recipe, reference_accuracy, notes, _latency(reference), reference_olive)
        if chosen is not None:
            executor.materialize(chosen)
    unchecked = unchecked_constraints(recipe.evaluate)
    if chosen is not None and recipe.evaluate is not None:  # what the chosen one was not measured on (a target that
        # does not run here, a metric left out): candidates.json listed nothing while the report said "NOT checked"
        limits = recipe.evaluate.constraints.named_limits()
        missed = [n for n, _ in limits if n not in chosen.constraints and n not in unchecked]
        if missed:
            where = "" if chosen.candidate.target.is_available() else " (its target does not run on this machine)"
            logger.warning("the chosen candidate was not measured for %s%s: NOT checked", ", ".join(missed), where)
            unchecked += missed
    if "min_latency_improvement_pct" in unchecked and not _latency(reference):  # dropped without a word before
        notes.append("min_latency_improvement_pct was NOT checked: the source model's latency in PyTorch, its "
                     "baseline, was not measured (olive-ext measures the PyTorch source of LLMs only, and needs "
                     "latency in evaluate.metrics); use max_latency_ms for a limit it can check")  # fmt: skip
    if "max_accuracy_drop" in unchecked:
        if any("perplexity" in r.metrics for r in results):
            notes.append(PERPLEXITY_NOT_CHECKED)
            logger.warning("%s", PERPLEXITY_NOT_CHECKED)
        else:
            cross = chosen is not None and not chosen.candidate.target.is_available()
            notes.append(accuracy_not_measured(recipe.evaluate, "its target does not run on this machine" if cross
                                               else None))  # fmt: skip
    composite = [r for r in results if r.ok and r.artifact is not None and r.artifact.kind == "composite"]
    if composite and recipe.evaluate is not None and (unmeasured := [m for m in recipe.evaluate.metrics
                                                                      if m not in composite[0].metrics]):
        notes.append(f"{', '.join(unmeasured)} NOT measured on {len(composite)} composite candidate(s) (SplitModel's "
                     "components are not run as one model): add ComposeOnnxModels after SplitModel to measure "
                     "them")  # fmt: skip
        logger.warning("%s", notes[-1])
    measured = [r for r in results if r.ok and r.candidate.target.is_available() and r.metrics]
    if measured and recipe.evaluate is not None and not composite and (absent := [
            m for m in recipe.evaluate.metrics if not any(m in r.metrics for r in measured)]):  # fmt: skip
        # asked for and measured on no candidate (throughput on an encoder: an Olive config's metric vanished)
        notes.append(f"{', '.join(absent)} NOT measured: olive-ext does not measure "
                     f"{'it' if len(absent) == 1 else 'them'} on these candidates (throughput and ttft: LLMs only)")
        logger.warning("%s", notes[-1])
    if any(r.ok and not r.candidate.target.is_available() for r in results):
        notes.append(
            "some targets' execution providers are not installed here: those candidates were built "
            "(cross-build) but not measured"
        )
    olive_quality = any(str(m.get("type")) in ("accuracy", "custom") for m in (
        recipe.evaluate.olive_metrics if recipe.evaluate else []))  # fmt: skip
    return RunResult(results, chosen, None, time.perf_counter() - started, notes, reference, source, unchecked,
                     olive_quality)  # fmt: skip


@contextlib.contextmanager
def _run_scoped_builds() -> Iterator[None]:
    """What builds share within a run (the loaded model, the merged adapter, the F32 GGUF) ends with it."""
    try:
        yield
    finally:
        release_loads()
        forget_shared()
        forget_recorded()


@contextlib.contextmanager
def _background(
    source: Artifact, strategy: Strategy, executor: Executor, ctx: RunContext
) -> Iterator[BackgroundBuilds | None]:
    """Background builds for the run's single-threaded steps (engine/background.py), or None where they do not apply:
    an adaptive search (its order is not known up front), an executor of its own (Ray), no spare core or memory."""
    if strategy.adaptive or not isinstance(executor, LocalExecutor):
        yield None
        return
    jobs = background_prefixes(list(strategy)[1:])  # the first candidate is built here at once anyway
    why = why_not_background(source, plan_threads().threads - 1) if jobs else "no single-threaded steps"
    if why:
        if jobs:
            logger.info("no background build: %s", why)
        yield None
        return
    background = BackgroundBuilds.start(source, jobs, ctx)
    try:
        yield background
    finally:
        background.close()


def raise_if_unmet(result: RunResult, recipe: Recipe, spelled: Mapping[str, str] | None = None) -> None:
    """Raise when nothing could be chosen: ConstraintsNotMetError (nearest misses named) or every candidate failed.

    ``spelled`` gives how the caller's user writes a constraint (auto-opt: ``--max_accuracy_drop``); the
    others are named by their recipe key (``evaluate.constraints.<name>``)."""
    results = result.results
    if recipe.evaluate and result.chosen is None and any(r.ok for r in results):
        misses = nearest_misses(results)
        reference = accuracy_of((result.reference or {}).get("metrics", {}))
        lines = [
            f"  {m.candidate.id} {m.candidate.describe()}: broke "
            + ", ".join(_broken(k, m, reference) for k, v in m.constraints.items() if not v)
            for m in misses
        ]
        where = result.output_dir / "candidates.json" if result.output_dir else "the run's results"
        broken = sorted({k for m in misses for k, v in m.constraints.items() if not v})
        names = [(spelled or {}).get(k, f"evaluate.constraints.{k}") for k in broken]
        raise ConstraintsNotMetError(
            "no candidate met the constraints; nearest:\n" + "\n".join(lines),
            hint=f"every candidate's metrics are in {where}; to choose one, relax {' or '.join(names)}",
            result=result,
        )
    if not any(r.ok for r in results):
        first = next((r.error for r in results if r.error), "no candidates")
        raise OliveExtError(f"every candidate failed; first error: {first}")


def run_candidate(
    source: Artifact,
    candidate: Candidate,
    ctx: RunContext,
    recipe: Recipe,
    reference_accuracy: float | None = None,
    race: Race | None = None,
    lock: Callable[[], AbstractContextManager[Any]] | None = None,
    build_lock: Callable[[], AbstractContextManager[Any]] | None = None,
) -> CandidateResult:
    """Build one candidate through the cache and evaluate it; failures are recorded, not raised.

    With ``race``, its evaluation stops early once its accuracy cannot meet the constraint, and the parity
    checks that end its pipeline run after the evaluation, only when racing did not stop it: a stopped
    candidate cannot be chosen, and its check (5-15 s each for SmolLM2) would decide nothing. ``lock`` is held
    while the candidate is measured, ``build_lock`` while it builds (the Ray executor's: one measurement at a
    time per machine, and none beside a build)."""
    result = CandidateResult(candidate)
    started = time.perf_counter()
    step_ctx = ctx.for_step(ctx.output_dir, candidate.target)
    checks = deferred_checks(candidate.steps) if race is not None else []
    builds = candidate.steps[: len(candidate.steps) - len(checks)]
    try:
        with build_lock() if build_lock else nullcontext():
            result.artifact, result.records = run_steps(source, builds, step_ctx, candidate.id)
        if recipe.evaluate:
            dataset = recipe.data.get(recipe.evaluate.data) if recipe.evaluate.data else None
            ectx = EvalContext(recipe.evaluate, candidate.target, dataset, extras=said_once(ctx))
            metrics = None
            if not candidate.target.is_available():
                metrics = [m for m in recipe.evaluate.metrics if m == "size"]
                result.notes.append(f"not measured here: {candidate.target.provider} is not available on this machine")
            with lock() if lock else nullcontext():
                result.metrics, result.eval_cache_hit = evaluate(result.artifact, ectx, ctx.cache, metrics, race)
            _note_stopped(result)
        if checks and stopped_after(result.metrics) is None:
            with build_lock() if build_lock else nullcontext():
                result.artifact, more = run_steps(result.artifact, checks, step_ctx, candidate.id)
            result.records += more
        elif checks:
            result.notes.append(f"not checked ({', '.join(s.name for s in checks)}): racing stopped it first")
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # one candidate's failure must not end a search; it is recorded
        result.error = str(e) if isinstance(e, OliveExtError) else f"{type(e).__name__}: {e}"
        result.exception = e
        logger.debug("%s", "".join(traceback.format_exception(e)))
    result.seconds = time.perf_counter() - started
    return result


def deferred_checks(steps: list[Step] | tuple[Step, ...]) -> list[Step]:
    """The checks that end a pipeline (``Pass.check_only``: their output is their input, figures added)."""
    tail: list[Step] = []
    for step in reversed(steps):
        if not step.pass_class().check_only:
            break
        tail.insert(0, step)
    return tail if len(tail) < len(steps) else []


def race_for(recipe: Recipe, reference: float | None) -> Race | None:
    """The racing rule for the next candidate: stop below ``reference - max_accuracy_drop``."""
    spec = recipe.evaluate
    if spec is None or spec.racing == "off" or reference is None or spec.constraints.max_accuracy_drop is None:
        return None
    if not set(ACCURACY_METRICS) & set(spec.metrics):
        return None
    return Race(floor=reference - spec.constraints.max_accuracy_drop, bound=spec.racing)


def _race_reference(results: list[CandidateResult], reference_accuracy: float | None, recipe: Recipe) -> float | None:
    """The accuracy a candidate is raced against: the reference model's, or (``reference: best``) the best
    accuracy over all rows so far, which the final best can only exceed, so a stop stays justified."""
    if reference_accuracy is not None or recipe.evaluate is None or recipe.evaluate.reference != "best":
        return reference_accuracy
    full = [accuracy_of(r.metrics) for r in results if r.ok and stopped_after(r.metrics) is None]
    known = [a for a in full if a is not None]
    return max(known) if known else None


def _note_stopped(result: CandidateResult) -> None:
    rows = stopped_after(result.metrics)
    if rows is not None:
        total = int(result.metrics.get("exact_match.rows", result.metrics.get("accuracy.rows", 0)))
        why = (
            "its accuracy over every row is below what max_accuracy_drop allows"
            if rows >= total
            else "the upper bound of its accuracy fell below what max_accuracy_drop allows"
        )
        result.notes.append(f"stopped after {rows} of {total} rows: {why} (not timed)")


def left_out_notes(results: list[CandidateResult], said: set[tuple[Any, ...]]) -> list[str]:
    """The run's notes on eval rows its accuracy was not scored on (the same rows for every candidate of a model),
    warned of here unless this process's evaluation warned already: figures from the cache (or a Ray worker) said
    nothing before."""
    notes: dict[str, None] = {}
    for r in results:
        for name in ACCURACY_METRICS:
            if text := r.metrics.get(f"{name}.left_out"):
                notes[f"{name}: {text}"] = None
                if ("left_out", text) not in said:
                    said.add(("left_out", text))
                    logger.warning("%s", text)
    return list(notes)


def evaluate_reference(
    source: Artifact, built: Artifact, recipe: Recipe, ctx: RunContext, progress: Progress
) -> dict[str, Any] | None:
    """Measure the PyTorch model the candidates were built from (after fine-tuning, adapter applied).

    Built artifacts name it in ``meta["source_model"]``; without that, the recipe's input
    model is the reference. It is the baseline for accuracy drops and speed-ups.
    """
    spec = recipe.evaluate
    speed_up = spec is not None and spec.constraints.min_latency_improvement_pct is not None
    if spec is None or spec.reference != "input" or not (QUALITY_METRICS & set(spec.metrics) or speed_up):
        return None
    origin = built.meta.get("source_model") or {}
    with progress.task("reference: the source model in PyTorch", total=None):
        if origin.get("path") and Path(origin["path"]).is_dir():
            model = fingerprint_input(Artifact("hf", origin["path"], origin.get("adapter_path")), ctx.cache.memo)
        elif source.kind == "hf" or source.kind == "gguf":
            model, conversion = source, implicit_conversion(source)
            if conversion:  # a GGUF's or bitsandbytes model's full-precision HF folder, cached like any step
                model, _ = run_steps(source, [Step(conversion, conversion, {})], ctx, "reference")
        else:
            return None
        if model_task(model) != "text-generation":  # PyTorch is measured for LLMs only: it warned of exact match
            logger.info("accuracy is compared with the most accurate candidate: a classifier's PyTorch source is not "
                        "measured (its fp32 export passes parity with it)")  # fmt: skip
            return None
        dataset = recipe.data.get(spec.data) if spec.data else None
        try:
            metrics, hit = evaluate(model, EvalContext(spec, CPU, dataset, extras=said_once(ctx)), ctx.cache)
        except OliveExtError as e:
            logger.warning("could not measure the source model as a reference: %s", e)
            return None
    label = "source model (PyTorch fp32" + (", adapter applied)" if model.adapter_path else ")")
    return {"label": label, "artifact": model.to_json(), "metrics": metrics, "cache_hit": hit}


def _broken(constraint: str, result: CandidateResult, reference_accuracy: float | None) -> str:
    """A broken constraint with the figures that broke it, where they say more than its name."""
    accuracy = accuracy_of(result.metrics)
    if constraint == "max_accuracy_drop" and accuracy is not None and reference_accuracy is not None:
        rows = stopped_after(result.metrics)
        seen = f" on its first {rows} rows" if rows else ""
        return f"{constraint} ({accuracy:.1f}%{seen} against the reference's {reference_accuracy:.1f}%)"
    return constraint


def said_once(ctx: RunContext) -> dict[str, Any]:
    """EvalContext extras holding this run's set of things said about its eval rows: each candidate's evaluation
    prepares the rows again, and a warning about them is given once per run (not once per process)."""
    return {"said": ctx.extras.setdefault("said", set())}


def no_exact_answers(metrics: dict[str, Any]) -> str | None:
    """A warning when the source model answers no eval row exactly: exact match then tells nothing apart.

    Seen off the path: a template whose last column is not the answer (``Tone: {tone}. Phrase: {phrase}``
    scores the phrase as the answer): every model scores 0%, no candidate can fall below the accuracy floor,
    so racing stops none and each candidate decodes every row in full, minutes per candidate, for a choice
    made on speed alone."""
    if metrics.get("exact_match") != 0 or not metrics.get("exact_match.n"):
        return None
    return (
        f"the source model answers none of the {int(metrics['exact_match.n'])} eval rows exactly (exact match 0%): "
        "accuracy cannot tell the candidates apart, and each one decodes every row in full. Check that each eval "
        "prompt ends where its answer starts: a text template's last column is the answer"
    )


def _latency(reference: dict[str, Any] | None) -> float | None:
    """The source model's measured latency (ms/token), the baseline of min_latency_improvement_pct."""
    value = (reference or {}).get("metrics", {}).get("latency")
    return float(value) if value else None


def _olive_goal_reference(recipe: Recipe, source: Artifact, cache: Cache) -> dict[str, float] | None:
    """The input model's values of the Olive metrics that relative Olive goals compare with (as Olive's engine
    evaluates its input model first), or None where no goal needs them or they cannot be computed (said)."""
    spec = recipe.evaluate
    if spec is None or not any(g.type != "threshold" for g in spec.constraints.olive_goals):
        return None
    try:
        return olive_reference(source, spec.olive_metrics, cache)
    except OliveExtError as e:
        logger.warning("the input model's Olive metrics, which the config's goals compare with, could not be "
                       "computed (%s): those goals are NOT checked", e)  # fmt: skip
        return None


def _search_score(
    result: CandidateResult, recipe: Recipe, reference_accuracy: float | None, reference_latency: float | None = None
) -> float | None:
    if not result.ok or not recipe.evaluate or stopped_after(result.metrics) is not None:
        return None
    value = objective_value(result.metrics, recipe.evaluate.objective)
    if value is None:
        return None
    broken = check_constraints(result.metrics, recipe.evaluate.constraints, reference_accuracy, reference_latency)
    return value + 1e6 * sum(not ok for ok in broken.values())


def _choose(
    results: list[CandidateResult],
    recipe: Recipe,
    reference_accuracy: float | None,
    notes: list[str],
    reference_latency: float | None = None,
    reference_olive: dict[str, float] | None = None,
) -> CandidateResult | None:
    if recipe.evaluate:
        return select(results, recipe.evaluate, reference_accuracy, reference_latency, reference_olive)
    ok = [r for r in results if r.ok]
    if not ok:
        return None
    if len(ok) > 1:
        notes.append("no `evaluate` section: the first successful candidate was chosen")
    ok[0].chosen = True
    return ok[0]
