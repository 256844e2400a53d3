"""Running a candidate's steps in order, each output cached by content.

The cache key of a step is a hash of (pass type, pass version, canonical config,
input fingerprint, versions of olive-ext and of the pass's libraries). A hit reuses
the entry; a miss runs the pass in a temporary folder that is renamed into the cache
only when the pass succeeds, so a killed run resumes from its last finished step.
A build holds the cache's lock on its key: a second process asking for the same step
waits and reuses the entry rather than building it again.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from olive_ext.artifacts import Artifact
from olive_ext.cache import Cache, cache_key
from olive_ext.engine.steps import Step
from olive_ext.errors import DISK_FULL_HINT, OliveExtError, PassError, UserInputError, disk_full
from olive_ext.memory import peak_rss_mb, release_freed_memory, reset_peak_rss
from olive_ext.models.folder import BNB_METHOD, quantization_method
from olive_ext.onnx.runtime import runtime_telemetry_off
from olive_ext.passes.context import RunContext
from olive_ext.progress import Progress
from olive_ext.targets.base import CPU, Target

# Passes that take HF models also take GGUF inputs: this step converts once, cached.
GGUF_CONVERSION = "gguf_to_hf"
BNB_DEQUANTIZE = "dequantize_hf"


@dataclass
class StepRecord:
    """One lineage entry: which pass made which artifact from which input, and how long it took."""

    candidate: str
    step: str
    type: str
    config: dict[str, Any]
    input: str
    output: str
    cache_key: str
    cache_hit: bool
    seconds: float
    target: str
    output_path: str
    # this process's peak resident memory while the step ran (MiB; None where it cannot be read): the step's
    # own work, its workers aside (they are processes of their own)
    peak_rss_mb: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The lineage.json entry."""
        return asdict(self)


def failure_text(e: BaseException) -> str:
    """``e`` as "Type: message", followed by the exception it wraps where a library re-raised it in its own words:
    olive-ai's "OlivePassError: quantize_static failed." hid onnxruntime's "ValueError: supplied range of [-inf, inf]
    is not finite" (shown only at --log_level 0)."""
    text = f"{type(e).__name__}: {e}"
    cause = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" (caused by {type(cause).__name__}: {str(cause)[:300]})"
    return text

def open_context(cache_dir: str | None = None, target: Target = CPU, progress: Progress | None = None) -> RunContext:
    """A RunContext over the cache at ``cache_dir``: how a workflow that runs single steps uses the engine."""
    return RunContext(cache=Cache(cache_dir), target=target, progress=progress)


def step_key(step_type: str, version: int, config: dict[str, Any], input_fp: str, libs: dict[str, str]) -> str:
    """The cache key of one step."""
    return cache_key("pass", step_type, version, config, input_fp, libs)


def run_steps(
    artifact: Artifact, steps: list[Step] | tuple[Step, ...], ctx: RunContext, candidate_id: str = ""
) -> tuple[Artifact, list[StepRecord]]:
    """Run ``steps`` on ``artifact``; return the final artifact and the lineage records."""
    records: list[StepRecord] = []
    for step in _with_implicit_conversions(artifact, list(steps)):
        artifact, record = run_step(artifact, step, ctx, candidate_id)
        records.append(record)
    return artifact, records


def _with_implicit_conversions(artifact: Artifact, steps: list[Step]) -> list[Step]:
    """A GGUF input meeting a pass that takes HF models is dequantized to an HF folder first; a bitsandbytes
    HF model meeting a pass that converts weights, to full precision."""
    if not steps:
        return steps
    conversion = implicit_conversion(artifact, steps[0].pass_class())
    return [Step(conversion, conversion, {}), *steps] if conversion else steps


def implicit_conversion(artifact: Artifact, first: Any = None) -> str | None:
    """The step the engine runs before ``first`` (a pass class; None: any pass that converts HF weights, as the
    PyTorch reference does), or None."""
    if artifact.kind == "gguf":
        return GGUF_CONVERSION if first is None or ("gguf" not in first.accepts and "hf" in first.accepts) else None
    if artifact.kind == "hf" and not (first is not None and first.takes_packed_weights):
        return BNB_DEQUANTIZE if quantization_method(artifact.path) == BNB_METHOD else None
    return None


