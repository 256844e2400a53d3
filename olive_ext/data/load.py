"""Loading datasets: local json/jsonl/csv/parquet files or hub datasets, with split expressions."""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olive_ext.artifacts import hash_file
from olive_ext.data.spec import _SUFFIX_BUILDER, DatasetSpec
from olive_ext.errors import UserInputError

if TYPE_CHECKING:
    import datasets

LOCAL_BUILDERS = {"json", "csv", "parquet"}
_CHUNK = 1 << 20
_FORMAT_HINT = {
    "json": 'a JSON-lines file holds one object per line, e.g. {"question": "...", "answer": "..."}',
    "csv": "a CSV file holds a header line and one row per line",
    "parquet": "give a parquet table (or -d json / -d csv for text files)",
}


def builder_for_file(path: str) -> str | None:
    """'json' for .json/.jsonl, 'csv', 'parquet', else None."""
    return _SUFFIX_BUILDER.get(Path(path).suffix.lower())


# datasets' builders for suffixes -d does not take as a file itself (`-d notes.txt`): said in the hint
_OTHER_SUFFIX_BUILDER = {".txt": "text", ".text": "text", ".md": "text", ".arrow": "arrow"}


def _builder_hint(path: str) -> str:
    """``-d BUILDER --data_files PATH`` for a file given to -d, the builder from its suffix (compressed too)."""
    name = Path(path).name.lower()
    for suffix in _COMPRESSED:
        name = name.removesuffix(suffix)
    suffix = Path(name).suffix
    builder = _SUFFIX_BUILDER.get(suffix) or _OTHER_SUFFIX_BUILDER.get(suffix)
    return f"-d {builder or 'json|csv|parquet|text'} --data_files {path}"


def local_files(spec: DatasetSpec) -> tuple[str, list[str]]:
    """(builder, files) of a dataset read from local files, or (hub id, []) for a hub dataset; a file given as
    the name that is not json/csv/parquet by its suffix is refused with the flags that read it."""
    name, files = spec.name, spec.data_files
    if name not in LOCAL_BUILDERS and builder_for_file(name) and Path(name).exists():
        name, files = builder_for_file(name) or "json", name  # `-d data.jsonl` is accepted too
    elif Path(name).expanduser().is_file():  # datasets said "Couldn't find any data file at" this very file
        raise UserInputError(f"-d {name} is a file: -d takes a builder (json, csv, parquet, text) or a hub id, "
                             "and --data_files the file", hint=f"pass {_builder_hint(name)}")  # fmt: skip
    if name not in LOCAL_BUILDERS:
        return name, []
    return name, [files] if isinstance(files, str) else list(files or [])


def check_data_files(spec: DatasetSpec) -> None:
    """Refuse, before any work, a local data file that is missing, unreadable, empty, not UTF-8 or not its format,
    and files of several formats together (one reader reads them all: a CSV beside JSON lines was "not JSON")."""
    builder, files = local_files(spec)
    kinds = sorted({kind for f in files if (kind := builder_for_file(f))})
    if len(kinds) > 1:
        raise UserInputError(f"--data_files mixes {' and '.join(kinds)} files ({', '.join(files)}): one dataset is "
                             "read with one reader", hint="convert them to one format")  # fmt: skip
    for file in files:
        check_data_file(Path(file), builder)


