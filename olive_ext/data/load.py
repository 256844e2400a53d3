"""Loading datasets: local json/jsonl/csv/parquet files or hub datasets, with split expressions."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olive_ext.artifacts import hash_file
from olive_ext.data.spec import _SUFFIX_BUILDER, DatasetSpec
from olive_ext.errors import UserInputError

if TYPE_CHECKING:
    import datasets

LOCAL_BUILDERS = {"json", "csv", "parquet"}


def builder_for_file(path: str) -> str | None:
    """'json' for .json/.jsonl, 'csv', 'parquet', else None."""
    return _SUFFIX_BUILDER.get(Path(path).suffix.lower())


def load_rows(spec: DatasetSpec) -> datasets.Dataset:
    """The rows of one dataset split, as a ``datasets.Dataset``; errors name the file, split or hub id."""
    import datasets

    name, files = spec.name, spec.data_files
    if name not in LOCAL_BUILDERS and builder_for_file(name) and Path(name).exists():
        name, files = builder_for_file(name) or "json", name  # `-d data.jsonl` is accepted too
    kwargs: dict[str, Any] = {}
    if name in LOCAL_BUILDERS:
        file_list = [files] if isinstance(files, str) else list(files or [])
        missing = [f for f in file_list if not Path(f).exists()]
        if missing:
            raise UserInputError(f"data file {missing[0]!r} does not exist")
        kwargs["data_files"] = file_list
    elif files:
        kwargs["data_files"] = files
    try:
        as_written = _json_lines_as_written(kwargs["data_files"], spec.split) if name == "json" else None
        ds = as_written if as_written is not None else datasets.load_dataset(name, split=spec.split, **kwargs)
    except (FileNotFoundError, ConnectionError) as e:
        raise UserInputError(
            f"dataset {name!r} could not be loaded: {e}",
            hint="for a local file use -d json --data_files file.jsonl (or csv/parquet); "
            "for a hub dataset this machine must reach the hub or have it in the local cache",
        ) from e
    except ValueError as e:
        if "corresponds to no data" in str(e):
            raise UserInputError(f"split {spec.split!r} of dataset {name!r} is empty") from e
        if "split" in str(e).lower() or "instruction" in str(e).lower():
            raise UserInputError(f"split {spec.split!r} of dataset {name!r}: {e}") from e
        raise UserInputError(f"dataset {name!r} could not be loaded: {e}") from e
    except Exception as e:  # datasets wraps hub/offline failures in its own exception types
        if type(e).__module__.startswith(("datasets", "huggingface_hub", "requests", "httpx")):
            raise UserInputError(
                f"dataset {name!r} could not be loaded ({type(e).__name__}: {e})",
                hint="offline? use a local file: -d json --data_files file.jsonl",
            ) from e
        raise
    if len(ds) == 0:
        raise UserInputError(f"split {spec.split!r} of dataset {name!r} is empty")
    if spec.max_samples is not None and len(ds) > spec.max_samples:
        ds = ds.select(range(spec.max_samples))
    return ds


def spec_identity(spec: DatasetSpec, memo: Any = None) -> dict[str, Any]:
    """The spec plus a content hash of its local files, for cache keys (a hub dataset: its name and split)."""

    files = spec.data_files if isinstance(spec.data_files, list) else [spec.data_files] if spec.data_files else []
    if not files and builder_for_file(spec.name) and Path(spec.name).exists():
        files = [spec.name]
    hashes = {}
    for f in files:
        p = Path(f)
        if p.is_file():
            hashes[p.name] = memo.file_hash(p) if memo is not None else hash_file(p)
    return {"spec": spec.model_dump(mode="json"), "files": hashes}


_DATE_LIKE = re.compile(r"^\s*\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*$")


def _json_lines_as_written(files: list[str], split: str) -> Any:
    """JSON-lines rows with date-like strings kept as written, or None to use the datasets reader.

    The datasets JSON reader (pyarrow) turns strings like "2021-03-05" into timestamps, so an
    answer column of ISO dates would come back as "2021-03-05 00:00:00". When such strings
    appear, the rows are read with the json module instead (same split expressions).
    """
    import json

    import datasets

    rows: list[Any] = []
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError):
            return None
        if text.lstrip().startswith("["):
            return None  # a JSON array document: leave it to the datasets reader
        try:
            rows += [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError:
            return None
    if not rows or not all(isinstance(r, dict) for r in rows):
        return None
    if not any(isinstance(v, str) and _DATE_LIKE.match(v) for r in rows[:1000] for v in r.values()):
        return None
    try:
        table = datasets.Dataset.from_list(rows)
    except Exception:
        return None
    instruction = datasets.ReadInstruction.from_spec(split)
    ranges = instruction.to_absolute({"train": len(table)})
    if any(r.splitname != "train" for r in ranges):
        raise ValueError(f"Unknown split {split!r}: a local file has one split, 'train'")
    indices = [i for r in ranges for i in range(r.from_, r.to)]
    if not indices:
        raise ValueError(f"Instruction {split!r} corresponds to no data!")
    return table.select(indices)
