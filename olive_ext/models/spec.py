"""The model a recipe starts from."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from olive_ext.artifacts import ArtifactKind
from olive_ext.options import StrictModel, check_path

# The tasks a recipe's model can have: causal LMs (Olive's three names for them) and the encoder tasks.
Task = Literal["text-generation", "text-generation-with-past", "causal-lm", "text-classification", "feature-extraction"]


class InputModel(StrictModel):
    """The model a recipe starts from."""

    path: str = Field(description="hub id, local folder, or a .gguf/.onnx file")
    kind: ArtifactKind | None = Field(None, description="hf | onnx | genai | gguf; inferred from path when unset")
    gguf_file: str | None = Field(None, description="GGUF file name inside `path` when path is a folder")
    adapter_path: str | None = Field(None, description="a peft adapter folder to apply to the model")
    trust_remote_code: bool = Field(False, description="allow model code from the hub; off unless asked")
    revision: str | None = Field(None, description="hub revision (branch, tag or commit)")
    task: Task = Field("text-generation", description="text-generation | text-classification | feature-extraction")
    olive: dict[str, Any] | None = Field(
        None,
        description="an Olive model config (load_kwargs, io_config, model_script and its hooks): the Olive "
        "translation sets it when the user's loading must be honoured, and Olive's passes load the model with it",
    )

    _paths = field_validator("path", "adapter_path")(lambda cls, v: v if v is None else check_path(v))
