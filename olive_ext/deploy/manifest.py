"""The bundle manifest: every file with its sha256 and size, plus what made the model and how it measured.

The manifest holds no timestamps, so packaging the same inputs twice gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from olive_ext.artifacts import hash_file

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1


def file_entries(root: Path) -> list[dict[str, Any]]:
    """[{path, sha256, size}] for every file under root except the manifest, sorted by path."""
    entries = []
    for f in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
        rel = f.relative_to(root).as_posix()
        if rel == MANIFEST:
            continue
        entries.append({"path": rel, "sha256": hash_file(f), "size": f.stat().st_size})
    return entries


def text_sha256(text: str) -> str:
    """The sha256 of a text's UTF-8 bytes (chat templates are compared by it)."""
    return hashlib.sha256(text.encode()).hexdigest()


def write_manifest(root: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Add the file list and write manifest.json (sorted keys, stable formatting)."""
    manifest = {**manifest, "schema_version": SCHEMA_VERSION, "files": file_entries(root)}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def read_manifest(root: Path) -> dict[str, Any]:
    """The bundle's manifest.json as a mapping."""
    data: dict[str, Any] = json.loads((root / MANIFEST).read_text())
    return data
