"""What a metric gets besides the model: the target, the evaluate settings and the data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from olive_ext.targets.base import CPU, Target

if TYPE_CHECKING:
    from olive_ext.recipe.schema import DatasetSpec, EvaluateSpec


@dataclass(frozen=True)
class EvalContext:
    """Settings for one evaluation. ``dataset`` is the recipe's eval dataset, if any."""

    spec: EvaluateSpec
    target: Target = CPU
    dataset: DatasetSpec | None = None
    reference: Any = None  # what parity-style metrics compare against (set by the caller)
    extras: dict[str, Any] = field(default_factory=dict)
