"""extract_adapters: LoRA weights embedded in a genai model become inputs plus an .onnx_adapter file.

For a model built with ``model_builder`` ``adapter_mode: embed`` (LoRA as separate MatMuls
with the weights inside). The result runs as the base model with no adapter active and
with the adapter loaded through ``og.Adapters``. To ship several adapters for one base,
use ``olive-ext generate-adapter``, which builds the base once and checks each adapter.
"""

from __future__ import annotations

import shutil
from typing import Literal

from pydantic import Field

from olive_ext.artifacts import Artifact
from olive_ext.errors import UserInputError
from olive_ext.onnx.folder import carried_meta, model_file
from olive_ext.onnx.lora_inputs import make_lora_inputs
from olive_ext.passes.base import Pass, PassConfig, register_pass
from olive_ext.passes.context import RunContext


class ExtractAdaptersConfig(PassConfig):
    adapter_name: str = Field("default", description="name the adapter file is written under (<name>.onnx_adapter)")
    save_format: Literal["onnx_adapter"] = Field("onnx_adapter", description="onnxruntime's adapter format")


@register_pass("extract_adapters")
class ExtractAdapters(Pass[ExtractAdaptersConfig]):
    """Turn a genai model's embedded LoRA weights into inputs and write them as an .onnx_adapter file."""

    config_class = ExtractAdaptersConfig
    accepts = frozenset({"genai"})
    produces = "genai"
    libraries = ("onnx", "onnxruntime")
    olive_types = ("ExtractAdapters",)

    @classmethod
    def from_olive(cls, params: dict[str, object]) -> dict[str, object]:
        params = dict(params)
        params.pop("make_inputs", None)  # we always make inputs: that is what run-time switching needs
        fmt = params.pop("save_format", "onnx_adapter")
        if fmt not in ("onnx_adapter", "ONNX_ADAPTER"):
            params["save_format"] = fmt  # validation names the unsupported value
        return params

    def run(self, artifact: Artifact, ctx: RunContext) -> Artifact:
        out = ctx.output_dir / "model"
        shutil.copytree(artifact.path, out, ignore=shutil.ignore_patterns("entry.json", "*.onnx_adapter"))
        graph = out / model_file(artifact).name
        file_name = f"{self.config.adapter_name}.onnx_adapter"
        try:
            make_lora_inputs(graph, out / file_name)
        except ValueError as e:
            raise UserInputError(f"extract_adapters: {e}", hint="build with model_builder adapter_mode: embed") from e
        meta = {**carried_meta(artifact), "adapter_file": file_name, "adapter_name": self.config.adapter_name}
        return Artifact("genai", str(out), meta=meta)
