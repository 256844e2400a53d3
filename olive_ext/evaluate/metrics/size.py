"""Size of a model on disk."""

from __future__ import annotations

from pathlib import Path

from olive_ext.artifacts import Artifact, iter_files
from olive_ext.evaluate.context import MetricInput
from olive_ext.evaluate.registry import register_metric


def artifact_bytes(artifact: Artifact) -> int:
    """Bytes of the files that make up the model (the adapter included, hub ids count 0)."""
    total = 0
    for path in (artifact.path, artifact.adapter_path):
        if path and Path(path).exists():
            p = Path(path) / artifact.gguf_file if (artifact.gguf_file and path == artifact.path) else Path(path)
            total += sum(f.stat().st_size for f in iter_files(p) if f.name != "entry.json")
    return total


@register_metric(
    "size",
    "MB",
    higher_is_better=False,
    kinds={"hf", "gguf", "onnx", "genai"},
    description="size of the model's files on disk",
)
def size_metric(inp: MetricInput) -> dict[str, float]:
    return {"size": round(artifact_bytes(inp.artifact) / 1e6, 3)}
