"""The recipe schema: typed, validated, every field documented where it is declared.

A recipe says which model to start from, which data to use, which passes to chain
(a list value for a searchable parameter means "try each"), which targets to build
for, how to evaluate and select, how to search and where to write.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from olive_ext.artifacts import ArtifactKind
from olive_ext.targets.base import PROVIDERS, Device, normalize_provider


class StrictModel(BaseModel):
    """Recipe sections refuse unknown keys, so a typo is reported instead of ignored."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


# datasets' split syntax: "train", "train[:90%]", "train[4096:4224]", "train[-10%:]".
_SPLIT_RE = re.compile(r"^[A-Za-z_][\w.-]*(\[\s*-?\d*%?\s*:\s*-?\d*%?\s*\])?$")


def check_split(value: str) -> str:
    """Validate a datasets split expression such as ``train[:90%]``."""
    if not _SPLIT_RE.match(value.strip()):
        raise ValueError(
            "not a split expression; write a split name with an optional slice, "
            "like 'train', 'train[:90%]' or 'train[4096:4224]'"
        )
    return value.strip()


class InputModel(StrictModel):
    """The model a recipe starts from."""

    path: str = Field(description="hub id, local folder, or a .gguf/.onnx file")
    kind: ArtifactKind | None = Field(None, description="hf | onnx | genai | gguf; inferred from path when unset")
    gguf_file: str | None = Field(None, description="GGUF file name inside `path` when path is a folder")
    adapter_path: str | None = Field(None, description="a peft adapter folder to apply to the model")
    trust_remote_code: bool = Field(False, description="allow model code from the hub; off unless asked")
    revision: str | None = Field(None, description="hub revision (branch, tag or commit)")
    task: str = Field("text-generation", description="text-generation | text-classification | feature-extraction")


DataFormat = Literal["auto", "template", "alpaca", "messages", "text"]


class DatasetSpec(StrictModel):
    """One named dataset: a local file or a hub dataset, a split, and how to turn rows into text."""

    name: str = Field(description="'json', 'csv', 'parquet' (with data_files) or a hub dataset id")
    data_files: str | list[str] | None = Field(None, description="local file(s) for json/csv/parquet")
    split: str = Field("train", description="split expression, e.g. 'train[:90%]'")
    format: DataFormat = Field("auto", description="auto | template | alpaca | messages | text")
    text_template: str | None = Field(None, description="e.g. 'Q: {question}\\nA: {answer}'")
    text_field: str | None = Field(None, description="column holding ready text (format: text)")
    messages_field: str = Field("messages", description="column holding chat messages (format: messages)")
    response_field: str | None = Field(
        None, description="column with the expected answer; defaults to the template's last field"
    )
    max_samples: int | None = Field(None, ge=1, description="use at most this many rows")

    _check_split = field_validator("split")(lambda cls, v: check_split(v))

    @model_validator(mode="after")
    def _files_for_local_builders(self) -> DatasetSpec:
        if self.name in {"json", "csv", "parquet"} and not self.data_files:
            raise ValueError(f"name '{self.name}' reads local files: set data_files")
        if self.format == "template" and not self.text_template:
            raise ValueError("format 'template' needs text_template")
        if self.format == "text" and not self.text_field:
            raise ValueError("format 'text' needs text_field")
        return self