def check_data_file(path: Path, builder: str) -> None:
    """One local data file: it exists, is a readable file, holds something, and looks like ``builder``'s format."""
    if not path.exists():
        pattern = any(c in str(path) for c in "*?[")  # a glob is expanded to its files when it matches any
        raise UserInputError(f"data file {path} {'matches no file' if pattern else 'does not exist'}",
                             hint="check the path (relative to where you run the command, or to the recipe file "
                             "for recipes)")  # fmt: skip
    if not path.is_file():
        raise UserInputError(f"data file {path} is not a file", hint=f"name the file itself in --data_files, or read "
                             f"the folder's files: --data_files '{path}/*.jsonl' (or -d {path})")  # fmt: skip
    if path.name == LLAMA_FACTORY_REGISTRY:
        raise _registry_error(path)
    compressed = _COMPRESSED.get(path.suffix.lower())
    try:
        with compressed(path, "rb") if compressed else open(path, "rb") as f:  # the datasets reader decompresses
            head = f.read(_CHUNK)
            if builder == "parquet":
                _check_parquet(path, f, head)
            else:
                _check_text(path, f, head, builder, whole_file=compressed is None)
    except EOFError as e:  # a compressed file cut short
        raise UserInputError(f"data file {path} is cut short ({e})", hint="copy or compress it again") from e
    except OSError as e:
        raise UserInputError(f"data file {path} cannot be read ({e.strerror or e})",
                             hint="check its permissions") from e  # fmt: skip


LLAMA_FACTORY_REGISTRY = "dataset_info.json"  # LLaMA-Factory's list of datasets: names -> files and columns
_ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "system": "system",
                   "history": "history"}  # fmt: skip


def registry_flags(path: Path) -> dict[str, tuple[str, list[str]]]:
    """Each entry of LLaMA-Factory's dataset_info.json at ``path`` -> the data flags that read it, and notes (a
    file that is not there, columns to rename)."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    ways: dict[str, tuple[str, list[str]]] = {}
    for name, entry in (entries.items() if isinstance(entries, dict) else []):
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("hf_hub_url"), str):  # a hub dataset: its id
            ways[str(name)] = (f"-d {entry['hf_hub_url']}", [])
            continue
        if not isinstance(entry.get("file_name"), str):
            continue
        file = path.parent / entry["file_name"]
        flags = f"-d json --data_files {file}"
        notes = [] if file.exists() else ["that file is not there"]
        columns: dict[str, Any] = entry["columns"] if isinstance(entry.get("columns"), dict) else {}
        if entry.get("formatting") == "sharegpt":
            field = columns.get("messages", "conversations")
            flags += f" --messages_field {field}" if field != "conversations" else ""
            if columns.get("system", "system") != "system":  # read from "system" only: its prompt was dropped
                notes.append(f"rename its column {columns['system']} -> system")
            tags = entry["tags"] if isinstance(entry.get("tags"), dict) else {}
            # only tags olive-ext does not read as they are: LLaMA-Factory's documented OpenAI-style entry
            # (role/content, user/assistant) was told to rename them, and it reads as it is
            # formats imports this module: the role names it reads, beside its role tables, come in here
            from olive_ext.data.formats import READ_TAGS

            unread = {k: v for k, v in tags.items() if v not in READ_TAGS.get(str(k), {v})}
            if columns.get("tools", "tools") != "tools" or unread:
                said = ", ".join(f"{k}={v!r}" for k, v in unread.items())
                notes.append("olive-ext reads ShareGPT roles and columns by their default names (from/value or "
                             f"role/content, human/gpt or user/assistant...): rename {said or 'its tools column'} "
                             "to those")  # fmt: skip
        renamed = {k: v for k, v in columns.items() if k in _ALPACA_COLUMNS and v != _ALPACA_COLUMNS[k]}
        if renamed and entry.get("formatting", "alpaca") == "alpaca":
            notes.append("rename its columns " + ", ".join(f"{v} -> {_ALPACA_COLUMNS[k]}" for k, v in renamed.items())
                         + ", or write them into --text_template")  # fmt: skip
        ways[str(name)] = (flags, notes)
    return ways


def _with_notes(flags: str, notes: list[str]) -> str:
    return flags + (f" ({'; '.join(notes)})" if notes else "")


def _registry_error(path: Path) -> UserInputError:
    """What to pass instead of LLaMA-Factory's dataset_info.json: each local entry's file and flags."""
    ways = [f"{name}: {_with_notes(flags, notes)}" for name, (flags, notes) in registry_flags(path).items()]
    return UserInputError(
        f"{path} is LLaMA-Factory's dataset registry, not data: olive-ext reads the data files its entries name",
        hint="; ".join(ways[:4]) + (" ..." if len(ways) > 4 else "") if ways else "give an entry's file_name with "
        "-d json --data_files FILE",
    )


def _check_parquet(path: Path, f: Any, head: bytes) -> None:
    if not head:
        raise UserInputError(f"data file {path} is empty", hint=_FORMAT_HINT["parquet"])
    f.seek(-min(4, len(head)), 2)
    if not head.startswith(b"PAR1") or f.read(4) != b"PAR1":
        raise UserInputError(f"data file {path} is not a parquet file", hint=_FORMAT_HINT["parquet"])


# byte-order marks of the encodings a non-UTF-8 text file announces (UTF-32 first: its LE mark starts like UTF-16's)
_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
         (b"\xfe\xff", "utf-16"))  # fmt: skip


def _compressed_openers() -> dict[str, Any]:
    import bz2
    import gzip
    import lzma

    return {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


_COMPRESSED = _compressed_openers()  # a .jsonl.gz was "not UTF-8 text (byte 0x8b)" with a hint to iconv it


def _check_text(path: Path, f: Any, head: bytes, builder: str, whole_file: bool = True) -> None:
    """UTF-8 throughout (decoded chunk by chunk), not blank, and a JSON file starts like JSON; ``whole_file``: the
    lines of a JSON-lines file are checked one by one (the file on disk is the text: not compressed)."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    first = ""  # the first non-blank text, for the format check
    lines, chunk = 0, head
    while True:
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as e:
            line = lines + e.object[: e.start].count(b"\n") + 1
            converted = path.with_suffix(".utf8" + path.suffix)
            if head.startswith(b"PAR1"):  # the hint a latin-1 file needs would garble these
                raise UserInputError(f"data file {path} is a Parquet file, read here as {builder}",
                                     hint="pass -d parquet") from None  # fmt: skip
            source = next((name for bom, name in _BOMS if head.startswith(bom)), "latin1")
            raise UserInputError(
                f"data file {path} is not UTF-8 text (byte 0x{e.object[e.start]:02x} on line {line})",
                hint=f"save it as UTF-8, e.g. iconv -f {source} -t utf-8 {path} > {converted}",
            ) from None
        first = first or text.lstrip()
        if not chunk:
            break
        lines += chunk.count(b"\n")
        chunk = f.read(_CHUNK)
    first = first.removeprefix("\ufeff")  # a byte-order mark is allowed
    if not first.strip():
        raise UserInputError(f"data file {path} is empty", hint=_FORMAT_HINT.get(builder))
    if builder == "json" and first[0] not in "{[":
        raise UserInputError(
            f"data file {path} is not JSON (it starts with {first[:20]!r})",
            hint=_FORMAT_HINT["json"] + "; for CSV use -d csv",
        )
    if builder == "json" and first[0] == "{" and whole_file:
        _check_json_lines(path)


