"""Which datasets MTEB's tasks read, and whether this machine has them without the hub.

Olive's ``MTEBEvaluator`` names MTEB tasks (``STS17``, ``NFCorpus``, ...). Every task mteb registers reads a hub
dataset (``metadata.dataset``: repository and revision), and olive-ext runs offline: before any work each task is
resolved through mteb's own registry and a dataset that is neither a local folder nor in the local Hugging Face
cache is named, with what to do. Importing mteb takes seconds, so it happens only when a recipe names MTEB tasks.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from olive_ext.evaluate.lm_eval_tasks import TaskDataset, UnknownTask

MTEB_PACKAGE = "mteb"
MTEB_INSTALL = "pip install 'olive-ext[mteb]'"


def mteb_version() -> str | None:
    """The installed mteb's version, or None."""
    try:
        return metadata.version(MTEB_PACKAGE)
    except metadata.PackageNotFoundError:
        return None


def resolve_tasks(names: list[str]) -> list[Any]:
    """mteb's task objects for ``names``, in order.

    Raises UnknownTask naming a task mteb does not register, with the closest names it does."""
    import mteb

    tasks = []
    for name in names:
        try:
            tasks.append(mteb.get_task(name))
        except KeyError as e:  # mteb's own message lists close matches ("Did you mean ...")
            raise UnknownTask(f"MTEB task {name!r} is not one mteb {mteb_version()} registers",
                              hint=str(e).strip("'\"").removeprefix("KeyError: ")[:300]) from None  # fmt: skip
    return tasks


def missing_datasets(names: list[str]) -> list[TaskDataset]:
    """The datasets ``names``' tasks read that are not on this machine (raises UnknownTask as resolve_tasks)."""
    out = []
    for task in resolve_tasks(names):
        source = task.metadata.dataset or {}
        dataset = TaskDataset(task.metadata.name, str(source.get("path", "")), source.get("name"))
        if not dataset.available():
            out.append(dataset)
    return out
