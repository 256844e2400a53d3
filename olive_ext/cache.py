"""The content-addressed cache of pass outputs and evaluations.

Entries live in ``<cache_dir>/entries/<key>/`` with an ``entry.json`` written last.
An entry is built in ``<cache_dir>/tmp/<key>.<pid>.<random>/`` and renamed into place,
so a run killed at any moment leaves either a whole entry or none; leftovers of dead
processes are swept on the next start.

Processes sharing a cache take a per-key lock (``flock`` on ``<cache_dir>/locks/<key>.lock``)
around a build, so the second one waits and reuses the first one's entry instead of building it
again; an entry is renamed into place only if none is there yet, so without the lock (a file
system without ``flock``) the first whole entry still wins and the others are dropped.

Each process that opens a cache holds a lock on ``<cache_dir>/runs/<pid>.<random>.lock`` for as long as it
runs (the file says when it started): `cache prune` keeps every entry used since the oldest running process
started, so a prune beside a running auto-opt never removes the entries that run goes on to read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from olive_ext.artifacts import Artifact, FingerprintMemo, content_hash, olive_model_identity
from olive_ext.errors import UserInputError
from olive_ext.version import __version__

try:
    import fcntl
except ImportError:  # Windows: no flock; rename-if-absent alone keeps entries single
    fcntl = None  # type: ignore[assignment]

ENTRY_FILE = "entry.json"


def default_cache_dir() -> Path:
    """$OLIVE_EXT_CACHE, else ~/.cache/olive-ext. A blank value is refused: `OLIVE_EXT_CACHE=" "` was a folder
    named " " in the working directory."""
    env = os.environ.get("OLIVE_EXT_CACHE")
    if env is not None and env and not env.strip():
        raise UserInputError(f"OLIVE_EXT_CACHE is {env!r}, a blank folder name",
                             hint="set it to a folder (export OLIVE_EXT_CACHE=~/olive-cache), or unset it for "
                             "~/.cache/olive-ext")  # fmt: skip
    return Path(env).expanduser() if env else Path.home() / ".cache" / "olive-ext"


def cache_memo(root: str | Path | None = None) -> FingerprintMemo:
    """The cache's memo of file hashes (``root``: the cache folder, by default :func:`default_cache_dir`)."""
    return FingerprintMemo((Path(root).expanduser() if root else default_cache_dir()) / "fingerprints.json")


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
        self.locks = self.root / "locks"
        try:
            for folder in (self.entries, self.tmp, self.locks):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise unwritable_cache(self.root, f"{e.strerror or e}: {e.filename or self.root}") from e
        self.memo = cache_memo(self.root)
        self._sweep()
        _register_run(self.root)

    # ----------------------------------------------------------------- artifacts

    def get_artifact(self, key: str) -> Artifact | None:
        """The cached artifact for ``key``, or None when there is no whole entry."""
        entry = self.entries / key
        meta = self._read_entry(entry)
        if meta is None or not isinstance(meta.get("artifact"), dict):
            return None
        mark_used(entry)
        return Artifact.from_json(meta["artifact"], relative_to=entry)

    @contextlib.contextmanager
    def lock(self, key: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the lock of ``key`` for the block; ``on_wait`` is called once if another process holds it."""
        if fcntl is None:
            yield
            return
        with open(self.locks / f"{key}.lock", "a+") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            except OSError:  # a file system without locks (some network mounts): rename-if-absent still holds
                yield
                return
            try:
                yield
            finally:  # the lock file stays: removing it would let a waiter and a newcomer lock different files
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

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
        kept = self._read_entry(final) or meta  # another process's entry, if it was there first
        return Artifact.from_json(kept["artifact"], relative_to=final)

    # ----------------------------------------------------------------- plain results (evaluations)

    def get_result(self, key: str) -> dict[str, Any] | None:
        """A cached evaluation result by key, or None."""
        meta = self._read_entry(self.entries / key)
        if meta is not None:
            mark_used(self.entries / key)
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
        """Rename ``work`` to the entry of ``key`` unless a whole entry is there already (then drop ``work``)."""
        final = self.entries / key
        if self._read_entry(final) is not None:
            shutil.rmtree(work, ignore_errors=True)
            return final
        if final.exists():
            shutil.rmtree(final, ignore_errors=True)  # a broken entry from an older, non-atomic writer
        try:
            os.rename(work, final)
        except OSError:
            if self._read_entry(final) is None:  # not a concurrent winner: a real failure
                raise
            shutil.rmtree(work, ignore_errors=True)
        return final

    def scratch_prefix(self, name: str) -> str:
        """A prefix (``<name>.<pid>.``) for this process's temporary files and folders in :attr:`tmp` (with
        ``tempfile``'s ``dir=cache.tmp``): when the process is killed before it removes them, the next run's
        sweep does (in the system's temporary folder they stayed: logits of the parity reference, run requests)."""
        return f"{name}.{os.getpid()}."

    def _sweep(self) -> None:
        """Remove temporary folders and files left by processes that no longer run."""
        for work in self.tmp.iterdir():
            parts = work.name.split(".")
            pid = int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None
            if work.is_dir() and not work.is_symlink():
                if pid is None or not owner_alive(self.root, pid):
                    shutil.rmtree(work, ignore_errors=True)
            elif pid is not None and not owner_alive(self.root, pid):  # a file only when it names its dead
                with contextlib.suppress(OSError):  # process: a Ray run's marker (tmp/ray-run-<id>) names none
                    work.unlink()


RUNS = "runs"  # <cache_dir>/runs/<pid>.<random>.lock: held by each process using the cache
_registered: dict[Path, Any] = {}  # cache root -> this process's open, locked run file (closed at exit)
_MAX_REGISTERED = 8


def _register_run(root: Path) -> None:
    """Hold a lock on a run file of this process in ``root``/runs for the process's life (once per root).

    The file is written and locked under a temporary name, then renamed to ``*.lock``: a prune sees only files
    already locked, so it cannot mistake a starting process for a dead one. Without ``flock`` nothing is held."""
    root = root.resolve()
    if fcntl is None or root in _registered:
        return
    runs = root / RUNS
    name = f"{os.getpid()}.{uuid.uuid4().hex[:8]}"
    try:
        runs.mkdir(exist_ok=True)
        f = open(runs / f"{name}.new", "w")  # noqa: SIM115 - held open (and locked) until the process ends
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            f.write(json.dumps({"pid": os.getpid(), "started": time.time()}))
            f.flush()
            os.rename(runs / f"{name}.new", runs / f"{name}.lock")
        except OSError:
            f.close()
            with contextlib.suppress(OSError):
                (runs / f"{name}.new").unlink()
            return
    except OSError:  # a read-only cache, a file system without locks: nothing to protect against
        return
    if len(_registered) >= _MAX_REGISTERED:  # a long-lived process that opened many caches (a test session): the
        with contextlib.suppress(OSError):  # oldest gives its file up (prune removes it) instead of holding one
            _registered.pop(next(iter(_registered))).close()  # open file per cache for ever
    _registered[root] = f


def running_since(root: Path) -> tuple[float | None, int]:
    """(when the oldest other process using the cache at ``root`` started, how many use it); (None, 0) if none.

    Run files no process holds any more (their process ended) are removed. This process's own runs do not
    count: a prune it makes comes between its runs."""
    runs = root / RUNS
    oldest, count = None, 0
    if fcntl is None or not runs.is_dir():
        return None, 0
    for path in runs.glob("*.lock"):
        if path.name.split(".")[0] == str(os.getpid()):
            continue
        try:
            with open(path) as f:
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:  # held: that process runs
                    started = float(json.loads(path.read_text() or "{}").get("started", 0.0))
                    oldest = started if oldest is None else min(oldest, started)
                    count += 1
                    continue
                path.unlink()  # nobody holds it: its process ended
        except (OSError, ValueError):
            continue
    return oldest, count


def writable_problem(path: Path) -> str | None:
    """Why ``path`` (a folder, existing or to be created) cannot be written, or None; leaves nothing behind.

    Creates and removes a probe folder in ``path`` or its nearest existing ancestor: permission bits
    alone do not tell (root, read-only mounts, immutable folders).
    """
    base = path
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        return f"{base} is a file, not a folder"
    try:
        probe = tempfile.mkdtemp(prefix=".olive-ext-probe-", dir=base)
        os.rmdir(probe)
    except OSError as e:
        return f"{e.strerror or e}: {base}"
    return None


def check_cache_dir(root: str | Path | None) -> Path:
    """The cache folder, refused before any work when it cannot be written (nothing is created)."""
    path = Path(root).expanduser() if root else default_cache_dir()
    problem = writable_problem(path)
    if problem:
        raise unwritable_cache(path, problem)
    return path


def unwritable_cache(root: Path, problem: str) -> UserInputError:
    """The error for a cache folder that cannot be created or written."""
    return UserInputError(
        f"cache folder {root} cannot be written ({problem}); nothing was written",
        hint="pass --cache_dir with a folder you can write (or set $OLIVE_EXT_CACHE)",
    )


def _artifact_content_hash(artifact: Artifact, memo: FingerprintMemo) -> str:
    """Hash an output's own files plus the identity of anything it points at outside itself.

    Run records (a fine-tune's timings: artifacts.RUN_RECORDS) are left out by content_hash, so
    identical work gives identical fingerprints and the cache keys of later steps stay stable.
    """
    h = hashlib.sha256(artifact.kind.encode())
    for path in (artifact.path, artifact.adapter_path):
        if path:
            p = Path(path)
            if not p.exists():
                h.update(f"ref:{path}".encode())
            else:
                h.update(content_hash(p, memo).encode())
    if artifact.gguf_file:
        h.update(artifact.gguf_file.encode())
    # not in the files, but read by the Olive passes after it: an analysis pass's attributes, how Olive loads it
    if artifact.meta.get("olive_attributes"):
        h.update(b"olive_attributes\0" + json.dumps(artifact.meta["olive_attributes"], sort_keys=True).encode())
    if artifact.meta.get("olive_model"):
        h.update(olive_model_identity(artifact.meta["olive_model"], memo).encode())
    return h.hexdigest()


def owner_alive(root: Path, pid: int) -> bool:
    """Whether the process ``pid`` that named a scratch item in the cache at ``root`` may still run: alive here, or
    holding a run file (``runs/<pid>.*.lock``, flock-held for its life). A pid alone is this PID namespace's: a
    Ray worker or a container sharing the cache (NFS, a mounted ~/.cache) swept another's builds in progress."""
    if pid_alive(pid):
        return True
    if fcntl is None:
        return False
    for path in (root / RUNS).glob(f"{pid}.*.lock"):
        try:
            with open(path) as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # held: its process runs, in another namespace or on another host
            return True
        except OSError:
            continue
    return False


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs in this PID namespace (this one: always)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ----------------------------------------------------------------- listing and pruning (`olive-ext cache`)

_SIZE_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class CacheEntry:
    """One whole cache entry as `olive-ext cache ls` shows it."""

    key: str
    path: Path
    kind: str  # the pass that built it, or "evaluation"
    size_bytes: int
    created: float  # epoch seconds: entry.json written
    last_used: float  # epoch seconds: last cache hit (or creation)
    refers_to: frozenset[str]  # keys of other entries whose files this entry's artifact points into
    damaged: bool = False  # entry.json missing or unreadable: never used by a run, removed by any prune


def list_entries(root: str | Path | None = None) -> list[CacheEntry]:
    """Every whole entry of the cache at ``root``, most recently used first. Reads only; creates nothing."""
    entries = (Path(root).expanduser() if root else default_cache_dir()) / "entries"
    found = []
    for path in entries.iterdir() if entries.is_dir() else []:
        info = path / ENTRY_FILE
        try:
            meta = json.loads(info.read_text())
            st = info.stat()
            if not isinstance(meta, dict):
                raise ValueError("not an object")
        except (OSError, ValueError):
            # entries are renamed into entries/ whole, so this one was damaged after (or written by an older,
            # non-atomic writer): no run reads it (a build replaces it), and prune removes it
            if path.is_dir() and not path.is_symlink():
                when = path.stat().st_mtime
                found.append(CacheEntry(path.name, path, "damaged", tree_size(path), when, when, frozenset(), True))
            continue
        found.append(
            CacheEntry(
                key=path.name,
                path=path,
                kind=str(meta.get("pass") or ("evaluation" if "result" in meta else "?")),
                size_bytes=tree_size(path),
                created=st.st_mtime,
                last_used=max(path.stat().st_mtime, st.st_mtime),
                refers_to=_referenced_entries(meta.get("artifact"), entries, path.name),
            )
        )
    found += _checkpoint_entries(entries.parent / CHECKPOINTS)
    return sorted(found, key=lambda e: e.last_used, reverse=True)


CHECKPOINTS = "checkpoints"
"""<cache>/checkpoints/<run id>/: a fine-tune's checkpoints (Ctrl-C, --save_steps), from which a rerun resumes."""


def _checkpoint_entries(folder: Path) -> list[CacheEntry]:
    """Each run's checkpoint folder as an entry of kind "checkpoints" (key ``checkpoints/<run id>``), last used when
    its newest checkpoint was written: prune counts and removes them as it does built models."""
    found = []
    for path in folder.iterdir() if folder.is_dir() else []:
        if not path.is_dir() or path.is_symlink():
            continue
        with contextlib.suppress(OSError):
            when = max([path.stat().st_mtime] + [p.stat().st_mtime for p in path.iterdir()])
            found.append(CacheEntry(f"{CHECKPOINTS}/{path.name}", path, CHECKPOINTS, tree_size(path), when, when,
                                    frozenset()))  # fmt: skip
    return found


def select_for_pruning(
    entries: list[CacheEntry],
    older_than_s: float | None,
    max_size_bytes: int | None,
    now: float | None = None,
    in_use_since: float | None = None,
) -> tuple[list[CacheEntry], list[CacheEntry]]:
    """(entries to delete, least recently used first; entries kept because a running process uses them).

    Those unused for ``older_than_s``, then more until the rest fits in ``max_size_bytes``. An entry goes with
    every entry whose artifact points into it. Damaged entries (no readable entry.json) always go: no run can
    use them. ``in_use_since``: when the oldest running process using the cache started; entries used since
    then, and the entries their artifacts point into, stay."""
    now = time.time() if now is None else now
    by_key = {e.key: e for e in entries}
    dependents: dict[str, list[CacheEntry]] = {}
    for e in entries:
        for ref in e.refers_to:
            dependents.setdefault(ref, []).append(e)
    # a folder's mtime has a resolution of a second or two on some file systems
    in_use = {e.key for e in entries if in_use_since is not None and e.last_used >= in_use_since - 2}
    if in_use_since is not None:  # a running fine-tune may be resuming from checkpoints written long before it began
        in_use |= {e.key for e in entries if e.kind == CHECKPOINTS}
    stack = list(in_use)
    while stack:  # what an entry in use points into is in use too
        for ref in by_key[stack.pop()].refers_to:
            if ref in by_key and ref not in in_use:
                in_use.add(ref)
                stack.append(ref)
    chosen: dict[str, CacheEntry] = {}
    kept: dict[str, CacheEntry] = {}

    def take(e: CacheEntry) -> None:
        if e.key in in_use:  # (an entry in use never depends on one that is not: see above)
            kept[e.key] = e
        elif e.key not in chosen:
            chosen[e.key] = e
            for d in dependents.get(e.key, []):
                take(d)

    oldest_first = sorted(entries, key=lambda e: e.last_used)
    for e in oldest_first:
        if e.damaged or (older_than_s is not None and now - e.last_used > older_than_s):
            take(e)
    if max_size_bytes is not None:
        total = sum(e.size_bytes for e in entries if e.key not in chosen)
        for e in oldest_first:
            if total <= max_size_bytes:
                break
            before = set(chosen)
            take(e)
            total -= sum(chosen[k].size_bytes for k in set(chosen) - before)
    return sorted(chosen.values(), key=lambda e: e.last_used), sorted(kept.values(), key=lambda e: e.last_used)


def delete_entries(root: str | Path | None, doomed: list[CacheEntry]) -> list[CacheEntry]:
    """Delete entries, skipping any being (re)built or locked; returns those deleted.

    Each entry is deleted holding its build lock (``flock`` on ``locks/<key>.lock``, the lock a build
    takes), and is first renamed into tmp/ (atomic): a reader sees a whole entry or none, never half a
    folder, and a deletion killed midway leaves only a tmp/ folder that the next run sweeps."""
    base = Path(root).expanduser() if root else default_cache_dir()
    tmp = base / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    deleted = []
    for e in doomed:
        # checkpoints have no build lock: they are kept whenever another process uses the cache (select_for_pruning)
        lock = contextlib.nullcontext(True) if e.kind == CHECKPOINTS else _unless_locked(base, e.key)
        with lock as free:
            if not free or _being_written(tmp, e.key):
                continue
            with contextlib.suppress(OSError):  # a hit since the listing (a run beside this prune reused it): kept
                if e.kind != CHECKPOINTS and e.path.stat().st_mtime > e.last_used:
                    continue
            trash = tmp / f"{e.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}-pruned"
            try:
                os.rename(e.path, trash)
            except OSError:
                continue  # gone already, or moved by another process
            shutil.rmtree(trash, ignore_errors=True)
            deleted.append(e)
    return deleted


def mark_used(entry: Path) -> None:
    """Record a cache hit as the entry folder's modification time.

    Nothing is added to a whole entry, so its folder's mtime is free to mean "last used"; entry.json's
    mtime stays the creation time. (Access times would not do: reading entry.json, as `cache ls` does,
    moves them on most mounts.)"""
    with contextlib.suppress(OSError):
        os.utime(entry)


def parse_size(text: str) -> int:
    """'2GB', '500MB', '1.5GiB', '0' -> bytes."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise UserInputError(f"--max-size {text!r} is not a size", hint="write it like 2GB, 500MB or 1.5GiB")
    size = float(match.group(1)) * _SIZE_UNITS[unit]
    if size > 2**63:  # 400 nines: float infinity, and an OverflowError traceback before
        raise UserInputError(f"--max-size {text[:40]!r}... is larger than any disk", hint="write it like 2GB or 5TB")
    return int(size)


def parse_duration(text: str) -> float:
    """'7d', '12h', '30m', '2w' -> seconds."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smhdw])\s*", text.lower())
    if match is None:
        raise UserInputError(f"--older-than {text!r} is not a duration", hint="write it like 7d, 12h, 30m or 2w")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def tree_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (links not followed)."""
    total = 0
    for f in path.rglob("*"):
        with contextlib.suppress(OSError):
            if f.is_file() and not f.is_symlink():
                total += f.stat().st_size
    return total


def _referenced_entries(artifact: Any, entries: Path, own: str) -> frozenset[str]:
    """The entries an output entry's artifact points into. An evaluation entry's "artifact" is the evaluated
    model's fingerprint (a string): it points nowhere (`cache ls` and `prune` failed on every such entry)."""
    if not isinstance(artifact, dict):
        return frozenset()
    keys = set()
    for key in ("path", "adapter_path"):
        value = artifact.get(key)
        if value and not str(value).startswith("./"):
            with contextlib.suppress(ValueError):
                keys.add(Path(value).resolve().relative_to(entries.resolve()).parts[0])
    return frozenset(keys - {own})


def _being_written(tmp: Path, key: str) -> bool:
    """A live writer's folder for ``key`` in tmp/ (dead writers' folders are swept by the next run)."""
    for p in tmp.iterdir() if tmp.is_dir() else []:
        parts = p.name.split(".")
        writer = parts[0] == key and len(parts) >= 3 and parts[1].isdigit() and not p.name.endswith("-pruned")
        if writer and owner_alive(tmp.parent, int(parts[1])):
            return True
    return False


@contextlib.contextmanager
def _unless_locked(base: Path, key: str) -> Iterator[bool]:
    """Hold ``key``'s build lock for the block if no other process holds it; yields whether it was free."""
    locks = base / "locks"
    try:
        import fcntl
    except ImportError:  # no flock (Windows): rename-into-tmp alone keeps readers safe
        yield True
        return
    if not locks.is_dir():  # a cache written before builds took locks
        yield True
        return
    with open(locks / f"{key}.lock", "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:  # the lock file stays (builds rely on one file per key)
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
