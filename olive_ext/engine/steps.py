"""Steps: a pass type plus concrete parameters, and the checks that turn recipe params into them."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from olive_ext.errors import Problem, RecipeError
from olive_ext.passes.base import Pass, PassConfig, get_pass


@dataclass(frozen=True)
class Step:
    """One concrete pass in a candidate pipeline: every parameter has a single value."""

    name: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)

    def pass_class(self) -> builtins.type[Pass[Any]]:
        cls = get_pass(self.type)
        if cls is None:
            raise RecipeError([Problem(f"passes.{self.name}.type", "unknown pass type", self.type, True)])
        return cls

    def config(self, defaults: dict[str, Any] | None = None) -> PassConfig:
        """The validated config; ``defaults`` (from the target) fill what params leave unset."""
        cls = self.pass_class()
        merged = {**(defaults or {}), **self.params}
        try:
            return cls.config_class(**merged)
        except ValidationError as e:
            from olive_ext.recipe.load import problems_from_validation

            raise RecipeError(problems_from_validation(e, cls.config_class, ("passes", self.name))) from e

    def describe(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.type}({args})" if args else self.type


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
    from olive_ext.recipe.load import problems_from_validation

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
        problems += problems_from_validation(e, cls.config_class, prefix)
    for key, choices in searched.items():
        for i, choice in enumerate(choices[1:], start=1):
            try:
                cls.config_class(**{**fixed, **first, key: choice})
            except ValidationError as e:
                for p in problems_from_validation(e, cls.config_class, prefix):
                    if p.path == f"{path}.{key}" or p.path == path:
                        problems.append(Problem(f"{path}.{key}[{i}]", p.message, p.value, p.has_value, p.allowed))
    return problems
