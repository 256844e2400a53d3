"""cache: what the build cache holds, and pruning it (least recently used first, never an entry in use).

>>> from olive_ext.workflows.cache import PruneOptions, prune_cache
>>> prune_cache(PruneOptions(older_than="30d", max_size="5GB")).removed  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from olive_ext.cache import (
    CacheEntry,
    default_cache_dir,
    delete_entries,
    list_entries,
    parse_duration,
    parse_size,
    running_since,
    select_for_pruning,
)
from olive_ext.errors import UserInputError
from olive_ext.options import Options

CACHE_DIR_HELP = "cache of built models and evaluations (default: $OLIVE_EXT_CACHE or ~/.cache/olive-ext)"


class CacheOptions(Options):
    """`olive-ext cache ls`."""

    cache_dir: str | None = Field(None, description=CACHE_DIR_HELP)

    def root(self) -> Path:
        """The cache folder these options name (an existing file is refused: it cannot be a cache)."""
        root = Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()
        if root.exists() and not root.is_dir():
            raise UserInputError(
                f"cache folder {root} is a file, not a folder",
                hint="pass --cache_dir with the cache folder (default: ~/.cache/olive-ext)",
            )
        return root


class PruneOptions(CacheOptions):
    """`olive-ext cache prune`."""

    older_than: str | None = Field(None, description="remove entries not used for this long: 7d, 12h, 2w")
    max_size: str | None = Field(
        None, description="then remove the least recently used until this much remains: 2GB, 500MB"
    )
    dry_run: bool = Field(False, description="list what would be removed; remove nothing")


@dataclass(frozen=True)
class PruneResult:
    """What a prune removed (or would remove, in a dry run), what it kept because it was in use, what remains."""

    removed: list[CacheEntry]
    in_use: list[CacheEntry]  # being written, locked, or used by a process still running
    remaining: list[CacheEntry]
    running: int = 0  # other processes using the cache while it was pruned


def cache_entries(opts: CacheOptions) -> list[CacheEntry]:
    """The cache's whole entries, most recently used first."""
    return list_entries(opts.root())


def prune_cache(opts: PruneOptions) -> PruneResult:
    """Remove entries unused for ``older_than``, then the least recently used until ``max_size`` remains."""
    if opts.older_than is None and opts.max_size is None:
        raise UserInputError("cache prune: say what to remove", hint="add --older-than 7d and/or --max-size 2GB")
    # "" is not a limit: `--older-than "$AGE"` with AGE unset pruned nothing and said nothing
    older = parse_duration(opts.older_than) if opts.older_than is not None else None
    max_size = parse_size(opts.max_size) if opts.max_size is not None else None
    if not opts.root().is_dir():  # a mistyped --cache_dir was created (and a path through a file failed)
        raise UserInputError(f"no cache at {opts.root()}: nothing to prune",
                             hint="pass the cache folder with --cache_dir (default: ~/.cache/olive-ext)")  # fmt: skip
    entries = list_entries(opts.root())
    since, running = running_since(opts.root())
    doomed, used = select_for_pruning(entries, older, max_size, in_use_since=since)
    removed = doomed if opts.dry_run else delete_entries(opts.root(), doomed)
    gone = {e.key for e in removed}
    in_use = [e for e in doomed if e.key not in gone] + used
    return PruneResult(removed, in_use, [e for e in entries if e.key not in gone], running)
