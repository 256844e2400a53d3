"""Writing a run's output folder without ever clobbering one by accident.

Everything is written to a hidden staging folder beside the destination and moved
into place at the end; an existing non-empty destination is replaced only with
``overwrite``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from olive_ext.errors import OutputExistsError


def ensure_output_free(path: str | Path, overwrite: bool) -> Path:
    """Fail before any work when ``path`` exists, is not empty, and overwrite is off."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise OutputExistsError(str(p))
    if p.is_dir() and any(p.iterdir()) and not overwrite:
        raise OutputExistsError(str(p))
    return p


@contextlib.contextmanager
def staged_output(path: str | Path, overwrite: bool) -> Iterator[Path]:
    """Yield a staging folder; on success it replaces ``path`` (checked again at the end)."""
    dest = ensure_output_free(path, overwrite)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    ensure_output_free(dest, overwrite)
    if dest.exists():
        shutil.rmtree(dest)
    os.rename(stage, dest)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON (paths and other objects as strings)."""
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def write_yaml(path: Path, data: Any, header: str | None = None) -> None:
    """Write ``data`` as YAML, with ``header`` as a leading comment."""
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    path.write_text((f"# {header}\n" if header else "") + text)
