"""Which datasets lm-eval's tasks read, and whether this machine has them without the hub.

Olive's ``LMEvaluator`` names lm-eval tasks (``mmlu``, ``hellaswag``, groups and tags of tasks, or an inline task
config). Almost every registered task downloads its dataset from the Hugging Face hub, and olive-ext runs offline:
before any work, each task is resolved to the datasets it reads, and a dataset that is neither a local file nor in
the local Hugging Face cache is named, with what to do. lm-eval's own task index (``TaskManager``: every task YAML
it ships, about 20 s to build on 2 cores) is read once per lm-eval version and kept as a small JSON file in the
cache (``checks/``), so later checks take milliseconds. Nothing here imports lm-eval unless the index is missing.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from olive_ext.cache import default_cache_dir
from olive_ext.errors import OliveExtError, UserInputError

LM_EVAL_PACKAGE = "lm-eval"
LM_EVAL_INSTALL = "pip install 'olive-ext[lmeval]'"
# dataset builders that read local files (dataset_kwargs.data_files), not a hub repository
FILE_BUILDERS = {"json", "csv", "parquet", "text", "arrow", "pandas"}


def lm_eval_version() -> str | None:
    """The installed lm-eval's version, or None."""
    try:
        return metadata.version(LM_EVAL_PACKAGE)
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class TaskDataset:
    """One dataset a task reads: a hub repository (``path`` + config ``name``) or local files."""

    task: str
    path: str
    name: str | None = None
    data_files: tuple[str, ...] = ()

    @property
    def local(self) -> bool:
        """Whether it reads files on this machine (a builder over data_files, or a folder)."""
        return (self.path in FILE_BUILDERS and bool(self.data_files)) or Path(self.path).expanduser().exists()

    def available(self) -> bool:
        """Whether it can be read offline: local files that exist, or a hub dataset in the local HF cache."""
        if self.path in FILE_BUILDERS:
            return bool(self.data_files) and all(Path(f).expanduser().exists() for f in self.data_files)
        if Path(self.path).expanduser().exists():
            return True
        return _in_hf_cache(self.path)

    def describe(self) -> str:
        """The dataset as a user would look it up."""
        if self.path in FILE_BUILDERS:
            return f"{self.path} files {', '.join(self.data_files) or '(none named)'}"
        return self.path + (f" (config {self.name})" if self.name else "")


def _in_hf_cache(repo: str) -> bool:
    """Whether the hub dataset ``repo`` was downloaded before (huggingface_hub's or datasets' own cache)."""
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub"
    )
    if any((Path(hub) / f"datasets--{repo.replace('/', '--')}" / "snapshots").glob("*")):
        return True
    datasets_cache = os.environ.get("HF_DATASETS_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "datasets"
    )
    return (Path(datasets_cache) / repo.replace("/", "___")).is_dir()


def _entry_of(cfg: dict[str, Any]) -> dict[str, Any]:
    """The part of a task config that says what it reads."""
    kwargs = cfg.get("dataset_kwargs")
    files = kwargs.get("data_files") if isinstance(kwargs, dict) else None
    if isinstance(files, dict):
        files = [f for v in files.values() for f in (v if isinstance(v, list) else [v])]
    elif isinstance(files, str):
        files = [files]
    return {
        "dataset": cfg.get("dataset_path"),
        "name": cfg.get("dataset_name"),
        "files": [str(f) for f in files or []],
    }


def _index_file() -> Path:
    return default_cache_dir() / "checks" / f"lm-eval-{lm_eval_version()}-tasks.json"


