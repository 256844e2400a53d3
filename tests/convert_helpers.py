"""Helpers for the conversion and quantization tests: run a chain of passes, read a built graph."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from olive_ext.artifacts import Artifact
from olive_ext.recipe import parse_recipe
from olive_ext.workflows.run import run_recipe as run


def build(
    model: Path | str,
    passes: dict[str, dict[str, Any]],
    *,
    adapter: Path | None = None,
    data: dict[str, Any] | None = None,
    target: dict[str, Any] | None = None,
    cache_dir: Path | None = None,
) -> Artifact:
    """Run ``passes`` on ``model`` through the engine (cached) and return the final artifact."""
    raw: dict[str, Any] = {
        "input_model": {"path": str(model), **({"adapter_path": str(adapter)} if adapter else {})},
        "passes": passes,
        "data": data or {},
        "targets": [target or {"device": "cpu"}],
    }
    if cache_dir is not None:
        raw["cache_dir"] = str(cache_dir)
    result = run(parse_recipe(raw), write_output=False)
    assert result.chosen is not None and result.chosen.artifact is not None
    return result.chosen.artifact


def graph_ops(model_path: Path | str) -> Counter[str]:
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    return Counter(n.op_type for n in model.graph.node)


def node_attrs(model_path: Path | str, op_type: str) -> list[dict[str, Any]]:
    """Attributes of every node of ``op_type`` (name included)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(model_path), load_external_data=False)
    return [
        {"name": n.name, **{a.name: helper.get_attribute_value(a) for a in n.attribute}}
        for n in model.graph.node
        if n.op_type == op_type
    ]


def genai_config(folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / "genai_config.json").read_text())


SENTENCES = [
    "The weather today is sunny with a light wind.", "Stocks fell sharply after the announcement.",
    "She baked bread for her neighbors.", "How do I reset my password?", "The train to Berlin leaves at noon.",
    "Photosynthesis converts light into chemical energy.", "He scored two goals in the final.",
    "Please send me the report by Friday.", "The museum opens at nine on weekdays.",
    "My laptop battery drains too quickly.", "A great product, I would buy it again.", "Terrible service, never again.",
]  # fmt: skip


def text_data(path: Path, n: int = 24) -> dict[str, Any]:
    """A small local text dataset (recipe `data` entry) of plain English sentences, written to ``path``."""
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"text": SENTENCES[i % len(SENTENCES)], "label": i % 2}) + "\n")
    return {"name": "json", "data_files": str(path), "format": "text", "text_field": "text"}