def _check_json_lines(path: Path) -> None:
    """Each non-blank line of a JSON-lines file is one JSON object; the first that is not is named by its line.

    A file that is one JSON document over many lines (pretty-printed) is left to the datasets reader. A whole file
    is parsed once (``_rows_as_written``, shared with the readers after it); line by line only to name a bad line."""
    import json

    if _rows_as_written(path) is not None:  # every line (or the array) holds an object
        return
    with open(path, encoding="utf-8-sig") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                if number == 1 and _one_json_document(path):
                    return
                raise UserInputError(
                    f"data file {path} line {number} is not valid JSON ({e}): {line.strip()[:60]!r}",
                    hint=_FORMAT_HINT["json"],
                ) from None
            if not isinstance(row, dict):
                raise UserInputError(
                    f"data file {path} line {number} is a JSON {type(row).__name__}, not an object",
                    hint=_FORMAT_HINT["json"],
                )


def _one_json_document(path: Path) -> bool:
    import json

    try:
        json.loads(path.read_text(encoding="utf-8-sig"))
    except ValueError:
        return False
    return True


def first_row_columns(spec: DatasetSpec) -> list[str] | None:
    """The columns of a local JSON-lines, CSV or parquet dataset, read from its first row or schema (cheap); None
    for hub datasets and JSON documents, whose columns are only known once loaded."""
    import csv
    import itertools
    import json

    builder, files = local_files(spec)
    if not files or not Path(files[0]).is_file():
        return None
    path = Path(files[0])
    opener = _COMPRESSED.get(path.suffix.lower(), open)
    if builder == "csv":
        with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
            return next(csv.reader(f, delimiter=csv_separator(path)), None)
    if builder == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    if builder == "json":
        columns: dict[str, None] = {}
        if opener is open and _first_char(path) == "[" and path.stat().st_size <= _COUNTED_BYTES:
            # a JSON array: its columns were known only once the model had loaded (a template's column missing)
            for row in (_rows_as_written(path) or [])[:_COLUMN_ROWS]:
                columns.update(dict.fromkeys(row))
            return list(columns) or None
        # the columns of the first rows together, as datasets' reader gives them (a row without one holds None): the
        # first row alone named the wrong columns ("which the data lacks") when it was the row lacking one
        with opener(path, "rt", encoding="utf-8-sig") as f:
            for line in itertools.islice((line for line in f if line.strip()), _COLUMN_ROWS):
                try:
                    row = json.loads(line)
                except ValueError:
                    return None if not columns else list(columns)  # a JSON document, not JSON lines
                if not isinstance(row, dict):
                    return None
                columns.update(dict.fromkeys(row))
        return list(columns) or None
    return None


