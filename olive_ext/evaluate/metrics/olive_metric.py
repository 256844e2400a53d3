"""olive: the metrics of an Olive config that only olive-ai can compute, computed by olive-ai's own evaluator.

An Olive accuracy metric whose data config reads rows through the user's script (``load_dataset``, a dataloader,
``post_process_data``), and a ``custom`` metric (the user's ``evaluate_func`` / ``metric_func``), run as Olive runs
them: the candidate becomes an Olive model handler (an ONNX graph an ``ONNXModelHandler``, an HF folder a
``HfModelHandler``) and olive-ai's evaluator for that framework scores it with Olive's data container. Each
sub-metric lands under Olive's own key (``<metric>-<sub_type>``); the headline ``olive`` value is the first of them.
"""

from __future__ import annotations

from typing import Any

from olive_ext.artifacts import Artifact
from olive_ext.errors import OliveExtError
from olive_ext.evaluate.context import MetricInput
from olive_ext.evaluate.registry import register_metric
from olive_ext.models.folder import model_task
from olive_ext.onnx.folder import model_file
from olive_ext.onnx.runtime import olive_ai

_DEVICES = {"cpu": "cpu", "gpu": "gpu", "npu": "npu"}


@register_metric(
    "olive",
    "",
    higher_is_better=True,
    kinds={"hf", "onnx", "genai"},
    description="the Olive config's metrics that need Olive's data containers or the user's own metric code, "
    "computed by olive-ai's evaluator (evaluate.olive_metrics)",
)
def olive_metric(inp: MetricInput) -> dict[str, float]:
    configs = inp.ectx.spec.olive_metrics
    if not configs:
        raise OliveExtError("metric 'olive' has no Olive metrics to compute", hint="set evaluate.olive_metrics")
    return evaluate_with_olive(inp.artifact, configs, inp.ectx.target.device, inp.ectx.target.provider)


def evaluate_with_olive(
    artifact: Artifact, configs: list[dict[str, Any]], device: str = "cpu", provider: str | None = None
) -> dict[str, float]:
    """Olive's metric configs scored by olive-ai's evaluator on ``artifact``: {"<metric>-<sub_type>": value}."""
    olive_ai("Olive metrics (evaluate.olive_metrics)")
    from olive.evaluator.metric import Metric
    from olive.evaluator.olive_evaluator import OliveEvaluatorConfig

    metrics = []
    for i, config in enumerate(configs):
        try:
            metrics.append(Metric.model_validate(config))
        except ValueError as e:  # pydantic's ValidationError is a ValueError
            raise OliveExtError(f"evaluate.olive_metrics[{i}] is not a valid Olive metric: {e}") from None
    handler = _handler(artifact)
    evaluator = OliveEvaluatorConfig().create_evaluator(handler)
    providers = [provider or "CPUExecutionProvider"]
    try:
        result = evaluator.evaluate(handler, metrics, _DEVICES.get(device, "cpu"), providers)
    except Exception as e:  # the user's script, data or metric code failing inside olive-ai
        names = ", ".join(m.name for m in metrics)
        raise OliveExtError(
            f"olive-ai's evaluator could not compute {names} on the {artifact.kind} model at {artifact.path}: "
            f"{type(e).__name__}: {str(e)[:300]}",
            hint="check the metric's data config and user script (run them with olive-ai alone to see the error)",
        ) from None
    values = {str(key): float(sub.value) for key, sub in result.items()}
    return ({"olive": next(iter(values.values()))} if values else {}) | values


def _handler(artifact: Artifact) -> Any:
    """The candidate as an Olive model handler."""
    from olive.model import HfModelHandler, ONNXModelHandler

    if artifact.kind == "hf":  # with its task: Olive's default, text-generation, loaded a BERT classifier as an LM
        return HfModelHandler(model_path=artifact.path, adapter_path=artifact.adapter_path, task=model_task(artifact))
    graph = model_file(artifact)
    return ONNXModelHandler(model_path=str(graph.parent), onnx_file_name=graph.name)
