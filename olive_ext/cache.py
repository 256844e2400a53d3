"""The content-addressed cache of pass outputs and evaluations.

Entries live in ``<cache_dir>/entries/<key>/`` with an ``entry.json`` written last.
An entry is built in ``<cache_dir>/tmp/<key>.<pid>.<random>/`` and renamed into place,
so a run killed at any moment leaves either a whole entry or none; leftovers of dead
processes are swept on the next start.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from olive_ext.artifacts import Artifact, FingerprintMemo, content_hash
from olive_ext.version import __version__

ENTRY_FILE = "entry.json"


def default_cache_dir() -> Path:
    """$OLIVE_EXT_CACHE, else ~/.cache/olive-ext."""
    env = os.environ.get("OLIVE_EXT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "olive-ext"


def cache_key(*parts: Any) -> str:
    """sha256 of the canonical JSON of ``parts`` (sorted keys, olive-ext version included)."""
    payload = json.dumps([__version__, *parts], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class Cache:
    """Pass outputs and evaluation results, keyed by content."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root else default_cache_dir()
        self.entries = self.root / "entries"
        self.tmp = self.root / "tmp"
        self.entries.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.memo = FingerprintMemo(self.root / "fingerprints.json")
        self._sweep()

    # ----------------------------------------------------------------- artifacts

    def get_artifact(self, key: str) -> Artifact | None:
        """The cached artifact for ``key``, or None when there is no whole entry."""
        entry = self.entries / key
        meta = self._read_entry(entry)
        if meta is None or "artifact" not in meta:
            return None
        return Artifact.from_json(meta["artifact"], relative_to=entry)

    @contextlib.contextmanager
    def building(self, key: str) -> Iterator[Path]:
        """A fresh temporary folder for a pass to write into; removed if the pass fails."""
        work = self.tmp / f"{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        work.mkdir(parents=True)
        try:
            yield work
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise

    def commit_artifact(self, key: str, work: Path, artifact: Artifact, record: dict[str, Any]) -> Artifact:
        """Fingerprint the pass output in ``work``, write entry.json, and rename into place."""
        fp = _artifact_content_hash(artifact, self.memo)
        self.memo.save()
        artifact = artifact.with_fingerprint(fp)
        meta = {"key": key, "artifact": artifact.to_json(relative_to=work), **record}
        self._write_entry_json(work, meta)
        final = self._rename_into_place(work, key)
        return Artifact.from_json(meta["artifact"], relative_to=final)

    # ----------------------------------------------------------------- plain results (evaluations)

    def get_result(self, key: str) -> dict[str, Any] | None:
        """A cached evaluation result by key, or None."""
        meta = self._read_entry(self.entries / key)
        return None if meta is None else meta.get("result")

    def put_result(self, key: str, result: dict[str, Any], record: dict[str, Any] | None = None) -> None:
        """Store an evaluation result under ``key`` (written atomically)."""
        with self.building(key) as work:
            self._write_entry_json(work, {"key": key, "result": result, **(record or {})})
            self._rename_into_place(work, key)

    # ----------------------------------------------------------------- internals

    def _read_entry(self, entry: Path) -> dict[str, Any] | None:
        try:
            return json.loads((entry / ENTRY_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def _write_entry_json(self, work: Path, meta: dict[str, Any]) -> None:
        path = work / ENTRY_FILE
        with open(path, "w") as f:
            json.dump(meta, f, indent=1, default=str)
            f.flush()
            os.fsync(f.fileno())

    def _rename_into_place(self, work: Path, key: str) -> Path:
        final = self.entries / key
        if final.exists() and self._read_entry(final) is None:
            shutil.rmtree(final, ignore_errors=True)  # a broken entry from an older, non-atomic writer
        try:
            os.rename(work, final)
        except OSError:
            if self._read_entry(final) is None:  # not a concurrent winner: a real failure
                raise
            shutil.rmtree(work, ignore_errors=True)
        return final

    def _sweep(self) -> None:
        """Remove temporary folders left by processes that no longer run."""
        for work in self.tmp.iterdir():
            parts = work.name.split(".")
            pid = int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None
            if pid is None or not _pid_alive(pid):
                shutil.rmtree(work, ignore_errors=True)


def _artifact_content_hash(artifact: Artifact, memo: FingerprintMemo) -> str:
    """Hash an output's own files plus the identity of anything it points at outside itself."""
    h = hashlib.sha256(artifact.kind.encode())
    for path in (artifact.path, artifact.adapter_path):
        if path:
            p = Path(path)
            h.update(content_hash(p, memo).encode() if p.exists() else f"ref:{path}".encode())
    if artifact.gguf_file:
        h.update(artifact.gguf_file.encode())
    return h.hexdigest()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
