"""mteb: MTEB tasks scored on a candidate, as Olive's ``MTEBEvaluator`` scores them.

The tasks, their data and their scoring are mteb's own (``mteb.MTEB(tasks).run``, the call Olive makes); olive-ext
only chooses the encoder wrapper for the candidate, the ones Olive's MTEBEvaluator uses: sentence-transformers for a
PyTorch folder, olive-ai's ``MTEBORTEvaluator`` for an ONNX graph and its ``MTEBORTGenAIEvaluator`` for a genai folder
built with ``include_hidden_states`` (both pool the last token's hidden state, as Olive does). Runs offline: a task
whose dataset is not on this machine was refused before any work (evaluate.mteb_tasks). Each task's main score lands
under ``<task>-main_score`` and each split/subset's under ``<task>-<split>[_<subset>]``, as Olive flattens them;
the headline ``mteb`` value is the mean of the tasks' main scores (MTEB's own summary of a model).
"""

from __future__ import annotations

import logging
import os
import statistics
from typing import Any

from olive_ext.artifacts import Artifact
from olive_ext.errors import MissingDependencyError, OliveExtError
from olive_ext.evaluate.context import MetricInput
from olive_ext.evaluate.mteb_tasks import MTEB_PACKAGE, mteb_version, resolve_tasks
from olive_ext.evaluate.registry import register_metric
from olive_ext.evaluate.spec import MtebSpec
from olive_ext.onnx.folder import model_file
from olive_ext.onnx.runtime import olive_ai

logger = logging.getLogger(__name__)
_DEFAULT_CLASS = {"hf": "hf", "genai": "ortgenai", "onnx": "ort"}


@register_metric(
    "mteb",
    "",
    higher_is_better=True,
    kinds={"hf", "genai", "onnx"},
    description="MTEB tasks (evaluate.mteb; Olive's MTEBEvaluator): mean main score, every task's under <task>-...",
)
def mteb_metric(inp: MetricInput) -> dict[str, float]:
    spec = inp.ectx.spec.mteb
    if spec is None:
        raise OliveExtError("metric 'mteb' has no tasks to score", hint="set evaluate.mteb.tasks")
    if mteb_version() is None:
        raise MissingDependencyError(MTEB_PACKAGE, "metric 'mteb' (Olive's MTEBEvaluator)", "'olive-ext[mteb]'")
    return score_with_mteb(inp.artifact, spec, resolve_tasks(spec.tasks))


def score_with_mteb(artifact: Artifact, spec: MtebSpec, tasks: list[Any]) -> dict[str, float]:
    """mteb's ``tasks`` (task objects) scored on ``artifact``: {"mteb": mean main score, "<task>-...": value}."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):  # the datasets were checked before work: never fetch
        os.environ[var] = "1"
    import mteb

    for name in ("mteb", "sentence_transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    encoder = _encoder(artifact, spec)
    run_kwargs: dict[str, Any] = {}
    if spec.eval_splits:
        run_kwargs["eval_splits"] = spec.eval_splits
    if spec.eval_subsets:
        run_kwargs["eval_subsets"] = spec.eval_subsets
    try:
        results = mteb.MTEB(tasks=tasks).run(encoder, output_folder=None, overwrite_results=True, verbosity=0,
                                             **run_kwargs)  # fmt: skip
    except Exception as e:  # a task's data or the encoder failing inside mteb: name it, keep the run going
        raise OliveExtError(
            f"mteb could not score {artifact.kind} model {artifact.path}: {type(e).__name__}: {str(e)[:300]}",
            hint="run the same tasks with `mteb run` alone to see the whole error",
        ) from None
    return flatten(results)


def flatten(results: list[Any]) -> dict[str, float]:
    """mteb's task results as Olive flattens them, plus the headline mean of the main scores."""
    out: dict[str, float] = {}
    for result in results:
        out[f"{result.task_name}-main_score"] = float(result.main_score)
        for split, scores in sorted(result.scores.items()):
            for score in scores:
                subset = score.get("hf_subset", "")
                out[f"{result.task_name}-{split}_{subset}" if subset else f"{result.task_name}-{split}"] = float(
                    score.get("main_score", 0.0)
                )
    mains = [float(r.main_score) for r in results]
    return ({"mteb": statistics.fmean(mains)} if mains else {}) | out


def _encoder(artifact: Artifact, spec: MtebSpec) -> Any:
    """The encoder wrapper Olive's MTEBEvaluator builds for this kind of model (CPU)."""
    model_class = spec.model_class or _DEFAULT_CLASS.get(artifact.kind)
    if model_class == "hf":
        if artifact.adapter_path:
            raise OliveExtError(
                "metric 'mteb' scores a PyTorch folder through sentence-transformers, which applies no separate "
                "adapter",
                hint="merge the adapter first (merge_adapter)",
            )
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(artifact.path), device="cpu", trust_remote_code=False)
    if model_class not in {"ort", "ortgenai"}:
        raise OliveExtError(f"metric 'mteb' cannot score a {artifact.kind} model",
                            hint="evaluate an hf, genai or onnx candidate")  # fmt: skip
    olive_ai("MTEB on ONNX models (olive-ai's MTEB encoder wrappers)")
    from olive.evaluator.mteb_ort import MTEBORTEvaluator, MTEBORTGenAIEvaluator

    graph = model_file(artifact)
    if model_class == "ortgenai":
        return MTEBORTGenAIEvaluator(pretrained=str(graph.parent), batch_size=spec.batch_size,
                                     max_length=spec.max_length, ep="cpu")  # fmt: skip
    # ep None: the wrapper appends the CPU provider itself (naming it too would list it twice)
    return MTEBORTEvaluator(model_path=str(graph), batch_size=spec.batch_size, max_length=spec.max_length, ep=None)
