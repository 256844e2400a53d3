"""Search: expand a recipe's list-valued pass parameters into concrete candidates.

Strategies: ``grid`` (every combination, in order), ``random`` (a seeded sample of the
grid) and ``tpe`` (optuna's TPE sampler, told each candidate's score). No pass knows
about search: candidates are plain lists of :class:`Step` with single values.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from olive_ext.engine.steps import Step
from olive_ext.passes.base import split_search
from olive_ext.recipe.schema import Recipe, SearchSpec
from olive_ext.targets.base import Target


@dataclass(frozen=True)
class Dimension:
    """One searched parameter: ``<section>.<step>.<param>`` and its choices."""

    step: str
    param: str
    choices: tuple[Any, ...]
    section: str = "passes"

    @property
    def path(self) -> str:
        return f"{self.section}.{self.step}.{self.param}"


@dataclass(frozen=True)
class Candidate:
    """A concrete pipeline for one target. ``choices`` records the searched values.

    The id hashes the target and every step's *resolved* config (defaults and
    target-derived values filled in), so two choices a pass treats the same (a block
    size on an fp32 build) give the same candidate and run once.
    """

    target: Target
    steps: tuple[Step, ...]
    choices: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def id(self) -> str:
        """A short stable id from the target and the steps' configs."""
        resolved = []
        for s in self.steps:
            resolved.append((s.name, s.type, s.config(self.target).canonical()))
        payload = json.dumps([self.target.name, resolved], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:10]

    def describe(self) -> str:
        """The pipeline as 'pass(param=value, ...) -> ...'."""
        return self.label or (" -> ".join(s.describe() for s in self.steps) or "input model")


@dataclass
class SubSpace:
    """One pass section: its fixed steps and the dimensions that vary."""

    section: str
    base: list[Step]
    dims: list[Dimension]

    @property
    def size(self) -> int:
        n = 1
        for d in self.dims:
            n *= len(d.choices)
        return n

    def candidate(self, target: Target, values: tuple[Any, ...]) -> Candidate:
        """The candidate for one choice per dimension."""
        extra: dict[str, dict[str, Any]] = {}
        for dim, value in zip(self.dims, values, strict=True):
            extra.setdefault(dim.step, {})[dim.param] = value
        steps = tuple(Step(s.name, s.type, {**s.params, **extra.get(s.name, {})}) for s in self.base)
        choices = {d.path: v for d, v in zip(self.dims, values, strict=True)}
        return Candidate(target, steps, choices)

    def combos(self) -> Iterator[tuple[Any, ...]]:
        return itertools.product(*(d.choices for d in self.dims))


@dataclass
class SearchSpace:
    """The union of a recipe's pass sections (``passes``, or each of ``pipelines``)."""

    spaces: list[SubSpace]

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> SearchSpace:
        """The space a recipe's list-valued parameters (and alternative pipelines) span."""
        spaces = []
        for section, passes in recipe.alternatives():
            base, dims = [], []
            for name, spec in passes.items():
                step = Step(name, spec.type, spec.params())
                fixed, searched = split_search(step.pass_class(), step.params)
                base.append(Step(name, spec.type, fixed))
                dims += [Dimension(name, k, tuple(v), section) for k, v in searched.items()]
            spaces.append(SubSpace(section, base, dims))
        return cls(spaces)

    @property
    def size(self) -> int:
        """How many candidates the space holds before equal configs are merged."""
        return sum(s.size for s in self.spaces)

    @property
    def dims(self) -> list[Dimension]:
        return [d for s in self.spaces for d in s.dims]


class Strategy:
    """Yields candidates; ``tell`` reports a candidate's score (lower is better, None = failed)."""

    # True when the next suggestion depends on the last score: candidates then run one at a time
    adaptive = False

    def __init__(self, space: SearchSpace, targets: list[Target], spec: SearchSpec) -> None:
        self.space, self.targets, self.spec = space, targets, spec
        self._distinct: dict[str, list[Candidate]] = {}

    def distinct(self, target: Target) -> list[Candidate]:
        """The grid's distinct candidates over every section (first occurrence kept, in grid order)."""
        if target.name not in self._distinct:
            seen: set[str] = set()
            keep = []
            for sub in self.space.spaces:
                for values in sub.combos():
                    cand = sub.candidate(target, values)
                    if cand.id not in seen:
                        seen.add(cand.id)
                        keep.append(cand)
            self._distinct[target.name] = keep
        return self._distinct[target.name]

    def budget(self, target: Target | None = None) -> int:
        """How many candidates this strategy will try for ``target``."""
        size = len(self.distinct(target or self.targets[0]))
        default = size if self.spec.strategy == "grid" else min(8, size)
        return min(self.spec.max_candidates or default, size)

    def __iter__(self) -> Iterator[Candidate]:
        raise NotImplementedError

    def tell(self, candidate: Candidate, score: float | None) -> None:
        """Grid and random ignore scores."""