_COLUMN_ROWS = 1000  # rows read for their columns before work (a few ms)


def _empty_split(spec: DatasetSpec, name: str) -> UserInputError:
    """'split ... is empty', with the row count of the whole split it slices where that can be read."""
    base = spec.split.split("[", 1)[0].strip()
    hint = None
    if base != spec.split:
        try:
            whole = spec.model_copy(update={"split": base, "max_samples": None})
            hint = _slice_hint(base, len(rows_for_reading(whole)))
        except Exception:  # only a hint: the error stands without it
            hint = None
    return UserInputError(f"split {spec.split!r} of dataset {name!r} is empty", hint=hint)


def _slice_hint(base: str, rows: int) -> str:
    return f"split {base!r} has {rows} row{'s' if rows != 1 else ''}: slice inside it, e.g. '{base}[:{rows}]'"


_COUNTED_BYTES = 64 << 20  # JSON arrays and CSV files are parsed to count their rows up to this size


def check_split_rows(spec: DatasetSpec) -> None:
    """Before work: the split of a local json/csv/parquet dataset picks rows (:func:`check_file_split`). Both
    problems were said by the loader at the step that read the data, after the steps before it had run."""
    builder, files = local_files(spec)
    if builder in LOCAL_BUILDERS and files and saved_dataset_folder(spec.name) is None:
        check_file_split(builder, files, spec.split)


def check_file_split(builder: str, files: list[str], split: str) -> None:
    """``split`` of local files read by the datasets library's ``builder`` (json, csv, parquet, text) picks rows: a
    local file has one split, 'train', and a slice past its end ('train[4096:4224]' of 570 rows) is empty. Read
    from a row count (a parquet footer, the lines of a JSON-lines or text file, a JSON array or CSV file parsed up
    to 64 MB), with no ``datasets`` import for 'train' and absolute slices; files it cannot count (compressed,
    larger) are left to the loader."""
    base = split.split("[", 1)[0].strip()
    if base != "train":
        raise UserInputError(f"split {split!r} of dataset {builder!r}: local data files have one split, 'train'",
                             hint="slice it, e.g. 'train[:90%]' to train and 'train[90%:]' to evaluate")  # fmt: skip
    counts = [_row_count(Path(f), builder) for f in files]
    if None in counts:
        return
    rows = sum(c for c in counts if c is not None)
    if _split_size(split, rows) == 0:
        hint = _slice_hint(base, rows) if base != split else None
        raise UserInputError(f"split {split!r} of dataset {builder!r} is empty", hint=hint)


