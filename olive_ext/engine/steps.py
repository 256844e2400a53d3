"""Steps: a pass type plus concrete parameters, and the checks that turn recipe params into them."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from olive_ext.errors import Problem, RecipeError
from olive_ext.options import problems_from_validation
from olive_ext.passes.base import Pass, PassConfig, get_pass
from olive_ext.targets.base import Target


def param_text(value: Any) -> str:
    """A parameter's value as a recipe spells it: ``[a, b]``, ``{k: v}``, ``true``, ``null`` (not Python's repr)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {param_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(param_text(v) for v in value) + "]"
    return str(value)


@dataclass(frozen=True)
class Step:
    """One concrete pass in a candidate pipeline: every parameter has a single value."""

    name: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)

    def pass_class(self) -> builtins.type[Pass[Any]]:
        """The registered pass class of this step's type (a located error when unknown)."""
        cls = get_pass(self.type)
        if cls is None:
            raise RecipeError([Problem(f"passes.{self.name}.type", "unknown pass type", self.type, True)])
        return cls

    def config(self, target: Target | None = None) -> PassConfig:
        """The validated config; the ``target``'s defaults fill what params leave unset (``Pass.params_for``)."""
        cls = self.pass_class()
        merged = cls.params_for(target, self.params)
        try:
            return cls.config_class(**merged)
        except ValidationError as e:
            raise RecipeError(problems_from_validation(e, cls.config_class, ("passes", self.name))) from e

    def describe(self) -> str:
        """'type(param=value, ...)' for logs and reports."""
        args = ", ".join(f"{k}={param_text(v)}" for k, v in sorted(self.params.items()))
        return f"{self.type}({args})" if args else self.type
