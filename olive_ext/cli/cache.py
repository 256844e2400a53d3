"""`olive-ext cache`: see what the build cache holds and prune it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from olive_ext.cli.common import add_cache_dir, add_log_level

NAME = "cache"
HELP = "list the cache of built models and measurements (ls) or prune it (prune --older-than/--max-size)"
DESCRIPTION = """Every build and measurement is cached by content, so a rerun is instant; the cache grows.

  olive-ext cache ls                              entries with size, pass, age and last use
  olive-ext cache prune --older-than 7d           remove entries not used for a week
  olive-ext cache prune --max-size 2GB            remove the least recently used until 2 GB remain
  olive-ext cache prune --older-than 30d --max-size 5GB --dry_run

Entries being written (in tmp/) or locked are never removed, and an entry goes together with the
entries built on top of it. A removed entry is simply rebuilt by the next run that needs it.
"""
ORDER = 92


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ls|prune", required=True)
    ls = sub.add_parser("ls", help="list entries, most recently used first")
    add_cache_dir(ls)
    prune = sub.add_parser("prune", help="remove entries, least recently used first")
    prune.add_argument("--older-than", "--older_than", dest="older_than", help="not used for this long: 7d, 12h, 2w")
    prune.add_argument("--max-size", "--max_size", dest="max_size", help="keep at most this much: 2GB, 500MB")
    prune.add_argument("--dry_run", "--dry-run", action="store_true", help="list what would be removed")
    add_cache_dir(prune)
    add_log_level(p)


def main(args: argparse.Namespace) -> int:
    from olive_ext.cache import default_cache_dir

    root = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
    return _list(root) if args.action == "ls" else _prune(root, args)


def _list(root: Path) -> int:
    from rich.table import Table

    from olive_ext.cache import list_entries
    from olive_ext.console import make_console

    console = make_console()
    entries = list_entries(root)
    now = time.time()
    table = Table(box=None, pad_edge=False)
    for column in ("key", "built by", "size", "created", "last used"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for e in entries:
        table.add_row(e.key[:12], e.kind, _size(e.size_bytes), _ago(now - e.created), _ago(now - e.last_used))
    if entries:
        console.print(table)
    console.print(_summary(root, entries), highlight=False, soft_wrap=True)
    return 0


def _prune(root: Path, args: argparse.Namespace) -> int:
    from olive_ext.cache import delete_entries, list_entries, parse_duration, parse_size, select_for_pruning
    from olive_ext.console import make_console
    from olive_ext.errors import UserInputError

    if args.older_than is None and args.max_size is None:
        raise UserInputError("cache prune: say what to remove", hint="add --older-than 7d and/or --max-size 2GB")
    older = parse_duration(args.older_than) if args.older_than else None
    max_size = parse_size(args.max_size) if args.max_size else None
    entries = list_entries(root)
    doomed = select_for_pruning(entries, older, max_size)
    console = make_console()
    if args.dry_run:
        for e in doomed:
            console.print(f"would remove {e.key[:12]} {e.kind} {_size(e.size_bytes)}", highlight=False)
        console.print(f"{len(doomed)} of {len(entries)} entries, {_size(sum(e.size_bytes for e in doomed))}")
        return 0
    removed = delete_entries(root, doomed)
    skipped = len(doomed) - len(removed)
    kept = sum(e.size_bytes for e in entries) - sum(e.size_bytes for e in removed)
    console.print(
        f"removed {len(removed)} entries ({_size(sum(e.size_bytes for e in removed))}); "
        f"{len(entries) - len(removed)} remain ({_size(kept)})"
        + (f"; {skipped} in use (being written or locked) were kept" if skipped else ""),
        highlight=False,
    )
    return 0


def _summary(root: Path, entries: list[Any]) -> str:
    """Total, and what else lives under the cache folder (not pruned by this command)."""
    text = f"{len(entries)} entries, {_size(sum(e.size_bytes for e in entries))} in {root / 'entries'}"
    building = list((root / "tmp").iterdir()) if (root / "tmp").is_dir() else []
    if building:
        text += f"; {len(building)} being written in tmp/"
    others = (
        [p for p in sorted(root.iterdir()) if p.is_dir() and p.name not in ("entries", "tmp")] if root.is_dir() else []
    )
    if others:
        from olive_ext.cache import tree_size

        text += "\nnot managed by prune: " + ", ".join(f"{p.name}/ {_size(tree_size(p))}" for p in others)
    return text


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"
