"""GGUF -> Hugging Face folder (dequantized safetensors plus tokenizer and chat template).

Loading a GGUF file through transformers dequantizes it and converts its tokenizer,
which takes tens of seconds; doing it once, cached, lets every later pass load a
plain HF folder in under a second. The engine inserts this pass automatically when a
GGUF input meets a pass that takes HF models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from olive_ext.artifacts import Artifact
from olive_ext.errors import MissingDependencyError, UserInputError
from olive_ext.models.gguf_header import split_problem
from olive_ext.passes.base import Pass, PassConfig, register_pass
from olive_ext.passes.context import RunContext


class GgufToHfConfig(PassConfig):
    dtype: Literal["float32", "float16", "bfloat16"] = Field("float32", description="dtype of the dequantized weights")


@register_pass("gguf_to_hf")
class GgufToHf(Pass[GgufToHfConfig]):
    """Dequantize a GGUF model into a Hugging Face folder (safetensors, tokenizer, chat template)."""

    config_class = GgufToHfConfig
    accepts = frozenset({"gguf"})
    produces = "hf"
    libraries = ("transformers", "gguf", "torch")
    version = 2  # 2: the chat template and special tokens come from the GGUF's metadata where transformers drops them

    @classmethod
    def check_input(cls, artifact: Artifact) -> str | None:
        """Not a split GGUF (:func:`split_problem`)."""
        return split_problem(Path(artifact.path) / (artifact.gguf_file or ""))

    def run(self, artifact: Artifact, ctx: RunContext) -> Artifact:
        out = ctx.output_dir / "model"
        convert_gguf(Path(artifact.path), artifact.gguf_file or "", out, self.config.dtype)
        meta: dict[str, Any] = {"source_gguf": artifact.gguf_file}
        if artifact.meta.get("olive_model"):  # how Olive loads the model (the user's hooks): for the steps after
            meta["olive_model"] = artifact.meta["olive_model"]
        return Artifact("hf", str(out), artifact.adapter_path, meta=meta)


def convert_gguf(folder: Path, gguf_file: str, out: Path, dtype: str = "float32") -> None:
    """Write ``folder/gguf_file`` as a loadable HF folder at ``out``."""
    try:
        import gguf  # noqa: F401  (transformers needs it to read GGUF)
    except ImportError as e:
        raise MissingDependencyError("gguf", "reading GGUF models") from e
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=getattr(torch, dtype))
    except ValueError as e:
        if "not supported" in str(e).lower() or "architecture" in str(e).lower():
            raise UserInputError(
                f"{gguf_file}: {e}",
                hint="transformers reads GGUF files of the architectures it lists in its GGUF docs; "
                "convert this model to a Hugging Face folder first",
            ) from e
        raise
    _fill_from_metadata(tokenizer, folder / gguf_file)
    # transformers refuses to save GGUF-loaded models ("quantized with gguf and is not
    # serializable"); the weights are already dequantized, so drop the quantizer and save.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _fill_from_metadata(tokenizer: Any, path: Path) -> None:
    """The chat template and BOS/EOS/PAD tokens from the GGUF's metadata, where transformers' reader left them out.

    transformers 5 returns a bare tokenizer for Llama-architecture GGUFs whose folder holds a tokenizer_config.json
    (every GGUF olive-ext exports, and Unsloth's folders): no chat template, no BOS or EOS, so the model converted
    from it could not be chatted with, packaged or verified."""
    from gguf import GGUFReader

    fields = GGUFReader(path).fields

    def value(key: str) -> Any:
        field = fields.get(key)
        return None if field is None else field.contents()

    if not getattr(tokenizer, "chat_template", None) and isinstance(value("tokenizer.chat_template"), str):
        tokenizer.chat_template = value("tokenizer.chat_template")
    tokens = value("tokenizer.ggml.tokens") or []
    for role in ("bos", "eos", "pad"):
        index = value(f"tokenizer.ggml.{role}_token_id")
        if getattr(tokenizer, f"{role}_token", None) is None and isinstance(index, int) and 0 <= index < len(tokens):
            setattr(tokenizer, f"{role}_token", tokens[index])
