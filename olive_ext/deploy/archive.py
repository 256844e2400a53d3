"""Deterministic zip archives, and extraction that refuses unsafe members before writing anything."""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from olive_ext.deploy.files import file_kind, scan_tree, visible
from olive_ext.errors import UserInputError

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_UNIX = 3  # ZipInfo.create_system of the members package writes (readers then take their permission bits)
# deflate level: model weights barely compress, so the fastest level. The demo's int8 model (254 MB of weights):
# level 1 7.7 s -> 209 MB, level 6 18.5 s -> 207 MB (benchmarks/RESULTS.md, "Bundle zip level")
_LEVEL = 1


def zip_path_of(folder: Path) -> Path:
    """Where ``--zip`` writes the archive of ``folder``: beside it, named ``<folder>.zip``."""
    return folder.with_name(folder.name + ".zip")


def write_zip(folder: Path, archive: Path, top: str | None = None) -> None:
    """Zip ``folder`` under ``top`` (default: its name) with sorted members, fixed times and permissions.

    Same inputs, same bytes. The archive is written beside ``archive`` and renamed into place, so an
    existing one is replaced whole or not at all.
    """
    top = top or folder.name
    files = scan_tree(folder).files
    partial = archive.with_name(f".{archive.name}.partial-{os.getpid()}")
    try:
        with zipfile.ZipFile(partial, "w") as z:
            for rel in files:
                info = zipfile.ZipInfo(f"{top}/{rel}", date_time=_FIXED_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                info.create_system = _UNIX  # so the permissions above are what readers see
                info.file_size = (folder / rel).stat().st_size  # as writestr sets it: zip64 only when needed
                info._compresslevel = _LEVEL  # type: ignore[attr-defined]  # what writestr(compresslevel=) sets
                # streamed in 1 MiB pieces: writestr of the whole file read 1 GB into memory (2.98 GB peak RSS)
                with open(folder / rel, "rb") as src, z.open(info, "w") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(partial, archive)
    finally:
        partial.unlink(missing_ok=True)


MAX_DEPTH = 32  # path parts of a zip member; package writes at most 4 (top/adapters/name or top/model/sub/file)


def _member_problem(info: zipfile.ZipInfo, seen: set[str]) -> str | None:
    name = info.filename
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in PurePosixPath(name).parts or "\\" in name:
        return "leaves the folder ('..' or backslash)"
    if len(PurePosixPath(name).parts) > MAX_DEPTH:  # unpacking 1100 nested folders was "damaged (maximum recursion)"
        return f"{len(PurePosixPath(name).parts)} folders deep (a bundle is at most {MAX_DEPTH})"
    if name in seen:
        return "appears twice"
    seen.add(name)
    mode = info.external_attr >> 16
    # Only the file-type bits say what a member is; a member with no type bits (0o600 alone, or an
    # archive made on another system) is a plain file. Links and devices are refused.
    # whatever system the member says made it: unzip also makes links of BeOS or Atari members, which passed
    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return f"a {file_kind(mode)}"
    if _UNICODE_PATH in _extra_ids(info.extra):  # unzip names the member by it, verify by the name read above
        return "carries a second name (an Info-ZIP Unicode Path field) that unzip would use"
    return None


_UNICODE_PATH = 0x7075


def _extra_ids(extra: bytes) -> set[int]:
    """The header ids of a zip member's extra fields (id, size, data; repeated)."""
    ids, at = set(), 0
    while at + 4 <= len(extra):
        ident, size = int.from_bytes(extra[at : at + 2], "little"), int.from_bytes(extra[at + 2 : at + 4], "little")
        ids.add(ident)
        at += 4 + size
    return ids


def unsafe_members(archive: Path) -> list[str]:
    """Members with absolute paths, '..' parts, duplicates, or link/device types: each named with the reason."""
    seen: set[str] = set()
    with _open_zip(archive) as z:
        return [f"{visible(i.filename)}: {p}" for i in z.infolist() if (p := _member_problem(i, seen))]


def _open_zip(archive: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as e:
        raise UserInputError(
            f"{archive} is not a readable zip archive ({e}); nothing was extracted",
            hint="pass the bundle folder or the .zip `olive-ext package --zip` wrote (it may be truncated)",
        ) from e


def member_sizes(archive: Path) -> tuple[str, dict[str, int]]:
    """The archive's one top folder and each regular member's declared size by its path under that folder (the
    safety checks of :func:`safe_extract` first); nothing is extracted."""
    _check_members(archive)
    with _open_zip(archive) as z:
        infos = z.infolist()
    top = _one_top(archive, infos)
    return top, {i.filename.split("/", 1)[1]: i.file_size for i in infos if not i.is_dir() and "/" in i.filename}


def read_member(archive: Path, name: str, limit: int) -> bytes | None:
    """Member ``name``'s bytes (None when absent, or when it unpacks to more than ``limit`` bytes)."""
    with _open_zip(archive) as z:
        try:
            info = z.getinfo(name)
        except KeyError:
            return None
        if info.file_size > limit:
            return None
        try:
            return z.read(info)
        except _DAMAGE as e:
            raise _damaged(archive, e) from e


# what reading a member of a truncated or corrupted zip raises
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError)


def _damaged(archive: Path, error: BaseException) -> UserInputError:
    return UserInputError(f"{archive} is damaged ({error}); the bundle cannot be checked",
                          hint="copy the zip again; it may be truncated or corrupted")  # fmt: skip


def _check_members(archive: Path) -> None:
    problems = unsafe_members(archive)
    if problems:
        raise UserInputError(
            f"{archive} has unsafe members; nothing was extracted: " + "; ".join(problems),
            hint="a bundle zip holds regular files under one folder",
        )


def _one_top(archive: Path, infos: list[zipfile.ZipInfo]) -> str:
    tops = {PurePosixPath(i.filename).parts[0] for i in infos if i.filename.strip("/")}
    if len(tops) != 1:
        raise UserInputError(
            f"{archive} must hold one top folder, found: {', '.join(sorted(tops)) or 'nothing'}",
            hint="zip the bundle folder itself (what `olive-ext package --zip` writes)",
        )
    return tops.pop()


def safe_extract(archive: Path, dest: Path) -> Path:
    """Extract after checking every member; returns the single top folder of the archive."""
    _check_members(archive)
    with _open_zip(archive) as z:
        infos = z.infolist()
        top = _one_top(archive, infos)
        _check_space(archive, infos, dest)
        try:
            z.extractall(dest)
        except _DAMAGE as e:
            raise _damaged(archive, e) from e
    return dest / top


def _check_space(archive: Path, infos: list[zipfile.ZipInfo], dest: Path) -> None:
    # extraction stops at each member's declared size, so the declared total bounds what is written
    total = sum(i.file_size for i in infos)
    free = shutil.disk_usage(dest).free
    if total > free:
        raise UserInputError(
            f"{archive} declares {total:,} bytes unpacked, more than the {free:,} bytes free in {dest}; "
            "nothing was extracted",
            hint="free some space or set TMPDIR to a larger disk",
        )
