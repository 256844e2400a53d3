"""`olive-ext cache`: see what the build cache holds and prune it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from olive_ext.cli.common import add_cache_dir, add_log_level, option

if TYPE_CHECKING:
    from olive_ext.workflows.cache import CacheOptions, PruneOptions

NAME = "cache"
HELP = "list the cache of built models and measurements (ls) or prune it (prune --older-than/--max-size)"
DESCRIPTION = """Every build and measurement is cached by content, so a rerun is instant; the cache grows.

  olive-ext cache ls                              entries with size, pass, age and last use
  olive-ext cache prune --older-than 7d           remove entries not used for a week
  olive-ext cache prune --max-size 2GB            remove the least recently used until 2 GB remain
  olive-ext cache prune --older-than 30d --max-size 5GB --dry_run

A cache hit counts as use. Entries being written (in tmp/) or locked by a build are never removed,
and an entry goes together with the entries built on top of it. A removed entry is rebuilt by the
next run that needs it. The checkpoints of interrupted fine-tunes (checkpoints/, from which a rerun
resumes) are entries too, last used when their newest checkpoint was written, and are kept while
another olive-ext process uses the cache.
"""
ORDER = 92


def add_arguments(p: argparse.ArgumentParser) -> None:
    from olive_ext.workflows.cache import CacheOptions, PruneOptions

    sub = p.add_subparsers(dest="action", metavar="ls|prune", required=True)
    ls = sub.add_parser("ls", help="list entries, most recently used first")
    add_cache_dir(ls, CacheOptions)
    add_log_level(ls, nested=True)  # `cache ls --log_level 3` said "unknown flag; did you mean --log_level?"
    prune = sub.add_parser("prune", help="remove entries, least recently used first")
    option(prune, PruneOptions, "older_than", "--older-than", "--older_than")
    option(prune, PruneOptions, "max_size", "--max-size", "--max_size")
    option(prune, PruneOptions, "dry_run", "--dry_run", "--dry-run", type=bool)
    add_cache_dir(prune, PruneOptions)
    add_log_level(prune, nested=True)
    add_log_level(p)


def main(args: argparse.Namespace) -> int:
    from olive_ext.cli.common import options_from_args
    from olive_ext.workflows.cache import CacheOptions, PruneOptions

    if args.action == "ls":
        return _list(options_from_args(CacheOptions, args))
    return _prune(options_from_args(PruneOptions, args))


def _list(opts: CacheOptions) -> int:
    from rich.table import Table

    from olive_ext.console import make_console
    from olive_ext.workflows.cache import cache_entries

    console = make_console()
    entries = cache_entries(opts)
    now = time.time()
    table = Table(box=None, pad_edge=False)
    for column in ("key", "built by", "size", "created", "last used"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for e in entries:
        table.add_row(_short(e.key), e.kind, _size(e.size_bytes), _ago(now - e.created), _ago(now - e.last_used))
    if entries:
        console.print(table)
    console.print(_summary(opts.root(), sum(e.size_bytes for e in entries), len(entries)), highlight=False)
    return 0


def _prune(opts: PruneOptions) -> int:
    from olive_ext.console import make_console
    from olive_ext.workflows.cache import prune_cache

    console = make_console()
    result = prune_cache(opts)
    freed = _size(sum(e.size_bytes for e in result.removed))
    left = f"{len(result.remaining)} remain ({_size(sum(e.size_bytes for e in result.remaining))})"
    if opts.dry_run:
        for e in result.removed:
            console.print(f"would remove {_short(e.key)} {e.kind} {_size(e.size_bytes)}", highlight=False)
        total = len(result.removed) + len(result.remaining)
        console.print(f"{len(result.removed)} of {total} entries, {freed}", highlight=False)
        return 0
    kept = ""
    if result.in_use:
        kept = f"; {len(result.in_use)} in use (being written, locked or used by a running run) were kept"
        if result.running:
            kept += f"; {result.running} olive-ext process{'es' if result.running != 1 else ''} use the cache now"
    console.print(f"removed {len(result.removed)} entries ({freed}); {left}{kept}", highlight=False)
    return 0


def _short(key: str) -> str:
    """An entry's key as `cache ls` shows it: 12 characters of the hash (``checkpoints/`` kept in front)."""
    folder, _, name = key.rpartition("/")
    return f"{folder}/{name[:12]}" if folder else key[:12]


def _summary(root: Path, total: int, count: int) -> str:
    """Total, and what else lives under the cache folder (not pruned by this command)."""
    from olive_ext.cache import CHECKPOINTS, tree_size

    text = f"{count} entries, {_size(total)} in {root / 'entries'} and {root / CHECKPOINTS}"
    building = list((root / "tmp").iterdir()) if (root / "tmp").is_dir() else []
    if building:
        text += f"; {len(building)} being written in tmp/"
    folders = sorted(root.iterdir()) if root.is_dir() else []
    others = [p for p in folders if p.is_dir() and p.name not in ("entries", "tmp", "locks", "runs", CHECKPOINTS)]
    if others:
        text += "\nnot managed by prune: " + ", ".join(f"{p.name}/ {_size(tree_size(p))}" for p in others)
    return text


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"
