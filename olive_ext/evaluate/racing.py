"""Racing: stop scoring a candidate once its accuracy cannot meet the constraint.

A candidate is scored on growing slices of the eval rows (15, 30, 60, then all). After each
slice, the best accuracy it could still reach over all ``total`` rows is bounded, and the
candidate is stopped when that bound is below ``floor`` (the reference accuracy minus
``max_accuracy_drop``): it could not be chosen, so its remaining rows and its timing are skipped.
A candidate scored on every row whose accuracy broke the floor is stopped there: it is not timed
(``stopped_after`` equals the number of rows).

Two bounds:

- ``exact`` (default): every remaining row counted as right, ``(hits + remaining) / total``.
  A stopped candidate would have broken the constraint on all rows too, so racing never changes
  the choice; it stops a candidate after ``total - needed + 1`` misses.
- ``wilson``: additionally the Wilson score upper bound (z = 2, about 97.7 % one-sided) of the
  accuracy on the rows seen so far, treating them as a random sample of the eval rows. It stops
  sooner but can, with small probability, stop a candidate that would have met the constraint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

RaceBound = Literal["exact", "wilson"]
WILSON_Z = 2.0


@dataclass(frozen=True)
class Race:
    """Stop a candidate whose accuracy (points, 0-100) over ``total`` rows cannot reach ``floor``."""

    floor: float
    slices: tuple[int, ...] = (15, 30, 60)
    bound: RaceBound = "exact"

    def upper_bound(self, hits: int, seen: int, total: int) -> float:
        """Highest accuracy (points) still reachable over ``total`` rows, by the chosen bound."""
        best = 100.0 * (hits + total - seen) / total
        if self.bound == "wilson" and seen:
            best = min(best, 100.0 * wilson_upper(hits, seen))
        return best

    def should_stop(self, hits: int, seen: int, total: int) -> bool:
        """Whether the candidate cannot meet the floor any more (rounded as metrics are, 2 digits).

        With every row seen (``seen == total``) this is whether its accuracy broke the floor: then
        only its timing is left, which a candidate that cannot be chosen does not need."""
        return round(self.upper_bound(hits, seen, total), 2) < self.floor - 1e-9


def wilson_upper(hits: int, n: int, z: float = WILSON_Z) -> float:
    """Wilson score interval's upper end for ``hits`` successes in ``n`` trials (a fraction)."""
    if hits >= n:
        return 1.0
    p = hits / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z * z / n))