def _split_size(split: str, rows: int) -> int:
    """How many of ``rows`` rows the split ``train[...]`` picks, as ``datasets`` picks them."""
    match = _ABSOLUTE_SPLIT.match(split.replace(" ", ""))
    if match is not None:  # train, train[a:b] (no import)
        start, stop = int(match.group(1) or 0), int(match.group(2)) if match.group(2) else rows
        return max(0, min(stop, rows) - start)
    import datasets

    ranges = datasets.ReadInstruction.from_spec(split).to_absolute({"train": rows})
    return sum(max(0, r.to - r.from_) for r in ranges)


def _row_count(path: Path, builder: str) -> int | None:
    """The rows ``datasets`` reads from one uncompressed local file, or None where that is not cheap to know (or the
    file is not ``builder``'s: its own check says so)."""
    if path.suffix.lower() in _COMPRESSED or not path.is_file():
        return None
    if builder == "parquet":
        import pyarrow.parquet as pq

        try:
            return int(pq.read_metadata(path).num_rows)
        except Exception:  # not parquet: check_data_file says so
            return None
    small = path.stat().st_size <= _COUNTED_BYTES
    if builder == "json":  # a JSON array parsed (small ones), JSON lines counted
        if _first_char(path) != "[":
            return _json_lines(path)
        rows = _rows_as_written(path) if small else None
        return len(rows) if rows is not None else None
    if not small:
        return None
    if builder == "text":  # a row per line, blank ones too, split as str.splitlines splits
        try:
            return len(path.read_text(encoding="utf-8").splitlines())
        except UnicodeDecodeError:
            return None
    import csv

    try:
        with open(path, encoding="utf-8-sig", newline="") as f:  # pandas skips blank lines; a quoted newline: one row
            return max(0, sum(1 for row in csv.reader(f, delimiter=csv_separator(path)) if row) - 1)
    except (UnicodeDecodeError, csv.Error):  # not UTF-8 CSV: check_data_file says so
        return None


def _first_char(path: Path) -> str:
    with open(path, "rb") as f:
        return f.read(4096).decode("utf-8-sig", "ignore").lstrip()[:1]


def _json_lines(path: Path) -> int | None:
    """The non-blank lines of a JSON-lines file, or None when its first one is no JSON object (one JSON document
    written over several lines: the loader reads it otherwise)."""
    with open(path, "rb") as f:
        lines = (line for line in f if line.strip())
        first = next(lines, None)
        try:
            if first is None or not isinstance(json.loads(first), dict):
                return None
        except ValueError:
            return None
        return 1 + sum(1 for _ in lines)


def csv_separator(path: str | Path) -> str:
    """A tab for .tsv and .tab files (compressed too: rows.tsv.gz), else a comma."""
    name = Path(path).name.lower()
    for suffix in _COMPRESSED:
        name = name.removesuffix(suffix)
    return "\t" if name.endswith((".tsv", ".tab")) else ","


def _csv_as_written(spec: DatasetSpec) -> dict[str, Any]:
    """CSV cells as the text the file holds: pandas would read "02134" as 2134, "3.10" as 3.1, a column with an
    empty cell as floats ("4" -> "4.0"), and "NA", "null", "None" or "N/A" as missing."""
    import datasets

    columns = first_row_columns(spec) or []
    kwargs: dict[str, Any] = {"keep_default_na": False, "na_filter": False}
    files = local_files(spec)[1]
    if files and csv_separator(files[0]) != ",":
        kwargs["sep"] = csv_separator(files[0])
    if columns and len(set(columns)) == len(columns):  # duplicate names: pandas renames them, leave it to the loader
        kwargs["features"] = datasets.Features({c: datasets.Value("string") for c in columns})
    return kwargs