class PassSpec(BaseModel):
    """One step: its registered ``type`` plus that pass's parameters (checked against the pass)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="a registered pass name; `olive-ext validate --list-passes` shows them")

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TargetSpec(StrictModel):
    """A device class and the onnxruntime execution provider to build for and measure on."""

    device: Device = "cpu"
    provider: str | None = Field(None, description="execution provider; defaults to the device's first")

    @model_validator(mode="after")
    def _provider_fits_device(self) -> TargetSpec:
        allowed = PROVIDERS[self.device]
        if self.provider is None:
            self.provider = allowed[0]
            return self
        self.provider = normalize_provider(self.provider)
        if self.provider not in allowed:
            raise ValueError(
                f"provider {self.provider!r} does not run on device '{self.device}'; allowed: {', '.join(allowed)}"
            )
        return self


class Constraints(StrictModel):
    """Limits a candidate must meet to be chosen. Unset limits are not checked."""

    max_accuracy_drop: float | None = Field(
        1.0, ge=0, description="points of accuracy lost against the reference (fp32) candidate"
    )
    max_latency_ms: float | None = Field(None, gt=0, description="per-token decode latency, p50")
    max_size_mb: float | None = Field(None, gt=0, description="model size on disk")
    min_throughput: float | None = Field(None, gt=0, description="decode tokens per second")
    max_memory_mb: float | None = Field(None, gt=0, description="peak resident memory while running")


Objective = Literal["latency", "throughput", "size", "accuracy"]


class EvaluateSpec(StrictModel):
    """How candidates are measured and chosen."""

    metrics: list[str] = Field(default_factory=lambda: ["size"], description="metric names to compute")
    data: str | None = Field(None, description="name of a dataset in `data` used for accuracy")
    constraints: Constraints = Field(default_factory=Constraints)
    objective: Objective = "latency"
    warmup: int = Field(1, ge=0, description="untimed runs before timing")
    repeats: int = Field(3, ge=1, description="timed runs; min/median/max are reported")
    threads: int | None = Field(None, ge=1, description="intra-op threads; default: all cores")
    prompt_tokens: int = Field(64, ge=1, description="prompt length for time-to-first-token")
    new_tokens: int = Field(32, ge=1, description="tokens decoded for throughput and latency")
    max_new_tokens: int = Field(16, ge=1, description="generation limit for exact-match accuracy")
    max_samples: int | None = Field(None, ge=1, description="use at most this many eval rows")
    reference: Literal["input", "best"] = Field(
        "input",
        description="accuracy baseline for max_accuracy_drop: the input model in PyTorch (input) "
        "or the most accurate candidate (best)",
    )


class SearchSpec(StrictModel):
    """How list-valued pass parameters expand into candidates."""

    strategy: Literal["grid", "random", "tpe"] = "grid"
    seed: int = 0
    max_candidates: int | None = Field(None, ge=1, description="budget; default: all for grid, 8 otherwise")


class OutputSpec(StrictModel):
    """Where results go. An existing non-empty folder is kept unless overwrite is set."""

    path: str = "olive-ext-output"
    overwrite: bool = False


class Recipe(StrictModel):
    """A whole run: input, data, passes, targets, evaluation, search, output."""

    input_model: InputModel
    data: dict[str, DatasetSpec] = Field(default_factory=dict)
    passes: dict[str, PassSpec] = Field(default_factory=dict)
    pipelines: list[dict[str, PassSpec]] = Field(
        default_factory=list,
        description="alternative pass sections searched together (instead of `passes`): each is expanded like "
        "`passes` and the candidates of all are pooled",
    )
    targets: list[TargetSpec] = Field(default_factory=lambda: [TargetSpec()])
    evaluate: EvaluateSpec | None = None
    search: SearchSpec = Field(default_factory=SearchSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)
    cache_dir: str | None = Field(None, description="default: $OLIVE_EXT_CACHE or ~/.cache/olive-ext")

    @field_validator("passes", mode="before")
    @classmethod
    def _list_to_named(cls, value: Any) -> Any:
        return named_steps(value)

    @field_validator("pipelines", mode="before")
    @classmethod
    def _pipelines_named(cls, value: Any) -> Any:
        return [named_steps(v) for v in value] if isinstance(value, list) else value

    def alternatives(self) -> list[tuple[str, dict[str, PassSpec]]]:
        """(key path prefix, pass section) for each alternative: `pipelines[i]`, or the one `passes`."""
        if self.pipelines:
            return [(f"pipelines[{i}]", p) for i, p in enumerate(self.pipelines)]
        return [("passes", self.passes)]


def named_steps(value: Any) -> Any:
    """Accept a list of steps; each is named by its `name` or type (numbered when repeated)."""
    if not isinstance(value, list):
        return value
    named: dict[str, Any] = {}
    for i, step in enumerate(value):
        base = step.get("name") if isinstance(step, dict) else None
        base = base or (step.get("type") if isinstance(step, dict) else None) or f"step{i}"
        name, n = str(base), 2
        while name in named:
            name, n = f"{base}_{n}", n + 1
        named[name] = {k: v for k, v in step.items() if k != "name"} if isinstance(step, dict) else step
    return named
