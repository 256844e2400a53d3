"""A bitsandbytes-quantized Hugging Face folder -> the same model in full precision.

Unsloth's ``*-bnb-4bit`` bases (and any model saved after ``load_in_4bit``/``load_in_8bit``) keep their
weights in bitsandbytes' packed layout, with ``quantization_config`` in config.json. Fine-tuning (QLoRA) takes
them as they are; everything that converts weights (merging an adapter, ONNX and GGUF builds, the PyTorch
reference) needs plain tensors. transformers dequantizes them (``PreTrainedModel.dequantize``) in the
config's compute dtype; this pass does it once, cached, and the engine inserts it when such a model meets a
pass that converts weights, as ``gguf_to_hf`` does for GGUF files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from olive_ext.artifacts import Artifact
from olive_ext.errors import MissingDependencyError
from olive_ext.passes.base import Pass, PassConfig, register_pass
from olive_ext.passes.context import RunContext


@register_pass("dequantize_hf")
class DequantizeHf(Pass[PassConfig]):
    """Dequantize a bitsandbytes 4/8-bit Hugging Face model into a full-precision folder (adapter kept)."""

    config_class = PassConfig
    accepts = frozenset({"hf"})
    produces = "hf"
    libraries = ("transformers", "bitsandbytes", "torch")
    takes_packed_weights = True  # it is the conversion: the engine inserts no other before it

    def run(self, artifact: Artifact, ctx: RunContext) -> Artifact:
        out = ctx.output_dir / "model"
        dequantize_folder(Path(artifact.path), out, ctx.trust_remote_code)
        return Artifact("hf", str(out), artifact.adapter_path, meta={**artifact.meta, "dequantized": artifact.path})


def dequantize_folder(folder: Path, out: Path, trust_remote_code: bool = False) -> None:
    """Write the bitsandbytes model at ``folder`` as a plain HF folder at ``out`` (weights and tokenizer)."""
    try:
        import bitsandbytes  # noqa: F401  (transformers needs it to read the packed weights)
    except ImportError as e:
        raise MissingDependencyError("bitsandbytes", "reading a bitsandbytes-quantized model") from e
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model: Any = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=trust_remote_code)
    model = model.dequantize()
    # transformers 5 keeps the loader's weight conversions (packed -> plain) and reverses them on save, which
    # bitsandbytes' converter cannot (NotImplementedError); the weights are plain now, so there is nothing to reverse.
    model._weight_conversions = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code).save_pretrained(out)
