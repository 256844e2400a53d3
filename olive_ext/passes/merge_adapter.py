"""Merge a peft adapter into its base model (needed before a plain export)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from olive_ext.artifacts import Artifact
from olive_ext.errors import UserInputError
from olive_ext.models.folder import tokenizer_folder
from olive_ext.onnx.peft_model import apply_adapter
from olive_ext.passes.base import Pass, PassConfig, register_pass
from olive_ext.passes.context import RunContext
from olive_ext.passes.shared import shared_folder


class MergeAdapterConfig(PassConfig):
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="dtype of the merged weights; auto keeps the base model's"
    )


@register_pass("merge_adapter")
class MergeAdapter(Pass[MergeAdapterConfig]):
    """Merge the artifact's peft adapter into the base weights and save a plain HF model."""

    config_class = MergeAdapterConfig
    accepts = frozenset({"hf"})
    produces = "hf"
    libraries = ("transformers", "peft", "torch")
    version = 2  # 2: a LoRA on a tied lm_head/embed_tokens is merged untied (entries of 1 changed both layers)
    olive_types = ("MergeAdapterWeights",)

    @classmethod
    def check_input(cls, artifact: Artifact) -> str | None:
        return None if artifact.adapter_path else "it has no adapter to merge"

    def run(self, artifact: Artifact, ctx: RunContext) -> Artifact:
        assert artifact.adapter_path is not None
        out = ctx.output_dir / "model"
        merge_adapter_into(artifact.path, artifact.adapter_path, out, self.config.dtype, ctx.trust_remote_code)
        meta = {**artifact.meta, "merged_adapter": artifact.adapter_path}
        return Artifact("hf", str(out), None, meta=meta)


def merge_adapter_into(
    base: str, adapter: str, out: Path, dtype: str = "auto", trust_remote_code: bool = False
) -> Path:
    """Load ``base`` with ``adapter``, merge, and save model and tokenizer to ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (Path(adapter) / "adapter_config.json").exists():
        raise UserInputError(f"{adapter} is not a peft adapter folder (adapter_config.json is missing)")
    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch_dtype, trust_remote_code=trust_remote_code)
    peft_model = apply_adapter(model, adapter)
    untie_adapted_embeddings(peft_model)
    merged = peft_model.merge_and_unload()
    merged.save_pretrained(out)
    # The adapter folder carries the tokenizer and chat template used in fine-tuning; prefer it.
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder(base, adapter), trust_remote_code=trust_remote_code)
    tokenizer.save_pretrained(out)
    return out


def untie_adapted_embeddings(model: Any) -> bool:
    """Give the output layer its own copy of the weights it shares with the input embeddings, when the adapter
    changes either of them; True when it did.

    Tied models (SmolLM2, Llama-3.2, Qwen2.5-0.5B) hold one tensor for both. Unmerged, peft adds each layer's delta
    on the fly and the tensor stays as it is; merging writes a LoRA on lm_head (or on embed_tokens) into that one
    tensor, so the other layer changes too: merged logits agreed with peft's on 20% of the tokens. The merged
    model is then saved untied (the output layer's weights become a tensor of their own).
    """
    import torch

    inputs, outputs = model.get_input_embeddings(), model.get_output_embeddings()
    if inputs is None or outputs is None:
        return False
    base_in, base_out = getattr(inputs, "base_layer", inputs), getattr(outputs, "base_layer", outputs)
    adapted = hasattr(inputs, "base_layer") or hasattr(outputs, "base_layer")  # peft wraps the layers it adapts
    if not adapted or getattr(base_in, "weight", None) is not getattr(base_out, "weight", None):
        return False
    base_out.weight = torch.nn.Parameter(base_out.weight.detach().clone(), requires_grad=False)
    config = model.get_base_model().config if hasattr(model, "get_base_model") else model.config
    for cfg in {id(c): c for c in (config, config.get_text_config())}.values():
        cfg.tie_word_embeddings = False
    return True


def merged_model(artifact: Artifact, ctx: RunContext) -> Path:
    """``artifact`` (base + adapter) merged into one HF folder for the builds, made once per process for all its
    candidates. In float32 whatever the base's dtype: merged in bf16/fp16, base + delta is rounded to 16 bits and
    an fp32 build failed parity with the fp32 reference (max |delta| 0.023 for a bf16 base); the builders cast
    to the precision they build."""
    assert artifact.adapter_path is not None
    adapter = artifact.adapter_path

    def make(folder: Path) -> None:
        merge_adapter_into(artifact.path, adapter, folder / "model", "float32", ctx.trust_remote_code)

    return shared_folder(ctx.cache.tmp, artifact.fingerprint, "merged:float32", make) / "model"
