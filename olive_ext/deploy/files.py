"""Reading a bundle folder without trusting it: links and special files are named, never followed or read.

A bundle arrives from elsewhere. A symlink to /dev/zero would make a checksum loop forever, a FIFO would
block its reader, and a link to a folder could walk out of the bundle; so the tree is listed with
``lstat`` only, and files are opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked to be regular files
(on the open descriptor, so a file swapped for a link after the listing is refused too).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

_CHUNK = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
# adapter names become file names (adapters/<name>.onnx_adapter): letters, digits, '.', '_', '-', no leading dot
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """``text`` with control characters (newlines, terminal escapes, bidirectional overrides) shown escaped: a
    bundle's file and member names are printed, and one could erase a FAIL line and print "bundle verified"."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


class UnsafeFileError(ValueError):
    """A path that is not a regular file (a link, a folder, a device, a FIFO, a socket)."""


@dataclass
class Tree:
    """What a folder holds, listed without following links: regular files, and everything else as problems."""

    files: list[str] = field(default_factory=list)  # relative posix paths, sorted
    problems: list[str] = field(default_factory=list)  # one line each: the path and what it is
    folders: list[str] = field(default_factory=list)  # relative posix paths of the folders below the root


def scan_tree(root: Path) -> Tree:
    """List ``root`` recursively with lstat: regular files are kept, links and special files are named."""
    tree = Tree()
    _scan(root, root, tree)
    tree.files.sort()
    tree.problems.sort()
    return tree


def _scan(root: Path, top: Path, tree: Tree) -> None:
    """Walk with a list of folders to visit, not recursion: 1100 nested folders were a RecursionError traceback."""
    folders = [top]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            tree.problems.append(f"{folder.relative_to(root).as_posix() or '.'}: cannot be listed ({e.strerror})")
            continue
        for entry in entries:
            path = Path(entry.path)
            rel = path.relative_to(root).as_posix()
            if entry.is_symlink():
                tree.problems.append(f"{rel}: {describe_link(path)}; links are not followed")
            elif entry.is_dir(follow_symlinks=False):
                folders.append(path)
                tree.folders.append(rel)
            elif entry.is_file(follow_symlinks=False):
                tree.files.append(rel)
            else:
                kind = file_kind(entry.stat(follow_symlinks=False).st_mode)
                tree.problems.append(f"{rel}: a {kind}, not a regular file; it was not read")


def describe_link(path: Path) -> str:
    """Say where a symlink points, without reading what it points to."""
    target = os.readlink(path)
    try:
        st = path.stat()  # stat, not open: says what the target is without reading it
    except FileNotFoundError:
        return f"a symbolic link to {target}, which does not exist (dangling)"
    except OSError as e:  # a loop of links, or a target we may not look at
        return f"a symbolic link to {target}, which cannot be resolved ({e.strerror})"
    if stat.S_ISDIR(st.st_mode):
        return f"a symbolic link to the folder {target}"
    return f"a symbolic link to {target} (a {file_kind(st.st_mode)})"


def file_kind(mode: int) -> str:
    """A file type in words, from the type bits of a mode (permission bits play no part)."""
    for test, name in (
        (stat.S_ISREG, "regular file"),
        (stat.S_ISDIR, "folder"),
        (stat.S_ISLNK, "symbolic link"),
        (stat.S_ISFIFO, "named pipe (FIFO)"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "special file"


def _open_regular(path: Path) -> int:
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as e:
        if e.errno == errno.ELOOP:  # O_NOFOLLOW met a link (one that appeared after the folder was listed)
            raise UnsafeFileError(f"{path} is a symbolic link; it was not followed") from e
        raise UnsafeFileError(f"{path} cannot be opened as a regular file: {e.strerror}") from e
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise UnsafeFileError(f"{path} is a {file_kind(mode)}, not a regular file; it was not read")
    return fd


def hash_regular(path: Path) -> tuple[str, int]:
    """(sha256, size) of a regular file; anything else raises UnsafeFileError before a byte is read."""
    h = hashlib.sha256()
    size = 0
    with os.fdopen(_open_regular(path), "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def regular_size(path: Path) -> int:
    """The size of a regular file, read from its open descriptor; anything else raises UnsafeFileError."""
    fd = _open_regular(path)
    try:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; UnsafeFileError otherwise."""
    with os.fdopen(_open_regular(path), "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise UnsafeFileError(f"{path} is over {limit:,} bytes; it was not read")
    return data


def plain_name(name: object) -> bool:
    """True for a name that is safe as a single file name: no separators, no '..', no leading dot."""
    return isinstance(name, str) and _PLAIN_NAME.fullmatch(name) is not None


def relative_path_problem(path: object) -> str | None:
    """Why ``path`` (from a manifest) is not a plain relative path inside the bundle, or None when it is."""
    if not isinstance(path, str) or not path:
        return "is not a non-empty string"
    if "\\" in path or "\x00" in path:
        return "holds a backslash or NUL"
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return "is absolute"
    parts = PurePosixPath(path).parts
    if any(p in {"..", "."} for p in parts) or path != PurePosixPath(path).as_posix():
        return "is not a plain relative path ('..', '.', or doubled slashes)"
    return None
