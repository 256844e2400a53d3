"""lm_eval: lm-eval's tasks scored on a candidate, as Olive's ``LMEvaluator`` scores them.

The tasks, their prompts and their scoring are lm-eval's own (``lm_eval.simple_evaluate``); olive-ext only chooses
the lm-eval model class for the candidate: lm-eval's ``hf`` class for a PyTorch folder (with its peft adapter),
olive-ai's ``ortgenai`` class for an onnxruntime-genai folder and its ``ort`` class for an ONNX graph (the classes
Olive's LMEvaluator uses). Runs offline: a task whose dataset is not on this machine was refused before any work
(evaluate.lm_eval_tasks). Every task metric lands under Olive's key ``<task>-<metric>``; the headline ``lm_eval``
value is the first of them (tasks and metrics in sorted order, as Olive flattens them).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from olive_ext.artifacts import Artifact
from olive_ext.errors import MissingDependencyError, OliveExtError
from olive_ext.evaluate.context import MetricInput
from olive_ext.evaluate.lm_eval_tasks import LM_EVAL_PACKAGE, lm_eval_version
from olive_ext.evaluate.registry import register_metric
from olive_ext.evaluate.spec import LmEvalSpec
from olive_ext.onnx.folder import model_file
from olive_ext.onnx.runtime import olive_ai

logger = logging.getLogger(__name__)
_DEFAULT_CLASS = {"hf": "hf", "genai": "ortgenai", "onnx": "ort"}
_NOT_SCORES = {"alias", "name", "sample_len"}  # lm-eval's result keys that describe a task, not score it


@register_metric(
    "lm_eval",
    "",
    higher_is_better=True,
    kinds={"hf", "genai", "onnx"},
    description="lm-eval tasks (evaluate.lm_eval; Olive's LMEvaluator): every task metric under <task>-<metric>",
)
def lm_eval_metric(inp: MetricInput) -> dict[str, float]:
    spec = inp.ectx.spec.lm_eval
    if spec is None:
        raise OliveExtError("metric 'lm_eval' has no tasks to score", hint="set evaluate.lm_eval.tasks")
    return evaluate_with_lm_eval(inp.artifact, spec)


def evaluate_with_lm_eval(artifact: Artifact, spec: LmEvalSpec) -> dict[str, float]:
    """``spec``'s tasks scored on ``artifact`` by lm-eval: {"lm_eval": headline, "<task>-<metric>": value, ...}."""
    if lm_eval_version() is None:
        raise MissingDependencyError(LM_EVAL_PACKAGE, "metric 'lm_eval' (Olive's LMEvaluator)", "'olive-ext[lmeval]'")
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):  # the datasets were checked before work: never fetch
        os.environ[var] = "1"
    model_class = spec.model_class or _DEFAULT_CLASS.get(artifact.kind)
    if model_class is None:
        raise OliveExtError(f"metric 'lm_eval' cannot score a {artifact.kind} model",
                            hint="evaluate an hf, genai or onnx candidate")  # fmt: skip
    from lm_eval import simple_evaluate
    from lm_eval.api.registry import get_model
    for name in ("lm-eval", "lm_eval"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if model_class != "hf":
        olive_ai("lm-eval on ONNX models (olive-ai's lm-eval model classes)")
        import olive.evaluator.lmeval_ort  # noqa: F401  registers 'ort' and 'ortgenai' with lm-eval

    args = _init_args(artifact, model_class) | spec.model_args
    batch_size = spec.batch_size
    if model_class == "ortgenai" and batch_size > 1:
        # olive-ai's genai class reads logits token by token and refuses batches of multi-token continuations;
        # the batch size changes no score, so the candidate is scored one request at a time
        logger.info("lm-eval on a genai folder: batch_size %d -> 1 (olive-ai's ortgenai class)", batch_size)
        batch_size = 1
    lm = get_model(model_class)(**args, batch_size=batch_size, max_length=spec.max_length)
    try:
        results = simple_evaluate(
            model=lm,
            tasks=list(spec.tasks),
            task_manager=_task_manager(spec.tasks),
            log_samples=False,
            batch_size=batch_size,
            device="cpu",
            limit=spec.limit,
            bootstrap_iters=spec.bootstrap_iters,
            num_fewshot=spec.num_fewshot,
            apply_chat_template=spec.apply_chat_template,
            fewshot_as_multiturn=spec.fewshot_as_multiturn,
        )
    except Exception as e:  # a task's data or code failing inside lm-eval: name it, keep the run going
        raise OliveExtError(
            f"lm-eval could not score {artifact.kind} model {artifact.path}: {type(e).__name__}: {str(e)[:300]}",
            hint="run the same tasks with `lm-eval` alone to see the whole error",
        ) from None
    values = flatten(results or {})
    return ({"lm_eval": next(iter(values.values()))} if values else {}) | values


def flatten(results: dict[str, Any]) -> dict[str, float]:
    """lm-eval's results as Olive flattens them: {"<task>-<metric>": value}, stderr and aliases left out."""
    out: dict[str, float] = {}
    for task in sorted(results.get("results") or {}):
        for key, value in sorted(results["results"][task].items()):
            metric = key.split(",", 1)[0]
            if metric in _NOT_SCORES or metric.endswith("_stderr") or not isinstance(value, (int, float)):
                continue
            out[f"{task}-{metric}"] = float(value)
    return out


def _task_manager(tasks: list[Any]) -> Any:
    """lm-eval's TaskManager; without its index of every shipped task (20 s) when only inline configs are named."""
    from lm_eval.tasks import TaskManager

    inline = all(isinstance(t, dict) and "include" not in t for t in tasks)
    return TaskManager(include_defaults=False) if inline else TaskManager()


def _init_args(artifact: Artifact, model_class: str) -> dict[str, Any]:
    """lm-eval model-class arguments for the candidate (CPU)."""
    if model_class == "hf":
        args: dict[str, Any] = {"pretrained": str(artifact.path), "device": "cpu", "dtype": "float32",
                                "trust_remote_code": False}  # fmt: skip
        if artifact.adapter_path:
            args["peft"] = str(artifact.adapter_path)
        return args
    graph = model_file(artifact)
    if model_class == "ortgenai":
        return {"pretrained": str(graph.parent), "ep": "cpu", "ep_options": None, "device": "cpu"}
    return {"model_path": str(graph), "ep": "CPUExecutionProvider", "ep_options": None}
