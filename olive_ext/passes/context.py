"""What a pass gets besides its input: target, work folder, data, cache, logging and progress."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olive_ext.errors import UserInputError
from olive_ext.targets.base import CPU, Target

if TYPE_CHECKING:
    from olive_ext.cache import Cache
    from olive_ext.data.spec import DatasetSpec
    from olive_ext.models.spec import InputModel
    from olive_ext.progress import Progress

logger = logging.getLogger("olive_ext")


@dataclass(frozen=True)
class RunContext:
    """Passed to every ``Pass.run``. ``output_dir`` is where the pass writes its artifact."""

    cache: Cache
    output_dir: Path = Path(".")
    target: Target = CPU
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    input_model: InputModel | None = None
    progress: Progress | None = None
    logger: logging.Logger = logger
    extras: dict[str, Any] = field(default_factory=dict)

    def for_step(self, output_dir: Path, target: Target | None = None) -> RunContext:
        """This context for one step: its output folder and target."""
        return replace(self, output_dir=output_dir, target=target or self.target)

    @property
    def trust_remote_code(self) -> bool:
        """Whether the recipe allows model code from the hub."""
        return bool(self.input_model and self.input_model.trust_remote_code)

    def dataset(self, name: str | None, purpose: str) -> DatasetSpec:
        """The named dataset; with no name, the only one defined. Errors say which names exist."""
        if name is None:
            if len(self.datasets) == 1:
                return next(iter(self.datasets.values()))
            known = ", ".join(self.datasets) or "none"
            raise UserInputError(f"{purpose} needs a dataset: name one from `data` (defined: {known})")
        if name not in self.datasets:
            known = ", ".join(self.datasets) or "none"
            raise UserInputError(f"{purpose} names dataset {name!r}, which `data` lacks (defined: {known})")
        return self.datasets[name]
