"""Tiny models of other families written as GGUF (gguf-py), as llama.cpp's converter names them, for GGUF inputs.

olive-ext's own GGUF writer (passes/gguf_export.py) covers Llama, the family whose llama.cpp output it checks.
This test helper writes the families transformers' GGUF reader also reads back (its integration lists them:
``transformers.modeling_gguf_pytorch_utils.GGUF_SUPPORTED_ARCHITECTURES``), with gguf-py's own tensor-name map
(``gguf.get_tensor_name_map``, the map transformers inverts) and the tokenizer metadata of olive-ext's writer.
What each family needs besides the names is the inverse of what transformers' reader undoes:
- ``permute``: Llama-style q/k rows (llama.cpp interleaves rotary pairs; transformers reverse-permutes them
  for the ``llama`` architecture). llama.cpp writes Mistral as ``llama``; transformers reads it back as
  LlamaForCausalLM (same weights and logits; a "mistral" general.name would make it look for a gguf-py
  ``mistral`` architecture, which gguf 0.19 does not have).
- ``norm_offset``: Gemma 2/3 store RMSNorm weights plus one (llama.cpp adds it; transformers subtracts it).
Config fields the reader does not read back take transformers' defaults, so ``gguf_ready`` sets the tiny model
to them first (``READER_DEFAULTS``); Qwen3 is not read at all unless head_dim is its default 128 (``REFUSED``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# family -> (GGUF architecture, general.name, permute q/k, norm offset)
GGUF_FAMILIES: dict[str, tuple[str, str, bool, float]] = {
    "llama": ("llama", "tiny llama", True, 0.0),
    "mistral": ("llama", "tiny mistral", True, 0.0),
    "qwen2": ("qwen2", "tiny qwen2", False, 0.0),
    "qwen3": ("qwen3", "tiny qwen3", False, 0.0),  # REFUSED by the reader
    "gemma2": ("gemma2", "tiny gemma2", False, 1.0),
    "gemma3": ("gemma3", "tiny gemma3", False, 1.0),
}


# Families transformers' GGUF reader does not load, with the reason (the README's family table says the same).
REFUSED = {
    "qwen3": "transformers 5.23's reader does not read attention.key_length for qwen3, so head_dim falls back to "
    "Qwen3Config's 128 and any other head size fails to load (size mismatch)",
}


def gguf_ready(folder: Path, family: str) -> None:
    """Set the config fields the GGUF reader cannot carry to the defaults it assumes (weights unchanged).

    Gemma 2/3: query_pre_attn_scalar 256 (not in GGUF metadata); Gemma 3: the layer pattern the reader
    rebuilds from Gemma 3's default (every 6th layer full), i.e. all-sliding for 2 layers.
    """
    config = json.loads((folder / "config.json").read_text())
    if family in ("gemma2", "gemma3"):
        config["query_pre_attn_scalar"] = 256
    if family == "gemma3":
        n = int(config["num_hidden_layers"])
        config["layer_types"] = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(n)]
    (folder / "config.json").write_text(json.dumps(config, indent=2))


def write_family_gguf(folder: Path, family: str, dest: Path, split_max_tensors: int = 0) -> Path:
    """Write the tiny HF model in ``folder`` (built by tiny_models.build_tiny_decoder) as an F32 GGUF
    (``split_max_tensors``: split as llama.cpp's gguf-split does; the first shard's path is returned)."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    from olive_ext.passes.gguf_export import _add_tokenizer, _permute

    arch, name, permute, norm_offset = GGUF_FAMILIES[family]
    config = json.loads((folder / "config.json").read_text())
    n_head, n_kv = int(config["num_attention_heads"]), int(config["num_key_value_heads"])
    head_dim = int(config.get("head_dim") or config["hidden_size"] // n_head)
    rope: dict[str, Any] = config.get("rope_parameters") or {}
    rope = rope.get("full_attention", rope)  # per-type rope (Gemma 3): the global layers' theta
    writer = gguf.GGUFWriter(dest, arch, split_max_tensors=split_max_tensors)
    writer.add_name(name)
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    if config.get("sliding_window"):
        writer.add_sliding_window(int(config["sliding_window"]))
    for key in ("attn_logit_softcapping", "final_logit_softcapping"):
        if config.get(key):
            getattr(writer, f"add_{key}")(float(config[key]))
    writer.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    writer.add_vocab_size(_add_tokenizer(writer, folder, int(config["vocab_size"])))
    names = gguf.get_tensor_name_map(next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch),
                                     int(config["num_hidden_layers"]))  # fmt: skip
    for hf_name, w in sorted(load_file(folder / "model.safetensors").items()):
        if hf_name == "lm_head.weight" and config.get("tie_word_embeddings"):
            continue
        base, suffix = hf_name.rsplit(".", 1)
        gguf_name = names.get_name(base)
        if gguf_name is None:
            raise KeyError(f"{family}: gguf-py has no name for {hf_name}")
        w = w.astype(np.float32)
        if permute and gguf_name.endswith(("attn_q", "attn_k")) and suffix == "weight":
            w = _permute(w, n_head if gguf_name.endswith("attn_q") else n_kv)
        if norm_offset and "norm" in gguf_name:
            w = w + norm_offset
        writer.add_tensor(f"{gguf_name}.{suffix}", np.ascontiguousarray(w))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    shards = sorted(dest.parent.glob(f"{dest.stem}-00001-of-*.gguf"))
    return shards[0] if split_max_tensors and shards else dest
