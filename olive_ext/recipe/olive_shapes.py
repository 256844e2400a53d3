"""The shapes of Olive run-config sections, checked before translation.

Only the keys the translation reads are declared, with the types it needs (a mapping where it calls ``.get``,
a list where it iterates, a number where it computes); every other key passes through (``extra="allow"``) to
the translation, which names what it does not support. A section that does not fit is reported by key path
and left out of the translation, so a wrong type in an Olive file is a located problem, never a crash.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from olive_ext.errors import Problem
from olive_ext.options import Options, problems_from_validation


class TranslationOptions(Options):
    """How an Olive run config is read."""

    lenient: bool = Field(
        False,
        description="Olive keys olive-ext does not honour are warnings (listed in the run's report), not errors",
    )


def _single(value: Any) -> Any:
    if isinstance(value, dict | list | set | tuple):
        raise ValueError(
            f"must be a single value (text or a number), not {'a mapping' if isinstance(value, dict) else 'a list'}"
        )
    return value


# written into a name with str(): anything YAML reads as one value
Name = Annotated[Any, AfterValidator(_single)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())


class OliveModel(_Section):
    """`input_model` / `model`: the model type and where it is."""

    type: str | None = None
    model_path: str | None = None
    model_name_or_path: str | None = None
    load_kwargs: dict[str, Any] | None = None


class OliveLoadDataset(_Section):
    """`data_configs[i].load_dataset_config`: the files and builder."""

    data_name: str | None = None
    # the datasets library's forms: a file, files, or split -> file(s) (Olive's open_llama SparseGPT config)
    data_files: str | list[str] | dict[str, str | list[str]] | None = Field(None, min_length=1)


class OlivePreProcess(_Section):
    """`data_configs[i].pre_process_data_config`: the columns that make the text."""

    text_cols: str | list[str] | None = None


class OliveDataConfig(_Section):
    """One entry of `data_configs`."""

    name: Name | None = None
    load_dataset_config: OliveLoadDataset | None = None
    pre_process_data_config: OlivePreProcess | None = None


class OliveAccelerator(_Section):
    """One entry of a system's `accelerators`."""

    device: Name | None = None
    execution_providers: list[str] | None = None


class OliveSystem(_Section):
    """One entry of `systems`."""

    type: str | None = None
    accelerators: list[OliveAccelerator] | None = None


class OlivePass(_Section):
    """One entry of `passes` (its own parameters are checked by the pass it translates to)."""

    type: str
    name: Name | None = None


class OliveGoal(_Section):
    """A metric sub-type's `goal`."""

    type: Name | None = None
    value: float | None = None


class OliveSubType(_Section):
    """One entry of a metric's `sub_types`."""

    goal: OliveGoal | None = None


class OliveMetric(_Section):
    """One entry of an evaluator's `metrics`."""

    type: Name | None = None
    sub_types: list[OliveSubType] | None = None


class OliveEvaluator(_Section):
    """One entry of `evaluators`."""

    metrics: list[OliveMetric] | None = None


class OliveSearch(_Section):
    """`search_strategy` as a mapping."""

    sampler: Name | None = None
    search_algorithm: Name | None = None
    type: Name | None = None
    max_samples: int | None = Field(None, ge=0)
    num_trials: int | None = Field(None, ge=0)
    max_iter: int | None = Field(None, ge=0)
    seed: int | None = None
    search_algorithm_config: dict[str, Any] | None = None


@functools.cache
def _adapter(shape: Any) -> TypeAdapter[Any]:
    return TypeAdapter(shape)


def shaped(value: Any, shape: Any, path: str, problems: list[Problem]) -> Any | None:
    """``value`` checked against ``shape`` and returned as plain data; None, with its problems named, if it does
    not fit."""
    adapter = _adapter(shape)
    try:
        return adapter.dump_python(adapter.validate_python(value), exclude_unset=True)
    except ValidationError as e:
        problems += problems_from_validation(e, shape, (path,))
        return None
