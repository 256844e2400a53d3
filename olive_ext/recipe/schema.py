"""The recipe schema: typed, validated, every field documented where it is declared.

A recipe says which model to start from, which data to use, which passes to chain
(a list value for a searchable parameter means "try each"), which targets to build
for, how to evaluate and select, how to search and where to write.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from olive_ext.data.spec import DataFormat, DatasetSpec, check_split
from olive_ext.evaluate.registry import ACCURACY_METRICS
from olive_ext.evaluate.spec import Constraints, EvaluateSpec, Objective
from olive_ext.models.spec import InputModel
from olive_ext.options import StrictModel, check_path
from olive_ext.targets.spec import TargetSpec
from olive_ext.train.options import NOT_IN_CACHE_KEY

__all__ = [
    "Constraints",
    "DataFormat",
    "DatasetSpec",
    "EvaluateSpec",
    "ExecutorSpec",
    "InputModel",
    "Objective",
    "OutputSpec",
    "PassSpec",
    "Recipe",
    "SearchSpec",
    "StrictModel",
    "TargetSpec",
    "check_split",
    "named_steps",
    "resolved_recipe",
]


class PassSpec(BaseModel):
    """One step: its registered ``type`` plus that pass's parameters (checked against the pass)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="a registered pass name; `olive-ext validate --list-passes` shows them")

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SearchSpec(StrictModel):
    """How list-valued pass parameters expand into candidates."""

    strategy: Literal["grid", "random", "tpe"] = Field("grid", description="search strategy")
    seed: int = Field(0, description="seed of random and TPE search")
    max_candidates: int | None = Field(None, ge=1, description="budget; default: all for grid, 8 otherwise")


class ExecutorSpec(StrictModel):
    """Where candidates are built and measured: here, one after another (``local``), or as Ray tasks on a cluster."""

    type: Literal["local", "ray"] = Field(
        "local",
        description="local: one candidate after another in this "
        "process tree; ray: each candidate a Ray task on a Ray cluster",
    )
    address: str | None = Field(
        None,
        description="Ray cluster address (host:port, `auto`, or ray://host:port); "
        "default: $RAY_ADDRESS, else a Ray instance started for this run on this machine",
    )
    num_cpus: float = Field(1.0, gt=0, description="CPUs a candidate's task asks Ray for")
    num_gpus: float = Field(0.0, ge=0, description="GPUs a candidate's task asks Ray for")
    memory_gb: float | None = Field(None, gt=0, description="memory a candidate's task asks Ray for, in GB")
    resources: dict[str, float] = Field(default_factory=dict, description="custom Ray resources per task")
    max_parallel: int | None = Field(
        None, ge=1, description="candidates in flight at once (default: as many as the cluster's CPUs allow)"
    )
    max_retries: int = Field(2, ge=0, description="Ray reruns a task whose worker process or node died this often")
    task_timeout_s: float = Field(
        3600.0, gt=0, description="a candidate with no result after this long is cancelled and reported as failed"
    )
    node_wait_s: float = Field(
        60.0,
        gt=0,
        description="a candidate that no live node can run (its nodes "
        "disappeared) for this long is cancelled and reported as failed",
    )
    transfer: Literal["auto", "shared", "ray"] = Field(
        "auto",
        description="how models reach the workers and come back: shared (the nodes see the same cache "
        "folder), ray (through Ray's object store), auto (shared where a worker sees the cache, else ray)",
    )

    @model_validator(mode="after")
    def _address_for_ray(self) -> ExecutorSpec:
        if self.type == "local" and self.address:  # a cluster address was dropped without a word, the run local
            raise ValueError(f"address {self.address!r} is a Ray cluster's, and type is local: set type: ray "
                             "(--executor ray) to run on it, or leave the address out")  # fmt: skip
        return self


class OutputSpec(StrictModel):
    """Where results go. An existing non-empty folder is kept unless overwrite is set."""

    path: str = Field("olive-ext-output", min_length=1)
    overwrite: bool = False

    _path = field_validator("path")(lambda cls, v: check_path(v))


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
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)
    cache_dir: str | None = Field(None, description="default: $OLIVE_EXT_CACHE or ~/.cache/olive-ext")

    _cache_dir = field_validator("cache_dir")(lambda cls, v: v if v is None else check_path(v))
    _translation_warnings: list[str] = PrivateAttr(default_factory=list)

    @property
    def translation_warnings(self) -> list[str]:
        """What reading the recipe warned about (an Olive key not honoured under --lenient, a translation note),
        listed again in the run's report."""
        return self._translation_warnings

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


def resolved_recipe(recipe: Recipe) -> dict[str, Any]:
    """The recipe with defaults filled in, as plain data; the output folder absolute, as the inputs are (a rerun
    from inside a fine-tune's output folder wrote a copy nested in it: ft/ft)."""
    data = recipe.model_dump(mode="json", exclude_none=True)
    if data.get("output", {}).get("path"):
        data["output"]["path"] = str(Path(data["output"]["path"]).expanduser().absolute())

    def section(passes: dict[str, Any]) -> dict[str, Any]:
        # a checkpoint to resume from says how this run got its result, not what the result is: the run removes
        # it once done, and a recipe naming it did not rerun ("... is not a checkpoint folder")
        return {name: {"type": spec.type, **{k: v for k, v in spec.params().items() if k not in NOT_IN_CACHE_KEY}}
                for name, spec in passes.items()}  # fmt: skip

    data["passes"] = section(recipe.passes)
    data["pipelines"] = [section(p) for p in recipe.pipelines]
    if not data["pipelines"]:
        del data["pipelines"]
    if recipe.evaluate is not None and not unchecked_default_drop_kept(recipe.evaluate):
        data["evaluate"]["constraints"].pop("max_accuracy_drop", None)
    return data


def unchecked_default_drop_kept(spec: EvaluateSpec) -> bool:
    """Whether the written recipe keeps ``max_accuracy_drop``: only when accuracy is measured or the user set it.

    The default limit (1.0 point) is not checked without an accuracy metric, and the recipe loader refuses a recipe
    that spells it out then: writing the default would make the written recipe fail to re-run.
    """
    measured = bool(set(spec.metrics) & {*ACCURACY_METRICS})
    return measured or "max_accuracy_drop" in spec.constraints.model_fields_set
