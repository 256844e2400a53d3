"""The model a recipe starts from."""

from __future__ import annotations

from pydantic import Field

from olive_ext.artifacts import ArtifactKind
from olive_ext.options import StrictModel


class InputModel(StrictModel):
    """The model a recipe starts from."""

    path: str = Field(description="hub id, local folder, or a .gguf/.onnx file")
    kind: ArtifactKind | None = Field(None, description="hf | onnx | genai | gguf; inferred from path when unset")
    gguf_file: str | None = Field(None, description="GGUF file name inside `path` when path is a folder")
    adapter_path: str | None = Field(None, description="a peft adapter folder to apply to the model")
    trust_remote_code: bool = Field(False, description="allow model code from the hub; off unless asked")
    revision: str | None = Field(None, description="hub revision (branch, tag or commit)")
    task: str = Field("text-generation", description="text-generation | text-classification | feature-extraction")
