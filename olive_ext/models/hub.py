"""Hugging Face hub reachability: fail in a second, not after a minute of retries.

huggingface_hub retries every request five times with back-off (about 40 s per file) when the
hub cannot be reached. Before a command touches a name that is not on this machine, olive-ext
probes the hub once (a TCP connect, a few seconds at most); when it is unreachable, the process
switches to offline mode, so models and datasets already in the hub cache still load and
missing ones fail at once with a message saying what to pass instead.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Iterable
from dataclasses import replace
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

from olive_ext.artifacts import Artifact, hub_cache_dir, spelled_as_path
from olive_ext.errors import UserInputError

logger = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}
_LOCAL_DATA = {"json", "jsonl", "csv", "parquet", "text", "arrow"}


def offline() -> bool:
    """True when the user (or an earlier probe) put the hub libraries in offline mode."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE


def hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connect to the hub endpoint (``HF_ENDPOINT``), once per endpoint; False on any network error."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    return _connects(url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80), timeout)


@cache
def _connects(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def looks_like_hub_name(value: str) -> bool:
    """A value that only the hub can resolve: not a local path (nor one spelled as a path: ``/``, ``.``, ``~``
    first, a backslash, two slashes), not a pypi: model, not a file format."""
    if not value or value.startswith("pypi:") or value in _LOCAL_DATA or spelled_as_path(value):
        return False
    return not Path(value).exists()


def go_offline_if_unreachable(names: Iterable[str | None]) -> None:
    """Switch this process to offline mode when a hub name is needed and the hub cannot be reached.

    Offline mode asked for in the environment is applied to hub libraries already imported too
    (they read it once, at import)."""
    if any(n and looks_like_hub_name(n) for n in names):
        go_offline_unless_reachable()


def go_offline_unless_reachable() -> None:
    """Switch this process to offline mode unless the hub can be reached (or it is offline already).

    For code olive-ext does not see into (a user's script imported to validate an Olive config may load a tokenizer
    by hub id): without this, each such load retries the unreachable hub for about 40 s."""
    if not offline():
        if hub_reachable():
            return
        logger.warning("the Hugging Face hub cannot be reached: working offline (models in the hub cache still load)")
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ[var] = "1"
    for module in ("huggingface_hub.constants", "datasets.config"):
        loaded = sys.modules.get(module)
        if loaded is not None:
            loaded.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]


# what a model folder holds that olive-ext reads: never pickles (pytorch_model.bin), which unpickling would run
_SNAPSHOT_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken", "*.py"]


def local_snapshot(name: str, revision: str | None = None) -> str:
    """A hub id's folder in the Hugging Face cache (fetched there first when the hub is reachable), for the steps
    that read a model from files (the genai builder, GGUF export, OpenVINO); a local path as given.

    The genai builder took a hub id with its own scratch folder as the download cache: offline, a model already in
    the Hugging Face cache failed ("couldn't connect"), and online each build downloaded it again."""
    if not looks_like_hub_name(name):
        return name
    from huggingface_hub import snapshot_download  # hub ids only (start-up time)

    return str(snapshot_download(name, revision=revision, cache_dir=hub_cache_dir(), local_files_only=offline(),
                                 allow_patterns=_SNAPSHOT_FILES))  # fmt: skip


def hub_model_folder(model: Artifact) -> Artifact:
    """``model`` with a Hugging Face hub id replaced by its folder in the hub cache (its revision's), for the
    commands that read a model's files themselves (export, generate-adapter); any other model as given."""
    if model.kind != "hf" or not looks_like_hub_name(model.path):
        return model
    return replace(model, path=local_snapshot(model.path, model.meta.get("revision")))


class ModelNotHereError(UserInputError):
    """A hub model (``name``) that is neither reachable nor in the local hub cache."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"model {name!r} is not on this machine: the Hugging Face hub cannot be reached (or HF_HUB_OFFLINE is "
            "set) and the hub cache holds no copy of it",
            hint="give a local model folder with -m (for an adapter trained on it: -m BASE --adapter_path "
            f"ADAPTER), or download it where the hub can be reached: hf download {name}",
        )
        self.name = name


def check_hub_model(name: str) -> None:
    """A hub id can be loaded: the hub answers, or the local Hugging Face cache holds the model (offline, every
    step failed on it after the work began, with transformers' "couldn't connect")."""
    go_offline_if_unreachable([name])
    if not offline():
        return
    from huggingface_hub import try_to_load_from_cache  # only for hub ids offline (start-up time)

    if not isinstance(try_to_load_from_cache(name, "config.json", cache_dir=hub_cache_dir()), str):
        raise ModelNotHereError(name)