def load_rows(spec: DatasetSpec) -> datasets.Dataset:
    """The rows of one dataset split, as a ``datasets.Dataset``; errors name the file, split or hub id."""
    import datasets

    name, file_list = local_files(spec)
    kwargs: dict[str, Any] = {}
    if name in LOCAL_BUILDERS:
        check_data_files(spec)
        kwargs["data_files"] = file_list
        if name == "csv":
            kwargs.update(_csv_as_written(spec))
    elif spec.data_files:
        kwargs["data_files"] = spec.data_files
    elif csvs := _csv_folder(name):  # `-d FOLDER` of CSV files: "NA" was read as missing, "02134" as 2134.0
        kwargs.update(_csv_as_written(DatasetSpec(name="csv", data_files=csvs)))
    try:
        saved = saved_dataset_folder(name)
        as_written = _json_lines_as_written(kwargs["data_files"], spec.split) if name == "json" else None
        as_written = _load_saved(saved, spec.split) if saved is not None else as_written
        ds = as_written if as_written is not None else datasets.load_dataset(name, split=spec.split, **kwargs)
    except (FileNotFoundError, ConnectionError) as e:
        raise UserInputError(
            f"dataset {name!r} could not be loaded: {e}",
            hint="for a local file use -d json --data_files file.jsonl (or csv/parquet); "
            "for a hub dataset this machine must reach the hub or have it in the local cache",
        ) from e
    except ValueError as e:
        if "corresponds to no data" in str(e):
            raise _empty_split(spec, name) from e
        if "split" in str(e).lower() or "instruction" in str(e).lower():
            raise UserInputError(f"split {spec.split!r} of dataset {name!r}: {e}") from e
        raise UserInputError(f"dataset {name!r} could not be loaded: {e}") from e
    except UnicodeDecodeError as e:  # checked above for local files; a hub dataset's files may still hold one
        raise UserInputError(f"dataset {name!r} is not UTF-8 text: {e}") from e
    except Exception as e:  # datasets wraps hub/offline failures in its own exception types
        cause = e.__cause__ or e.__context__
        if name in LOCAL_BUILDERS and type(e).__name__ == "DatasetGenerationError" and cause is not None:
            raise UserInputError(
                f"data file {', '.join(file_list)} could not be read as {name}: {type(cause).__name__}: {cause}",
                hint=_FORMAT_HINT[name],
            ) from e
        if type(e).__module__.startswith(("datasets", "huggingface_hub", "requests", "httpx")):
            raise UserInputError(
                f"dataset {name!r} could not be loaded ({type(e).__name__}: {e})",
                hint="offline? use a local file: -d json --data_files file.jsonl",
            ) from e
        raise
    if len(ds) == 0:
        raise _empty_split(spec, name)
    if spec.max_samples is not None and len(ds) > spec.max_samples:
        ds = ds.select(range(spec.max_samples))
    return ds


DATA_FOLDER_MAX_ENTRIES = 10_000  # a data folder with more is no data folder (-d /, -d ~): said before a long walk


def _data_files_under(folder: Path) -> list[Path]:
    """The data files (by suffix) under ``folder``, without following links; a folder of more than
    :data:`DATA_FOLDER_MAX_ENTRIES` entries is refused (`-d /` walked into /proc to a PermissionError traceback,
    `-d /tmp` ran past 100 s), and unreadable subfolders are skipped, as the datasets library skips them."""
    found, seen = [], 0
    for top, dirs, names in os.walk(folder):
        seen += len(dirs) + len(names)
        if seen > DATA_FOLDER_MAX_ENTRIES:
            raise UserInputError(f"-d {folder} holds more than {DATA_FOLDER_MAX_ENTRIES} files and folders: it is "
                                 "no dataset folder", hint="give the data file(s) with -d json|csv|parquet "
                                 "--data_files FILE, or a folder holding only the dataset")  # fmt: skip
        found += [Path(top) / n for n in names if builder_for_file(n) and (Path(top) / n).is_file()]
    return found


