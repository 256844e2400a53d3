"""What a run produces: one record per candidate, the chosen one, and where the output was written."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from olive_ext.artifacts import Artifact
from olive_ext.engine.runner import StepRecord
from olive_ext.engine.search import Candidate
from olive_ext.evaluate.registry import QUALITY_METRICS


@dataclass
class CandidateResult:
    """A candidate with what happened to it: artifact, metrics, error, selection flags."""

    candidate: Candidate
    artifact: Artifact | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    records: list[StepRecord] = field(default_factory=list)
    constraints: dict[str, bool] = field(default_factory=dict)
    on_front: bool = False
    chosen: bool = False
    eval_cache_hit: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    exception: BaseException | None = field(default=None, repr=False)
    # where it was built and measured: hostname, CPU model (and, on Ray, the node id and retries)
    node: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the candidate was built (and measured, if asked) without error."""
        return self.error is None and self.artifact is not None

    @property
    def feasible(self) -> bool:
        """True when it is ok and meets every checked constraint."""
        return self.ok and all(self.constraints.values())

    def to_json(self) -> dict[str, Any]:
        """The candidates.json entry: pipeline, target, metrics, constraints, flags, error."""
        c = self.candidate
        return {
            "id": c.id,
            "label": c.describe(),
            "target": {"device": c.target.device, "provider": c.target.provider},
            "pipeline": [{"name": s.name, "type": s.type, "params": s.params} for s in c.steps],
            "choices": c.choices,
            "metrics": self.metrics,
            "constraints": self.constraints,
            "feasible": self.feasible,
            "on_front": self.on_front,
            "chosen": self.chosen,
            "error": self.error,
            "notes": self.notes,
            "artifact": self.artifact.to_json() if self.artifact else None,
            "cache_hits": sum(r.cache_hit for r in self.records),
            "steps": len(self.records),
            "eval_cache_hit": self.eval_cache_hit,
            "seconds": round(self.seconds, 3),
            "node": self.node,
        }


class OutputFolder:
    """A result is path-like: its output folder (``output_dir``, or a bundle's ``path``), so it can be given
    where a path is taken: ``olive_ext.auto_opt(ft, "out/onnx")`` after ``ft = olive_ext.finetune(...)``."""

    def __fspath__(self) -> str:
        folder = getattr(self, "output_dir", None) or getattr(self, "path", None)
        if folder is None:
            raise TypeError(f"this {type(self).__name__} wrote no output folder, so it names no path")
        return os.fspath(folder)


@dataclass
class RunResult(OutputFolder):
    """Every candidate, the chosen one, and where things were written.

    ``output_dir`` is the output folder (None when nothing was written); ``model_path`` is the
    chosen model as copied there (``<output>/model``), not its entry in the cache.
    """

    results: list[CandidateResult]
    chosen: CandidateResult | None
    output_dir: Path | None
    seconds: float
    notes: list[str] = field(default_factory=list)
    reference: dict[str, Any] | None = None
    source: Artifact | None = None  # the recipe's input model, resolved and fingerprinted
    # constraints the recipe set that could not be checked (max_accuracy_drop when accuracy was not measured)
    unchecked_constraints: list[str] = field(default_factory=list)
    # metric "olive" holds task quality (an Olive config's accuracy or custom metric, computed by olive-ai)
    olive_quality: bool = False

    @property
    def accuracy_measured(self) -> bool:
        """False when no task quality (accuracy, exact match, perplexity, an Olive config's accuracy) was measured:
        the choice was then made on speed and size alone."""
        quality = (*QUALITY_METRICS, "olive") if self.olive_quality else QUALITY_METRICS
        return any(any(k in c.metrics for k in quality) for c in self.results)

    @property
    def model_path(self) -> Path | None:
        """The chosen model in the output folder, when one was written."""
        if self.output_dir is None or self.chosen is None or self.chosen.artifact is None:
            return None
        return self.output_dir / "model"

    @property
    def metrics(self) -> dict[str, float]:
        """The chosen candidate's metrics (empty when none was chosen)."""
        return dict(self.chosen.metrics) if self.chosen else {}

    @property
    def cache_hits(self) -> int:
        """Steps reused from the cache, over all candidates."""
        return sum(r.cache_hit for c in self.results for r in c.records)

    @property
    def steps_run(self) -> int:
        """Steps over all candidates, run or reused."""
        return sum(len(c.records) for c in self.results)
