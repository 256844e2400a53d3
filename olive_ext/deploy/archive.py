"""Deterministic zip archives, and extraction that refuses unsafe members before writing anything."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath

from olive_ext.errors import UserInputError

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def write_zip(folder: Path, archive: Path) -> None:
    """Zip ``folder`` with sorted members, fixed times and permissions: same inputs, same bytes."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    with zipfile.ZipFile(archive, "w") as z:
        for f in files:
            info = zipfile.ZipInfo(f"{folder.name}/{f.relative_to(folder).as_posix()}", date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.create_system = 3  # unix, so the permissions above are what readers see
            with open(f, "rb") as src:
                z.writestr(info, src.read(), compresslevel=6)


def unsafe_members(archive: Path) -> list[str]:
    """Members with absolute paths, '..' parts, or link/device types: each named with the reason."""
    problems = []
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            name = info.filename
            path = PurePosixPath(name)
            mode = info.external_attr >> 16
            if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
                problems.append(f"{name}: absolute path")
            elif ".." in path.parts or "\\" in name:
                problems.append(f"{name}: leaves the folder ('..' or backslash)")
            elif mode and (stat.S_ISLNK(mode) or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))):
                problems.append(f"{name}: a link or special file")
    return problems


def safe_extract(archive: Path, dest: Path) -> Path:
    """Extract after checking every member; returns the single top folder of the archive."""
    problems = unsafe_members(archive)
    if problems:
        raise UserInputError(f"{archive} has unsafe members; nothing was extracted: " + "; ".join(problems))
    with zipfile.ZipFile(archive) as z:
        tops = {PurePosixPath(n).parts[0] for n in z.namelist() if n.strip("/")}
        if len(tops) != 1:
            raise UserInputError(f"{archive} must hold one top folder, found: {', '.join(sorted(tops))}")
        z.extractall(dest)
    return dest / tops.pop()