def _csv_folder(name: str) -> list[str]:
    """The CSV files of ``name`` when it is a local folder (not a saved Dataset) whose data files are all CSV with
    one header (their cells are then read as written), else []."""
    folder = Path(name).expanduser()
    if not folder.is_dir() or saved_dataset_folder(name) is not None:
        return []
    files = sorted(_data_files_under(folder))
    if not files or any(builder_for_file(f.name) != "csv" for f in files):
        return []
    headers = {tuple(first_row_columns(DatasetSpec(name="csv", data_files=str(f))) or ()) for f in files}
    return [str(f) for f in files] if len(headers) == 1 else []


_ABSOLUTE_SPLIT = re.compile(r"^train(?:\[(\d*):(\d*)\])?$")
_SCALARS = (str, int, float, bool)


def rows_for_reading(spec: DatasetSpec) -> Any:
    """The split's rows for code that only reads them (checks, smoke prompts): plain dicts read with the json
    module when that gives exactly what :func:`load_rows` gives, else :func:`load_rows`'s Dataset.

    The plain path (no ``datasets`` import, about 1 s of a cached re-run) is taken for one local JSON-lines file
    whose rows are objects with the same keys and scalar values (read as written, as the loader reads them; nested
    values and missing keys the loader's Dataset changes), and a split ``train`` or
    ``train[a:b]`` with absolute bounds inside the file. Anything else goes through ``datasets``.
    """
    name, files = local_files(spec)
    match = _ABSOLUTE_SPLIT.match(spec.split.replace(" ", ""))
    rows = _rows_as_written(files[0]) if name == "json" and len(files) == 1 and match is not None else None
    if match is None or not rows or not all(isinstance(r, dict) and r.keys() == rows[0].keys() for r in rows):
        return load_rows(spec)
    for key in rows[0]:
        types = {type(r[key]) for r in rows if r[key] is not None}
        if len(types) > 1 or not types <= set(_SCALARS):
            return load_rows(spec)
    start = int(match.group(1) or 0)
    stop = int(match.group(2)) if match.group(2) else len(rows)
    if not start < stop <= len(rows):
        return load_rows(spec)  # empty or past the end: datasets' own words
    picked = rows[start:stop]
    return picked[: spec.max_samples] if spec.max_samples is not None else picked


def _rows_as_written(path: str | Path) -> list[Any] | None:
    """:func:`_rows_as_written_of`, parsed once per file version (the checks, the smoke prompts and the loader ask)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return None
    return _rows_as_written_of(str(p.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=4)
def _rows_as_written_of(path: str, size: int, mtime_ns: int) -> list[Any] | None:
    """A JSON-lines file's or JSON array's rows with numbers as the text written (``1``, ``2.50``, ``1e-5``) and
    ``true``/``false`` spelled as JSON spells them at the top level; None when it is neither."""
    import json

    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
        hooks: dict[str, Any] = {"parse_int": str, "parse_float": str}
        if text.lstrip().startswith("["):
            rows = json.loads(text, **hooks)
        else:
            rows = [json.loads(line, **hooks) for line in text.splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return None
    spelled = {True: "true", False: "false"}
    return [{k: spelled[v] if isinstance(v, bool) else v for k, v in r.items()} for r in rows]


def spec_identity(spec: DatasetSpec, memo: Any = None) -> dict[str, Any]:
    """The spec plus a content hash of its local files, for cache keys (a hub dataset: its name and split)."""

    files = spec.data_files if isinstance(spec.data_files, list) else [spec.data_files] if spec.data_files else []
    if not files and builder_for_file(spec.name) and Path(spec.name).exists():
        files = [spec.name]
    if not files and (saved := saved_dataset_folder(spec.name)) is not None:  # a saved Dataset: its content keys it
        files = [str(p) for p in sorted(saved.iterdir()) if p.suffix in (".arrow", ".json")]
    hashes = {}
    for f in files:
        p = Path(f)
        if p.is_file():
            hashes[p.name] = memo.file_hash(p) if memo is not None else hash_file(p)
    return {"spec": spec.model_dump(mode="json"), "files": hashes}




def _json_lines_as_written(files: list[str], split: str) -> Any:
    """JSON-lines (or JSON array) rows with every value as the file writes it, or None to use the datasets reader.

    The datasets JSON reader (pyarrow) turns strings like "2021-03-05" into timestamps ("2021-03-05 00:00:00"), a
    column of 1 and 2.5 into floats ("1.0"), and true into True: the model was trained, and exact match scored, on
    text the file does not hold. The rows are read with the json module instead (same split expressions); rows
    lacking a column hold None there, as the datasets reader gives them.
    """

    import datasets

    rows: list[Any] = []
    for path in files:
        read = _rows_as_written(path)
        if read is None:
            return None
        rows += read
    if not rows:
        return None
    columns = list(dict.fromkeys(k for r in rows for k in r))
    try:
        table = datasets.Dataset.from_list([{c: r.get(c) for c in columns} for r in rows])
    except Exception:  # values pyarrow cannot put in one column (a list in one row, text in another)
        return None
    return _select_split(table, split)


def saved_dataset_folder(name: str) -> Path | None:
    """A folder ``Dataset.save_to_disk`` wrote (one Dataset: state.json, dataset_info.json and arrow files, no
    dataset_dict.json), else None; datasets' load_dataset refuses it ("use load_from_disk instead")."""
    folder = Path(name).expanduser()
    if not folder.is_dir() or (folder / "dataset_dict.json").exists():
        return None
    return folder if (folder / "state.json").is_file() and (folder / "dataset_info.json").is_file() else None


