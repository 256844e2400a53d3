"""ONNX model folders: where the graph is, copying the files beside it, saving with external data.

Both ONNX artifact kinds are folders: ``onnx`` holds ``model.onnx`` plus tokenizer and
config files; ``genai`` holds the decoder named in ``genai_config.json`` plus the genai
config, tokenizer and chat template. Passes that rewrite the graph (quantization,
optimization) copy everything else unchanged, so a quantized genai folder still loads
in onnxruntime-genai. A ``composite`` folder holds one such graph per component
subfolder, listed in ``composite.json``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from olive_ext.artifacts import Artifact
from olive_ext.errors import UserInputError

EXTERNAL_DATA_THRESHOLD = 1 << 30  # bytes of weights above which the graph and weights are saved apart
# Olive's OrtSessionParamsTuning result beside a graph: the provider and session options the graph runs best with
TUNED_SETTINGS = "inference_settings.json"


def tuned_session_options(folder: Path | str) -> dict[str, Any]:
    """The tuned onnxruntime session options of an ONNX folder (``inference_settings.json``), or {}."""
    path = Path(folder) / TUNED_SETTINGS
    if not path.is_file():
        return {}
    try:
        options = json.loads(path.read_text()).get("session_options") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    return dict(options) if isinstance(options, dict) else {}


def model_file(artifact: Artifact) -> Path:
    """The ONNX graph of an ``onnx`` or ``genai`` artifact."""
    folder = Path(artifact.path)
    if artifact.kind == "genai":
        config = json.loads((folder / "genai_config.json").read_text())
        return folder / config["model"]["decoder"].get("filename", "model.onnx")
    if folder.is_file():
        return folder
    return onnx_graph(folder)


def onnx_graph(folder: Path | str) -> Path:
    """The ONNX graph of a plain ONNX folder: its model.onnx, else the one .onnx file it holds.

    UserInputError when it holds several and no model.onnx (a pass failed on a missing model.onnx, or
    a smoke run on one it never wrote); a folder with none gives ``model.onnx`` (its reader says it is missing)."""
    folder = Path(folder)
    named = folder / "model.onnx"
    if named.exists():
        return named
    found = sorted(folder.glob("*.onnx"))
    if len(found) > 1:
        names = ", ".join(f.name for f in found)
        raise UserInputError(f"{folder} holds {len(found)} ONNX graphs ({names}) and no model.onnx: which one is the "
                             "model?", hint=f"pass the file itself: -m {folder / found[0].name}")  # fmt: skip
    return found[0] if found else named


def external_data_files(model_path: Path) -> set[str]:
    """Names of the external-data files a model refers to (without loading weights)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    names = set()
    for init in model.graph.initializer:
        for entry in init.external_data:
            if entry.key == "location":
                names.add(entry.value)
    return names


def copy_companions(artifact: Artifact, dest: Path) -> Path:
    """Copy every file of the artifact's folder except its graph and weights; return the graph's new path."""
    src_model = model_file(artifact)
    skip = {src_model.name, *external_data_files(src_model)}
    dest.mkdir(parents=True, exist_ok=True)
    for item in src_model.parent.iterdir():
        if item.name in skip or item.name in {"entry.json", ".olive_ext_fingerprint.json"}:
            continue
        if artifact.kind == "onnx" and item.suffix == ".onnx":  # another graph of the folder (-m folder/x.onnx)
            continue
        if item.is_dir():
            shutil.copytree(item, dest / item.name)
        else:
            shutil.copy2(item, dest / item.name)
    return dest / src_model.name


COMPOSITE_FILE = "composite.json"
"""A ``composite`` folder's list of its components (subfolders holding model.onnx), in Olive's order."""


def write_composite(folder: Path, names: list[str]) -> None:
    """Write ``folder``'s composite.json naming its components in order."""
    (folder / COMPOSITE_FILE).write_text(json.dumps({"components": names}, indent=2) + "\n")


def composite_components(folder: Path) -> list[str]:
    """The components of a ``composite`` folder, in order; UserInputError when its composite.json is unreadable or
    names a component without a graph."""
    try:
        names = json.loads((folder / COMPOSITE_FILE).read_text())["components"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        hint = "a composite model folder is what Olive's SplitModel makes in an olive-ext run"
        raise UserInputError(f"{folder / COMPOSITE_FILE} cannot be read: {e}", hint=hint) from e
    if not isinstance(names, list) or not names:
        raise UserInputError(f"{folder / COMPOSITE_FILE}: 'components' must list the component folders, not {names!r}")
    missing = [str(n) for n in names if not (folder / str(n) / "model.onnx").is_file()]
    if missing:
        raise UserInputError(f"{folder / COMPOSITE_FILE} names components without a model.onnx: {', '.join(missing)}")
    return [str(n) for n in names]


def save_model(model: Any, path: Path) -> None:
    """Save a ModelProto; weights go to ``<name>.data`` beside it when they are large."""
    import onnx

    size = sum(len(t.raw_data) for t in model.graph.initializer)
    path.parent.mkdir(parents=True, exist_ok=True)
    if size > EXTERNAL_DATA_THRESHOLD:
        location = path.name + ".data"
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=location)
    else:
        onnx.save(model, str(path))


def carried_meta(artifact: Artifact) -> dict[str, Any]:
    """The provenance a rewriting pass carries forward (source model, provider, adapter file)."""
    keep: tuple[str, ...] = ("source_model", "provider", "precision", "adapter_file", "adapter_name", "threads")
    keep += ("task", "io", "build_path", "olive_attributes")
    return {k: artifact.meta[k] for k in keep if k in artifact.meta}


def config_positions(config: dict[str, Any] | None) -> int | None:
    """The positions a model of this read config.json attends to (max_position_embeddings, GPT-2's n_positions),
    or None where it names none."""
    positions = (config or {}).get("max_position_embeddings") or (config or {}).get("n_positions")
    return positions if isinstance(positions, int) and positions > 0 else None


# encoders whose position ids start after the padding index (fairseq's convention): RoBERTa's 514 positions hold
# 512 tokens, and a 130-position RoBERTa fed 130 tokens failed with "idx=130 must be within [-130,129]"
_POSITIONS_AFTER_PADDING = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer", "mpnet",
                                      "ibert", "data2vec-text", "roberta-prelayernorm", "xmod", "markuplm", "lilt",
                                      "esm"})  # fmt: skip
ENCODER_MAX_TOKENS = 512  # what an encoder reads at most when its config names no limit


def encoder_max_tokens(folder: str | Path) -> int:
    """Tokens an encoder in ``folder`` reads (its config.json's positions, less RoBERTa-style padding positions;
    at most :data:`ENCODER_MAX_TOKENS`): rows are cut to this before they reach it."""
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):  # an unreadable config: loading the model says what is wrong
        config = {}
    config = config if isinstance(config, dict) else {}
    positions = config_positions(config)
    if positions is None:
        return ENCODER_MAX_TOKENS
    if config.get("model_type") in _POSITIONS_AFTER_PADDING:
        pad = config.get("pad_token_id")
        positions -= (1 if pad is None else int(pad)) + 1
    return max(2, min(ENCODER_MAX_TOKENS, positions))