def check_step_input(name: str, type_: str, cls: Any, artifact: Artifact) -> None:
    """Refuse an input the pass cannot take beyond its kind (its ``check_input``), naming the step."""
    why_not = cls.check_input(artifact)
    if why_not:
        raise UserInputError(f"pass '{name}' ({type_}) cannot take {artifact.describe()}: {why_not}")


def run_step(artifact: Artifact, step: Step, ctx: RunContext, candidate_id: str = "") -> tuple[Artifact, StepRecord]:
    """Run one step (or reuse its cache entry)."""
    cls = step.pass_class()
    config = step.config(ctx.target)
    accepts = cls.accepts_for(config.canonical())
    if artifact.kind not in accepts:
        raise UserInputError(
            f"pass '{step.name}' ({step.type}) takes {'/'.join(sorted(accepts))} models, got a {artifact.kind} model"
        )
    check_step_input(step.name, step.type, cls, artifact)
    canonical = config.canonical()
    extra = cls(config).cache_extra(ctx)
    key_config = canonical if extra is None else {**canonical, "__depends_on__": extra}
    key = step_key(step.type, cls.version, key_config, artifact.fingerprint, cls.library_versions())
    started = time.perf_counter()
    runtime_telemetry_off()  # passes import onnxruntime themselves; it reads its opt-out at import
    reset_peak_rss()
    out, hit = _reuse_or_build(artifact, step, cls, config, canonical, key, ctx)
    seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    # what the step left for the collector goes now: a genai build's ONNX graph is cyclic (nodes, values,
    # graph) and holds the weights; uncollected, a Qwen2-1.5B build's 7.5 GB sat under the parity check after it.
    # A cache hit built nothing: a full collection there cost ~90 ms per step with torch loaded (2 s of a re-run).
    if not hit:
        release_freed_memory()
    return out, StepRecord(
        candidate=candidate_id,
        step=step.name,
        type=step.type,
        config=canonical,
        input=artifact.fingerprint,
        output=out.fingerprint,
        cache_key=key,
        cache_hit=hit,
        seconds=round(seconds, 3),
        target=ctx.target.name,
        output_path=out.path,
        peak_rss_mb=peak,
    )


def _reuse_or_build(artifact: Artifact, step: Step, cls: Any, config: Any, canonical: dict[str, Any], key: str,
                    ctx: RunContext) -> tuple[Artifact, bool]:  # fmt: skip
    """The cached output of ``key`` (True), or the output built now under the key's lock (False)."""
    out = ctx.cache.get_artifact(key)
    if out is None:

        def waiting() -> None:
            ctx.logger.info("step %s (%s): another process is building it; waiting", step.name, step.type)

        with ctx.cache.lock(key, on_wait=waiting):
            out = ctx.cache.get_artifact(key)  # built by the process we waited for
            if out is None:
                ctx.logger.info("step %s (%s): running", step.name, step.type)
                return _build(artifact, step, cls, config, canonical, key, ctx), False
    ctx.logger.info("step %s (%s): reused from cache", step.name, step.type)
    return out, True


def _build(artifact: Artifact, step: Step, cls: Any, config: Any, canonical: dict[str, Any], key: str,
           ctx: RunContext) -> Artifact:  # fmt: skip
    """Run the pass in a fresh folder and commit its output to the cache under ``key``."""
    with ctx.cache.building(key) as work:
        try:
            produced = cls(config).run(artifact, ctx.for_step(work))
        except OliveExtError:
            raise
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:
            raise PassError(step.name, failure_text(e), hint=DISK_FULL_HINT if disk_full(e) else None) from e
        expected = cls.output_kind_for(canonical, artifact.kind)
        if produced.kind != expected:
            raise PassError(step.name, f"produced a {produced.kind} model, declared {expected}")
        record = {"pass": step.type, "config": canonical, "input": artifact.fingerprint}
        return ctx.cache.commit_artifact(key, work, produced, record)
