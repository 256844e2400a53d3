"""Checks before work: everything a run will need from the file system, checked before its first step.

A run that cannot write its output, cannot write its cache, starts from a folder that holds no model or
reads a data file that is missing, empty, unreadable or not text used to find out seconds or minutes in,
once per candidate; here each is one message naming the path and what to do, and nothing is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from olive_ext.cache import check_cache_dir
from olive_ext.data.load import check_data_files
from olive_ext.data.spec import DatasetSpec
from olive_ext.engine.output import check_output
from olive_ext.errors import UserInputError
from olive_ext.models.folder import MODEL_CONFIG, PYPI_PREFIX
from olive_ext.onnx.runtime import runtime_telemetry_off
from olive_ext.recipe.schema import Recipe

__all__ = ["check_before_work", "check_model_folder", "check_recipe_before_work"]

# what makes a folder a model, by kind
_MODEL_MARKERS = "config.json (Hugging Face), genai_config.json (onnxruntime-genai), a .onnx or a .gguf file"


def check_before_work(
    *,
    model: str,
    cache_dir: str | None,
    datasets: Iterable[DatasetSpec] = (),
    output: str | Path | None = None,
    overwrite: bool = False,
) -> None:
    """Output (free and writable), cache (writable), input model and local data files, in that order.

    Raises the first problem as a UserInputError (exit code 2); creates nothing.
    """
    runtime_telemetry_off()
    if output is not None:
        check_output(output, overwrite)
    check_cache_dir(cache_dir)
    check_model_folder(model)
    for spec in datasets:
        check_data_files(spec)


def check_recipe_before_work(recipe: Recipe, write_output: bool = True) -> None:
    """:func:`check_before_work` for a recipe: its output (when written), cache, input model and every dataset."""
    check_before_work(
        model=recipe.input_model.path,
        cache_dir=recipe.cache_dir,
        datasets=recipe.data.values(),
        output=recipe.output.path if write_output else None,
        overwrite=recipe.output.overwrite,
    )


def check_model_folder(path: str) -> None:
    """A local folder given as a model must hold one; hub ids and files are left to their loaders."""
    if path.startswith(PYPI_PREFIX):
        return
    folder = Path(path).expanduser()
    if not folder.is_dir() or (folder / MODEL_CONFIG).exists():
        return
    if (folder / "genai_config.json").exists() or any(folder.glob("*.onnx")) or any(folder.glob("*.gguf")):
        return
    config = folder / "config.json"
    if not config.exists():
        raise UserInputError(
            f"{folder} holds no model: none of {_MODEL_MARKERS} is in it",
            hint="point -m at the model's own folder (the one holding config.json), a .gguf file or a hub id",
        )
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserInputError(f"{config} cannot be read as JSON ({e})", hint="restore the model's config.json") from e
    if not isinstance(data, dict):
        raise UserInputError(f"{config} is not a model configuration (a JSON object)", hint="restore it")
