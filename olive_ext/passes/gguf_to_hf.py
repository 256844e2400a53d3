"""GGUF -> Hugging Face folder (dequantized safetensors plus tokenizer and chat template).

Loading a GGUF file through transformers dequantizes it and converts its tokenizer,
which takes tens of seconds; doing it once, cached, lets every later pass load a
plain HF folder in under a second. The engine inserts this pass automatically when a
GGUF input meets a pass that takes HF models.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from olive_ext.artifacts import Artifact
from olive_ext.errors import MissingDependencyError, UserInputError
from olive_ext.models.gguf_header import split_problem
from olive_ext.passes.base import Pass, PassConfig, register_pass
from olive_ext.passes.context import RunContext

logger = logging.getLogger(__name__)


class GgufToHfConfig(PassConfig):
    dtype: Literal["float32", "float16", "bfloat16"] = Field("float32", description="dtype of the dequantized weights")


@register_pass("gguf_to_hf")
class GgufToHf(Pass[GgufToHfConfig]):
    """Dequantize a GGUF model into a Hugging Face folder (safetensors, tokenizer, chat template)."""

    config_class = GgufToHfConfig
    accepts = frozenset({"gguf"})
    produces = "hf"
    libraries = ("transformers", "gguf", "torch")
    # 2: the chat template and special tokens come from the GGUF's metadata where transformers drops them;
    # 3: a tokenizer that splits text unlike the GGUF's own vocabulary is refused
    version = 3

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
    fill_from_metadata(tokenizer, folder / gguf_file)
    # transformers refuses to save GGUF-loaded models ("quantized with gguf and is not
    # serializable"); the weights are already dequantized, so drop the quantizer and save.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _keep_gguf_tokens(out, folder / gguf_file)


# text that byte-level BPE and SentencePiece vocabularies split differently when a converter is wrong: spaces,
# newlines, digits, accents, Arabic, an emoji
PROBE = "Hello world,\n  what is 12345 + 678? Café — naïve مرحبا 😀 end."


def _llama_cpp_ids(path: Path) -> list[int] | None:
    """:data:`PROBE` as llama.cpp tokenizes it with the GGUF's own vocabulary (None: llama-cpp-python missing)."""
    from olive_ext.onnx.runtime import llama_cpp_available  # the optional extra, checked without importing it

    if not llama_cpp_available():
        return None
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        return [int(t) for t in llm.tokenize(PROBE.encode(), add_bos=False, special=False)]
    finally:
        llm.close()


def _keep_gguf_tokens(out: Path, gguf: Path) -> None:
    """The tokenizer saved in ``out`` splits text as the GGUF's own vocabulary does (llama.cpp), or an error.

    transformers picks a GGUF tokenizer's class by the model's architecture: a Gemma GGUF holding a GPT-2
    byte-level vocabulary was saved with ``GemmaTokenizer``, which rebuilds a SentencePiece pipeline on load and
    maps most words to <unk>; nothing after noticed (the PyTorch reference and every candidate used it). Its
    tokenizer.json is right: loaded as it is (``PreTrainedTokenizerFast``), it agrees with llama.cpp."""
    import json

    from transformers import AutoTokenizer

    truth = _llama_cpp_ids(gguf)
    if truth is None:
        return

    def ids() -> list[int]:
        return [int(t) for t in AutoTokenizer.from_pretrained(out)(PROBE, add_special_tokens=False)["input_ids"]]

    ours = ids()
    if ours == truth:
        return
    path = out / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    named = config.get("tokenizer_class")
    config["tokenizer_class"] = "PreTrainedTokenizerFast"  # tokenizer.json as written, no class's own pipeline
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if ids() == truth:
        logger.info("%s: its tokenizer is kept as tokenizer.json holds it (transformers' %s splits text unlike "
                    "the GGUF's vocabulary)", gguf.name, named)  # fmt: skip
        return
    at = next((i for i, (a, b) in enumerate(zip(ours, truth, strict=False)) if a != b), min(len(ours), len(truth)))
    raise UserInputError(
        f"{gguf.name}: transformers converts its tokenizer into one that splits text unlike the GGUF's own "
        f"vocabulary (read by llama.cpp): {len(ours)} tokens against {len(truth)} for a probe text, first different "
        f"at token {at}; a model converted from it would be measured, fine-tuned and chatted with other tokens",
        hint="give the Hugging Face model this GGUF was made from (`-m` that folder), or chat with and serve the "
        "GGUF itself (`olive-ext chat -m FILE.gguf`, `olive-ext serve -m FILE.gguf`)",
    )


def fill_from_metadata(tokenizer: Any, path: Path) -> None:
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