def task_index() -> dict[str, dict[str, Any]]:
    """lm-eval's registered tasks, groups and tags: name -> {kind, dataset, name, files, children, tags}."""
    path = _index_file()
    try:
        loaded: dict[str, dict[str, Any]] = json.loads(path.read_text())
        return loaded
    except (OSError, ValueError):
        pass
    if lm_eval_version() is None:
        raise OliveExtError("Olive's LMEvaluator runs lm-eval, which is not installed", hint=LM_EVAL_INSTALL)
    from lm_eval.tasks import TaskManager  # slow: walks every task YAML lm-eval ships

    index: dict[str, dict[str, Any]] = {}
    for name, entry in TaskManager().task_index.items():
        cfg = entry.cfg if isinstance(entry.cfg, dict) else {}
        kind = entry.kind.name.lower()
        item: dict[str, Any] = {"kind": kind, "tags": sorted(entry.tags)}
        if kind == "group":
            listed = cfg.get("task")
            children: list[Any] = listed if isinstance(listed, list) else []
            item["children"] = [c if isinstance(c, str) else _entry_of(c) | {"task": c.get("task")} for c in children]
        else:
            item |= _entry_of(cfg)
        index[name] = item
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(index, separators=(",", ":")))
    tmp.replace(path)
    return index


_MAX_NAMED = 4  # datasets named in one message


def offline_message(whose: str, missing: list[TaskDataset], more_hint: str = "") -> tuple[str, str]:
    """(message, hint) for benchmark tasks whose hub datasets are not in this machine's Hugging Face cache."""
    listed = list(dict.fromkeys(ds.describe() for ds in missing))
    more = f" and {len(listed) - _MAX_NAMED} more" if len(listed) > _MAX_NAMED else ""
    named = ", ".join(listed[:_MAX_NAMED]) + more
    return (
        f"{whose} tasks read hub datasets that are not in this machine's Hugging Face cache, and olive-ext runs "
        f"offline: {named}",
        'download them once where the hub is reachable (`python -c "import datasets; '
        "datasets.load_dataset('REPO', 'CONFIG')\"`) and copy ~/.cache/huggingface here" + more_hint,
    )


class UnknownTask(UserInputError):
    """A task name lm-eval does not register (the user's input: exit code 2)."""


def task_datasets(tasks: list[Any]) -> list[TaskDataset]:
    """The datasets ``tasks`` read (groups and tags expanded; inline task configs read as given).

    Raises UnknownTask naming a task lm-eval does not know, with the closest names it does."""
    out: list[TaskDataset] = []
    index: dict[str, dict[str, Any]] | None = None
    seen: set[str] = set()

    def visit(task: Any, top: str) -> None:
        nonlocal index
        if isinstance(task, dict):
            e = _entry_of(task)
            out.append(TaskDataset(str(task.get("task") or top), str(e["dataset"]), e["name"], tuple(e["files"])))
            return
        name = str(task)
        if name in seen:
            return
        seen.add(name)
        index = index if index is not None else task_index()
        item = index.get(name)
        if item is None:
            close = difflib.get_close_matches(name, list(index), n=3, cutoff=0.7)
            raise UnknownTask(
                f"lm-eval {lm_eval_version()} has no task, group or tag {name!r}",
                hint=f"did you mean {' / '.join(close)}?" if close else "`lm-eval ls tasks` lists them",
            )
        if item["kind"] == "group":
            for child in item.get("children") or []:
                if isinstance(child, dict) and child.get("dataset"):
                    out.append(TaskDataset(str(child.get("task") or name), str(child["dataset"]), child.get("name"),
                                           tuple(child.get("files") or ())))  # fmt: skip
                else:
                    visit(child.get("task") if isinstance(child, dict) else child, top)
        elif item["kind"] == "tag":
            for child, it in index.items():
                if name in it.get("tags", ()) and it["kind"] != "tag":
                    visit(child, top)
        elif item.get("dataset"):
            out.append(TaskDataset(name, str(item["dataset"]), item.get("name"), tuple(item.get("files") or ())))

    for task in tasks:
        visit(task, str(task))
    return out


def missing_datasets(tasks: list[Any]) -> list[TaskDataset]:
    """The datasets ``tasks`` read that this machine cannot read offline (one entry per dataset repository)."""
    missing: dict[str, TaskDataset] = {}
    for ds in task_datasets(tasks):
        key = ds.describe() if ds.path in FILE_BUILDERS else ds.path
        if key not in missing and not ds.available():
            missing[key] = ds
    return list(missing.values())
