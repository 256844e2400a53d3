"""A peft adapter applied to its base model, the base resized first to the vocabulary the adapter was trained with.

Every place that loads an adapter onto a PyTorch model goes through :func:`apply_adapter` (the merge, the parity
check's reference, the PyTorch evaluation, a fine-tune that continues an adapter). It lives in this low layer
because the parity check is its lowest user.

LLaMA-Factory's ``new_special_tokens`` + ``resize_vocab`` (and any Trainer run that added tokens) saves the adapter
with ``embed_tokens``/``lm_head`` in ``modules_to_save`` at the new row count (padded to a multiple of 64), and the
tokenizer with the new tokens beside it; loaded onto the unresized base, peft failed with "size mismatch for
...embed_tokens... [515, 64] ... current model is [512, 64]" after the build had started.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_EMBEDDING_NAMES = ("embed_tokens", "lm_head")  # the layers peft saves whole (modules_to_save) when tokens are added


def adapter_vocab_rows(adapter_path: str | Path) -> int | None:
    """The row count of the embedding (or output) layer the adapter saves whole, or None when it saves neither."""
    from safetensors import safe_open

    weights = Path(adapter_path) / "adapter_model.safetensors"
    if not weights.is_file():
        return None
    with safe_open(str(weights), framework="pt") as tensors:
        for name in tensors.keys():  # noqa: SIM118 - safe_open is not a mapping
            parts = name.split(".")
            if any(p in _EMBEDDING_NAMES for p in parts) and parts[-1] == "weight" and "lora_" not in name:
                return int(tensors.get_slice(name).get_shape()[0])
    return None


def apply_adapter(model: Any, adapter_path: str | Path, **kwargs: Any) -> Any:
    """``PeftModel.from_pretrained(model, adapter_path, **kwargs)``, the model's embeddings first resized to the
    adapter's vocabulary where they differ."""
    from peft import PeftModel

    rows = adapter_vocab_rows(adapter_path)
    embeddings = model.get_input_embeddings()
    if rows is not None and embeddings is not None and embeddings.weight.shape[0] != rows:
        model.resize_token_embeddings(rows, mean_resizing=False)  # the adapter holds the trained rows
    return PeftModel.from_pretrained(model, str(adapter_path), **kwargs)
