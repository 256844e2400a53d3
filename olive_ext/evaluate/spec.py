"""How candidates are measured and chosen: metrics, constraints, objective, timing protocol."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from olive_ext.options import StrictModel

OliveGoalType = Literal["threshold", "min-improvement", "max-degradation", "percent-min-improvement",
                        "percent-max-degradation"]


class OliveGoal(StrictModel):
    """An Olive config's goal on a metric olive-ai's evaluator computes (``evaluate.olive_metrics``), checked as Olive
    checks it: a threshold on the candidate's value, the others against the input model's value."""

    metric: str = Field(description="Olive's key of the value, <metric name>-<sub type>")
    type: OliveGoalType
    value: float
    higher_is_better: bool = True

    def met(self, value: float, reference: float | None) -> bool | None:
        """Whether ``value`` meets the goal (None: a relative goal without the input model's value)."""
        sign = 1.0 if self.higher_is_better else -1.0
        if self.type == "threshold":
            return sign * (value - self.value) >= -1e-12
        if reference is None:
            return None
        gain = sign * (value - reference)  # > 0: better than the input model
        if self.type.startswith("percent-"):
            gain = gain / abs(reference) * 100 if reference else 0.0
        return gain >= self.value - 1e-12 if self.type.endswith("min-improvement") else -gain <= self.value + 1e-12

    @property
    def name(self) -> str:
        """How candidates.json and the report name it."""
        return f"{self.metric} {self.type} {self.value:g}"


class Constraints(StrictModel):
    """Limits a candidate must meet to be chosen. Unset limits are not checked."""

    max_accuracy_drop: float | None = Field(
        1.0, ge=0, description="points of accuracy lost against the reference (fp32) candidate"
    )
    max_latency_ms: float | None = Field(None, gt=0, description="per-token decode latency, p50")
    min_latency_improvement_pct: float | None = Field(
        None, ge=0, description="latency at least this many percent below the source model's in PyTorch (Olive's "
        "percent-min-improvement goal)",
    )
    max_size_mb: float | None = Field(None, gt=0, description="model size on disk")
    min_throughput: float | None = Field(None, gt=0, description="decode tokens per second")
    max_memory_mb: float | None = Field(None, gt=0, description="peak resident memory while running")
    olive_goals: list[OliveGoal] = Field(default_factory=list, description="an Olive config's goals on the metrics "
                                         "olive-ai's evaluator computes")  # fmt: skip

    def named_limits(self) -> list[tuple[str, float | OliveGoal]]:
        """Each limit set, by the name a candidate's ``constraints`` records it under: the scalar limits with their
        values, then the Olive goals (named :attr:`OliveGoal.name`)."""
        scalars = [(n, v) for n, v in self.model_dump(exclude={"olive_goals"}).items() if v is not None]
        return [*scalars, *((goal.name, goal) for goal in self.olive_goals)]


Objective = Literal["latency", "throughput", "size", "accuracy", "olive"]  # olive: olive-ai's first metric value


class LmEvalSpec(StrictModel):
    """lm-eval tasks scored by metric 'lm_eval' (Olive's LMEvaluator): lm-eval's own task code and scoring."""

    tasks: list[str | dict[str, Any]] = Field(
        min_length=1, description="lm-eval task, group or tag names, or inline task configs (a dict, as lm-eval takes)"
    )
    limit: int | float | None = Field(None, gt=0, description="documents per task (a fraction when below 1)")
    batch_size: int = Field(1, ge=1, description="requests per model call")
    max_length: int | None = Field(None, ge=1, description="longest context lm-eval builds, in tokens")
    bootstrap_iters: int = Field(100000, ge=0, description="bootstrap resamples for the standard errors (0: none)")
    model_class: Literal["hf", "ort", "ortgenai"] | None = Field(
        None, description="lm-eval model class: hf for PyTorch, ort for an ONNX graph, ortgenai for a genai folder "
        "(default: from the candidate's kind)",
    )
    num_fewshot: int | None = Field(None, ge=0, description="few-shot examples per prompt (default: the task's)")
    apply_chat_template: bool = Field(False, description="wrap prompts in the model's chat template")
    fewshot_as_multiturn: bool = Field(True, description="few-shot examples as chat turns (with apply_chat_template)")
    model_args: dict[str, Any] = Field(default_factory=dict, description="more arguments for the lm-eval model class")


class MtebSpec(StrictModel):
    """MTEB tasks scored by metric 'mteb' (Olive's MTEBEvaluator): the mteb package's own tasks and scoring."""

    tasks: list[str] = Field(min_length=1, description="MTEB task names (STS17, NFCorpus, ...), as mteb registers them")
    batch_size: int = Field(32, ge=1, description="texts per encoder call")
    max_length: int | None = Field(None, ge=1, description="longest text in tokens (default: the tokenizer's)")
    model_class: Literal["hf", "ort", "ortgenai"] | None = Field(
        None, description="encoder wrapper: hf (sentence-transformers), ort for an ONNX graph, ortgenai for a genai "
        "folder built with include_hidden_states (default: from the candidate's kind)",
    )
    eval_splits: list[str] | None = Field(None, description="dataset splits to score (default: each task's)")
    eval_subsets: list[str] | None = Field(None, description="task subsets (languages) to score (default: all)")


class EvaluateSpec(StrictModel):
    """How candidates are measured and chosen."""

    metrics: list[str] = Field(default_factory=lambda: ["size"], description="metric names to compute")
    data: str | None = Field(None, description="name of a dataset in `data` used for accuracy")
    constraints: Constraints = Field(default_factory=Constraints)
    objective: Objective = Field("latency", description="what to optimize among candidates that meet the constraints")
    warmup: int = Field(
        1,
        ge=0,
        description="untimed runs before timing (more, up to 3, while a run still differs from the last by >10%)",
    )
    repeats: int = Field(3, ge=1, le=10_000, description="timed runs at least; min/median/max are reported")
    max_repeats: int | None = Field(
        8, ge=1, description="timed runs at most: more than repeats while the median is not yet within timing_tolerance"
    )
    timing_tolerance: float | None = Field(
        0.05,
        gt=0,
        description="stop timing once the ~95% interval of the median step time is within this fraction of it "
        "(None: exactly `repeats` runs)",
    )
    threads: int | None = Field(None, ge=1, le=4096, description="intra-op threads; default: all cores")
    prompt_tokens: int = Field(64, ge=1, description="prompt length for time-to-first-token")
    new_tokens: int = Field(32, ge=1, description="tokens decoded for throughput and latency")
    max_new_tokens: int | None = Field(
        None, ge=1, description="generation limit for exact-match accuracy; unset: the longest expected answer and "
        "its end token, at least 16",
    )
    teacher_forcing: bool = Field(
        True,
        description="exact match by one forward pass over prompt + expected answer per row (the greedy "
        "answer, unless the answer is not the argmax; those rows are decoded); false: decode every row",
    )
    racing: Literal["off", "exact", "wilson"] = Field(
        "exact",
        description="score candidates on 15, 30, 60, then all rows and stop one whose accuracy cannot "
        "meet max_accuracy_drop: exact (every unseen row counted right; never changes the choice), "
        "wilson (also the Wilson upper bound, z=2: stops sooner), off",
    )
    max_samples: int | None = Field(None, ge=1, description="use at most this many eval rows")
    olive_metrics: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Olive metric configs (data_config inlined) that metric 'olive' computes with olive-ai's own "
        "evaluator: accuracy read through the user's data script, custom metrics",
    )
    lm_eval: LmEvalSpec | None = Field(None, description="lm-eval tasks that metric 'lm_eval' scores")
    mteb: MtebSpec | None = Field(None, description="MTEB tasks that metric 'mteb' scores")
    reference: Literal["input", "best"] = Field(
        "input",
        description="accuracy baseline for max_accuracy_drop: the input model in PyTorch (input) "
        "or the most accurate candidate (best)",
    )
