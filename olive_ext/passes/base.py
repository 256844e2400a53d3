"""The pass contract and the one registry of passes.

A pass is a small class: a frozen pydantic config, the artifact kinds it accepts and
produces, the devices it supports, and ``run(artifact, ctx) -> Artifact``. Passes are
registered with ``@register_pass`` (checked at import time); third-party passes come
in through the ``olive_ext.passes`` entry-point group.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Callable
from importlib import metadata
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import ValidationError

from olive_ext.artifacts import ARTIFACT_KINDS, Artifact, ArtifactKind
from olive_ext.data.load import spec_identity
from olive_ext.errors import Problem, UserInputError
from olive_ext.options import Options, dataset_ref, problems_from_validation, searchable
from olive_ext.targets.base import DEVICES, Target
from olive_ext.version import installed_version

if TYPE_CHECKING:
    from olive_ext.passes.context import RunContext

# Pass configs are option models (frozen, unknown keys refused, searchable fields marked).
PassConfig = Options

__all__ = [
    "ENTRY_POINT_GROUP",
    "Pass",
    "PassConfig",
    "check_pass_params",
    "dataset_ref",
    "get_pass",
    "register_pass",
    "registered_passes",
    "searchable",
    "split_search",
]

C = TypeVar("C", bound=PassConfig)


class Pass(Generic[C]):
    """Base class of passes. Subclasses set the class attributes and implement ``run``."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type[PassConfig]] = PassConfig
    accepts: ClassVar[frozenset[ArtifactKind]] = frozenset()
    produces: ClassVar[ArtifactKind] = "hf"
    # True when the output has the input's kind (an ONNX rewrite of an onnx or a genai folder);
    # ``produces`` then names the usual kind.
    keeps_kind: ClassVar[bool] = False
    devices: ClassVar[frozenset[str]] = frozenset(DEVICES)
    # Distributions whose versions go into the cache key (the output depends on them).
    libraries: ClassVar[tuple[str, ...]] = ()
    # Bump when the pass's output changes for the same config and input.
    version: ClassVar[int] = 1
    # Olive pass type names this pass implements, and Olive parameter names -> ours.
    olive_types: ClassVar[tuple[str, ...]] = ()
    olive_params: ClassVar[dict[str, str]] = {}
    # Params implied by the Olive pass type, when one pass covers several (e.g. algorithm per quantizer).
    olive_type_params: ClassVar[dict[str, dict[str, Any]]] = {}
    # True for a check: its output is its input, figures added to the meta (the engine may run it after
    # the candidate's evaluation, or not at all for a candidate racing stopped).
    check_only: ClassVar[bool] = False
    # True for a pass that takes a bitsandbytes-quantized HF model as it is (QLoRA trains on the packed base);
    # before any other, the engine dequantizes such a model (``dequantize_hf``).
    takes_packed_weights: ClassVar[bool] = False

    def __init__(self, config: C) -> None:
        self.config = config

    def run(self, artifact: Artifact, ctx: RunContext) -> Artifact:
        """Produce a new artifact under ``ctx.output_dir`` from ``artifact``."""
        raise NotImplementedError

    def cache_extra(self, ctx: RunContext) -> Any:
        """What the output depends on besides config and input (e.g. dataset contents), for the cache key.

        The default: the contents of the datasets the config's dataset fields name (a field left unset names the
        only dataset defined, if any), as the config holds only their names (a static quantization calibrated on
        another file reused the first file's model). None when the pass reads no dataset: config + input +
        library versions make the key.
        """
        extra = {}
        for field in self.config.dataset_fields():
            name = getattr(self.config, field)
            if name is None and len(ctx.datasets) != 1:
                continue  # no dataset read (parity_check's built-in prompts), or a run-time error to come
            with contextlib.suppress(UserInputError):  # an unknown name fails the step itself, with its message
                extra[field] = spec_identity(ctx.dataset(name, f"pass '{self.name}'"), ctx.cache.memo)
        return extra or None

    @classmethod
    def target_defaults(cls, target: Target) -> dict[str, Any]:
        """Config values derived from the target, used where the recipe gives none."""
        return {}

    @classmethod
    def params_for(cls, target: Target | None, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` as a run on ``target`` sees them: the target's defaults under what the recipe sets.

        The one place both validation (recipe/load.py) and the runner (engine/steps.Step.config) merge them.
        """
        return {**(cls.target_defaults(target) if target is not None else {}), **params}

    @classmethod
    def single_threaded(cls, params: dict[str, Any]) -> bool:
        """Whether a step with these params computes on one thread for long (Olive's GPTQ): the run loop may build
        it in the background on a core the rest of the run leaves free (engine/background.py)."""
        return False

    @classmethod
    def single_threaded_cost(cls, params: dict[str, Any]) -> float:
        """For a :meth:`single_threaded` step: its one-thread seconds per 100M parameters as measured on this
        project's CPUs. Only the order matters: the background child builds the costliest first (the run reaches the
        cheaper ones meanwhile and builds them itself if the child has not started them)."""
        return 1.0

    @classmethod
    def check_input(cls, artifact: Artifact) -> str | None:
        """Return why this pass cannot take ``artifact`` (beyond its kind), or None."""
        return None

    @classmethod
    def from_olive(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Translate an Olive pass config's params to this pass's names (renames by default)."""
        return {cls.olive_params.get(k, k): v for k, v in params.items()}

    @classmethod
    def check_params(cls, params: dict[str, Any], path: str) -> list[Problem]:
        """Problems beyond the config's own validation (run once that passes); each names ``path.<key>``."""
        return []

    @classmethod
    def accepts_for(cls, params: dict[str, Any]) -> frozenset[str]:
        """The kinds a step with these params takes (``accepts`` unless the kind depends on a param)."""
        return frozenset(cls.accepts)

    @classmethod
    def output_kind_for(cls, params: dict[str, Any], input_kind: str) -> str:
        """The kind a step with these params produces from ``input_kind`` (``output_kind`` by default)."""
        return cls.output_kind(input_kind)

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        return {lib: installed_version(lib) or "missing" for lib in cls.libraries}

    @classmethod
    def output_kind(cls, input_kind: str) -> str:
        """The kind this pass produces from an input of ``input_kind``."""
        return input_kind if cls.keeps_kind and input_kind in cls.accepts else cls.produces

    @classmethod
    def summary(cls) -> str:
        doc = (cls.__doc__ or "").strip().splitlines()
        return doc[0] if doc else ""


_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_REGISTRY: dict[str, type[Pass[Any]]] = {}
_ENTRY_POINTS_LOADED = False
ENTRY_POINT_GROUP = "olive_ext.passes"

P = TypeVar("P", bound=type[Pass[Any]])


def register_pass(name: str) -> Callable[[P], P]:
    """Class decorator: add a pass to the registry under ``name``, checking its declaration."""

    def decorate(cls: P) -> P:
        problems = _declaration_problems(name, cls)
        if problems:
            raise TypeError(f"cannot register pass {cls.__qualname__} as {name!r}: " + "; ".join(problems))
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def _declaration_problems(name: str, cls: type[Pass[Any]]) -> list[str]:
    problems = []
    if not _NAME_RE.match(name):
        problems.append("name must be lower_snake_case")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        problems.append(f"name already used by {_REGISTRY[name].__module__}.{_REGISTRY[name].__qualname__}")
    if not (isinstance(cls, type) and issubclass(cls, Pass)):
        problems.append("class must subclass olive_ext.passes.base.Pass")
        return problems
    if not issubclass(cls.config_class, PassConfig):
        problems.append("config_class must subclass PassConfig")
    if not cls.accepts or not set(cls.accepts) <= set(ARTIFACT_KINDS):
        problems.append(f"accepts must be a non-empty subset of {ARTIFACT_KINDS}")
    if cls.produces not in ARTIFACT_KINDS:
        problems.append(f"produces must be one of {ARTIFACT_KINDS}")
    if not cls.devices or not set(cls.devices) <= set(DEVICES):
        problems.append(f"devices must be a non-empty subset of {DEVICES}")
    if cls.run is Pass.run:
        problems.append("run() is not implemented")
    return problems


def _load_builtin_and_plugins() -> None:
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    importlib.import_module("olive_ext.passes")
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as e:  # a broken plugin must not break olive-ext itself
            import logging

            logging.getLogger("olive_ext").warning("could not load pass plugin %s: %s", ep.value, e)


def get_pass(name: str) -> type[Pass[Any]] | None:
    """The registered pass class for ``name``, or None."""
    _load_builtin_and_plugins()
    return _REGISTRY.get(name)


def registered_passes() -> dict[str, type[Pass[Any]]]:
    """All registered passes, built-in and plugins, by name."""
    _load_builtin_and_plugins()
    return dict(sorted(_REGISTRY.items()))


def split_search(cls: type[Pass[Any]], params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Separate fixed params from searched ones (a list given for a searchable field)."""
    searchable = cls.config_class.searchable_fields()
    fixed, searched = {}, {}
    for key, value in params.items():
        if key in searchable and isinstance(value, list):
            searched[key] = value
        else:
            fixed[key] = value
    return fixed, searched


def check_pass_params(cls: type[Pass[Any]], params: dict[str, Any], path: str) -> list[Problem]:
    """Validate params against the pass's config, each search choice included."""
    fixed, searched = split_search(cls, params)
    problems: list[Problem] = []
    for key, choices in searched.items():
        if not choices:
            problems.append(Problem(f"{path}.{key}", "an empty list gives search nothing to try", choices, True))
    first = {k: v[0] for k, v in searched.items() if v}
    prefix = tuple(path.split("."))
    try:
        cls.config_class(**fixed, **first)
    except ValidationError as e:
        searchable = sorted(cls.config_class.searchable_fields())
        for p in problems_from_validation(e, cls.config_class, prefix):
            key = p.path.removeprefix(f"{path}.")
            if isinstance(fixed.get(key), list) and "list" not in p.message:  # "Input should be a valid boolean"
                where = f"only on {', '.join(searchable)}" if searchable else "on no parameter of this pass"
                p = Problem(p.path, f"takes one value: a list (values to search over) is allowed {where}",
                            fixed[key], True, hint="give one value, or one pipeline per value (`pipelines`)")
            problems.append(p)
    if not problems:
        problems += cls.check_params({**fixed, **first}, path)
    for key, choices in searched.items():
        for i, choice in enumerate(choices[1:], start=1):
            try:
                cls.config_class(**{**fixed, **first, key: choice})
            except ValidationError as e:
                for p in problems_from_validation(e, cls.config_class, prefix):
                    if p.path == f"{path}.{key}" or p.path == path:
                        problems.append(Problem(f"{path}.{key}[{i}]", p.message, p.value, p.has_value, p.allowed))
    return problems