def _load_saved(folder: Path, split: str) -> Any:
    """A saved Dataset as split 'train' (its rows sliced as ``split`` says). ``load_from_disk`` reads only the
    state and info JSON and the arrow files the state names (no pickles); names outside the folder are refused."""
    import datasets

    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        names = [str(f["filename"]) for f in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserInputError(f"{folder} is not a dataset saved with save_to_disk: its state.json is unreadable ({e})",
                             hint="save it again with Dataset.save_to_disk") from e  # fmt: skip
    if any(Path(n).is_absolute() or ".." in Path(n).parts or not n.endswith(".arrow") for n in names):
        raise UserInputError(f"{folder}/state.json names data files outside the folder or not arrow: {names}",
                             hint="save it again with Dataset.save_to_disk")  # fmt: skip
    table = datasets.Dataset.load_from_disk(str(folder)).with_format(None)  # a saved torch/custom format: plain rows
    return _select_split(table, split)


def _select_split(table: Any, split: str) -> Any:
    """The rows of a one-split table (named 'train') that ``split`` (``train[:90%]``...) picks."""
    import datasets

    instruction = datasets.ReadInstruction.from_spec(split)
    ranges = instruction.to_absolute({"train": len(table)})
    if any(r.splitname != "train" for r in ranges):
        raise ValueError(f"Unknown split {split!r}: a local file has one split, 'train'")
    indices = [i for r in ranges for i in range(r.from_, r.to)]
    if not indices:
        raise ValueError(f"Instruction {split!r} corresponds to no data!")
    return table.select(indices)


def portable_spec(spec: DatasetSpec) -> dict[str, Any]:
    """The dataset spec as JSON with local data files made absolute (valid from any working directory): the
    data files, and a local file or folder given as the name (`-d data/rows.jsonl`; kept relative, auto-opt run
    elsewhere scored another folder's data/rows.jsonl). What finetune records and auto-opt's recipe.yaml
    holds: a relative file there was read from the folder `run --config` ran in, or not found."""
    data = spec.model_dump(mode="json", exclude_none=True)
    if spec.name not in LOCAL_BUILDERS and Path(spec.name).expanduser().exists():
        data["name"] = str(Path(spec.name).expanduser().resolve())
    files = spec.data_files
    if files:
        as_list = [files] if isinstance(files, str) else files
        absolute = [str(Path(f).resolve()) if Path(f).exists() else f for f in as_list]
        data["data_files"] = absolute[0] if isinstance(files, str) else absolute
    return data
