"""Moving models and data between machines that do not share a file system: folders as tar bytes.

The Ray executor sends a run's inputs (the model, its adapter, the data files) to a worker that cannot
see them, and brings a built candidate back into the driver's cache, as tar archives in Ray's object
store. Unpacking goes into a fresh folder that is renamed into place only when whole, as the cache does.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import uuid
from pathlib import Path

__all__ = ["pack", "unpack_once"]


def pack(members: dict[str, Path]) -> bytes:
    """A tar (uncompressed: models do not shrink much, and CPUs are busy) of each path under its name."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, path in members.items():
            tar.add(str(path), arcname=name, recursive=True)
    return buffer.getvalue()


def unpack_once(data: bytes, dest: Path) -> Path:
    """Extract ``data`` to ``dest`` unless a whole copy is there already; returns ``dest``.

    Extracted into a sibling temporary folder and renamed: a reader never sees half a copy, and two
    workers unpacking the same inputs at once keep one copy. Members that would leave the folder
    (absolute paths, ``..``, links outward, devices) are refused by tarfile's ``data`` filter."""
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = dest.parent / f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
            _extract_inside(tar, work)
        try:
            os.rename(work, dest)
        except OSError:
            if not dest.is_dir():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def digest(data: bytes) -> str:
    """A short content name for a packed archive."""
    return hashlib.sha256(data).hexdigest()[:16]


def _extract_inside(tar: tarfile.TarFile, work: Path) -> None:
    """Extract with tarfile's ``data`` filter; on a Python without it (3.11.0-3.11.3, 3.10 before 3.10.12:
    Debian 12's 3.11.2 failed with "unexpected keyword argument 'filter'"), only regular files and folders with
    relative names that stay inside are taken, and anything else is refused, as the filter would."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(work, filter="data")
        return
    root = work.resolve()
    members = tar.getmembers()
    for member in members:
        target = (work / member.name).resolve()
        if not (member.isfile() or member.isdir()) or os.path.isabs(member.name) or (
                target != root and root not in target.parents):  # fmt: skip
            raise tarfile.TarError(f"{member.name!r}: not a regular file or folder inside the archive's folder")
    tar.extractall(work, members=members)  # every member was checked above
