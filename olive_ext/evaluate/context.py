"""What metrics get: the evaluate settings and target, the prepared eval data, the worker's raw output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from olive_ext.targets.base import CPU, Target

if TYPE_CHECKING:
    from olive_ext.artifacts import Artifact
    from olive_ext.data.spec import DatasetSpec
    from olive_ext.evaluate.spec import EvaluateSpec


@dataclass(frozen=True)
class EvalContext:
    """Settings for one evaluation. ``dataset`` is the recipe's eval dataset, if any."""

    spec: EvaluateSpec
    target: Target = CPU
    dataset: DatasetSpec | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def threads(self) -> int:
        import os

        return self.spec.threads or os.cpu_count() or 1


@dataclass
class EvalData:
    """Eval examples tokenized by the model's own tokenizer (prepared once, in the parent)."""

    prompts: list[list[int]] = field(default_factory=list)
    references: list[str | None] = field(default_factory=list)
    answer_ends: list[str] = field(default_factory=list)  # a template's text after each answer
    responses: list[list[int]] = field(default_factory=list)
    answers: list[list[int]] = field(default_factory=list)  # the references' token ids, for teacher forcing
    labels: list[int] = field(default_factory=list)
    features: list[dict[str, list[int]]] = field(default_factory=list)
    timing_prompt: list[int] = field(default_factory=list)
    tokenizer: Any = None
    left_out: str | None = None  # the eval rows not scored, and why: recorded with the figures (see evaluator)


@dataclass
class MetricInput:
    """Everything a metric function reads."""

    artifact: Artifact
    ectx: EvalContext
    raw: dict[str, Any]
    data: EvalData | None
    peak_rss_mb: float | None = None