class GridStrategy(Strategy):
    """Every combination, in order (equal resolved configs merged)."""

    def __iter__(self) -> Iterator[Candidate]:
        for target in self.targets:
            yield from self.distinct(target)[: self.budget(target)]


class RandomStrategy(Strategy):
    """A seeded random sample of the combinations, up to the budget."""

    def __iter__(self) -> Iterator[Candidate]:
        for target in self.targets:
            pool = self.distinct(target)
            rng = random.Random(self.spec.seed)
            for i in sorted(rng.sample(range(len(pool)), self.budget(target))):
                yield pool[i]


class TpeStrategy(Strategy):
    """optuna TPE over the dimensions; repeated suggestions are skipped, not re-run."""

    adaptive = True

    def __init__(self, space: SearchSpace, targets: list[Target], spec: SearchSpec) -> None:
        super().__init__(space, targets, spec)
        self._score: float | None = None

    def __iter__(self) -> Iterator[Candidate]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        for target in self.targets:
            sampler = optuna.samplers.TPESampler(seed=self.spec.seed, n_startup_trials=min(4, self.budget()))
            study = optuna.create_study(direction="minimize", sampler=sampler)
            seen: set[str] = set()
            budget = self.budget(target)
            attempts = 0
            while len(seen) < budget and attempts < budget * 20:
                attempts += 1
                trial = study.ask()
                spaces = self.space.spaces
                sub = (
                    spaces[trial.suggest_categorical("section", list(range(len(spaces))))]
                    if len(spaces) > 1
                    else spaces[0]
                )
                idx = tuple(_suggest(trial, d) for d in sub.dims)
                values = tuple(d.choices[i] for d, i in zip(sub.dims, idx, strict=True))
                candidate = sub.candidate(target, values)
                if candidate.id in seen:
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    continue
                seen.add(candidate.id)
                self._score = None
                yield candidate
                study.tell(trial, self._score if self._score is not None else float("inf"))

    def tell(self, candidate: Candidate, score: float | None) -> None:
        """Report a candidate's score (lower is better; None when it failed) to the sampler."""
        self._score = score


def _is_numeric(choices: tuple[Any, ...]) -> bool:
    return all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices)


def _suggest(trial: Any, dim: Dimension) -> int:
    """Index of the choice to try. Numeric choices are searched in value order, so TPE can use nearness."""
    if len(dim.choices) > 2 and _is_numeric(dim.choices):
        order = sorted(range(len(dim.choices)), key=lambda i: dim.choices[i])
        return order[trial.suggest_int(dim.path, 0, len(order) - 1)]
    return int(trial.suggest_categorical(dim.path, list(range(len(dim.choices)))))


# A grid over more candidates than this, with no search.max_candidates, is named before work: each candidate is
# built and measured (a SmolLM2-135M candidate takes 15-45 s here), so 1,800 of them is a day of CPU.
LARGE_GRID = 32


def large_grid(space: SearchSpace, spec: SearchSpec) -> str | None:
    """What to say when the grid builds more than LARGE_GRID candidates per target without a budget."""
    if spec.strategy != "grid" or spec.max_candidates is not None:
        return None
    size = space.size
    if size <= LARGE_GRID:
        return None
    return (
        f"the passes' lists span {size:,} candidates per target and search.strategy 'grid' builds and measures "
        "every one; set search.max_candidates (e.g. 8) or search.strategy 'random' or 'tpe' to try fewer"
    )


def make_strategy(space: SearchSpace, targets: list[Target], spec: SearchSpec) -> Strategy:
    """The strategy the recipe's ``search.strategy`` names."""
    kinds: dict[str, type[Strategy]] = {"grid": GridStrategy, "random": RandomStrategy, "tpe": TpeStrategy}
    return kinds[spec.strategy](space, targets, spec)
