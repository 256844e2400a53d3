"""Checkpoints in Olive's own quantized format (``quantization_config.quant_method: olive``, what Olive's Gptq and
Rtn passes write) made readable by onnxruntime-genai's builder.

The builder (0.18) reads Olive's quantized linear layers, but not a quantized embedding (``embeds: true``, as
olive-recipes' Rtn steps write ``model.embed_tokens.qweight``): it fails with "invalid literal for int() with base
10: 'qweight'". Olive's own ModelBuilder pass patches the builder for it, and that patch no longer fits genai 0.18.
Here the embedding is dequantized by olive-ai's own ``QuantEmbedding`` into a float ``model.embed_tokens.weight``
(the same values the quantized lookup gives), in a copy of the folder; the linear layers stay as Olive wrote them.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from olive_ext.errors import MissingDependencyError
from olive_ext.models.folder import config_json

logger = logging.getLogger("olive_ext")

_EMBEDDING = "model.embed_tokens"
_INDEX = "model.safetensors.index.json"


def quantized_embedding(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """The Olive quantization config in a model's config.json (read) when its embedding is quantized, else None."""
    quant = (config or {}).get("quantization_config")
    if not isinstance(quant, dict) or quant.get("quant_method") != "olive" or not quant.get("embeds"):
        return None
    return quant


def with_float_embedding(folder: Path, work: Path) -> Path:
    """``folder`` as the builder can read it: a copy under ``work`` with its quantized embedding dequantized, or
    ``folder`` itself when its embedding is not quantized."""
    config = config_json(folder)
    quant = quantized_embedding(config)
    if config is None or quant is None:
        return folder
    try:
        from olive.common.quant.nn import QuantEmbedding
    except ImportError as e:
        raise MissingDependencyError(
            "olive-ai", f"building {folder} (an embedding quantized by Olive)", "'olive-ext[olive]'"
        ) from e
    from safetensors.torch import load_file, save_file

    out = work / "float-embedding"
    shutil.copytree(folder, out, ignore=shutil.ignore_patterns("*.safetensors", _INDEX))
    override = (quant.get("overrides") or {}).get(_EMBEDDING) or {}
    bits = int(override.get("bits") or quant.get("bits") or 4)
    group_size = int(override.get("group_size") or quant.get("group_size") or -1)
    # a tied output head quantized with the embedding (lm_head: true) stays quantized as Olive made it, untied
    tied_head = bool(quant.get("lm_head") and quant.get("tie_word_embeddings"))
    renamed: dict[str, str] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        tensors = load_file(str(shard))
        if f"{_EMBEDDING}.qweight" in tensors:
            qweight, scales = tensors.pop(f"{_EMBEDDING}.qweight"), tensors.pop(f"{_EMBEDDING}.scales")
            qzeros = tensors.pop(f"{_EMBEDDING}.qzeros", None)
            rows, cols = qweight.shape[0], qweight.shape[1] * 8 // bits
            module = QuantEmbedding(rows, cols, bits=bits, symmetric=bool(quant.get("symmetric")),
                                    group_size=group_size, dtype=scales.dtype)  # fmt: skip
            tensors[f"{_EMBEDDING}.weight"] = module.unpack_and_dequantize(qweight, scales, qzeros).contiguous()
            renamed[shard.name] = f"{_EMBEDDING}.weight"
            if tied_head:  # the output head Olive quantized with it: its own copy of the quantized tensors
                quantized = {"qweight": qweight, "scales": scales, **({"qzeros": qzeros} if qzeros is not None else {})}
                tensors.update({f"lm_head.{k}": v.clone() for k, v in quantized.items()})
        save_file(tensors, str(out / shard.name), metadata={"format": "pt"})
    index = folder / _INDEX
    if index.is_file():  # sharded: the weight map names the float embedding, not its quantized parts
        data = json.loads(index.read_text())
        weights = {k: v for k, v in data.get("weight_map", {}).items() if not k.startswith(f"{_EMBEDDING}.")}
        weights.update({name: shard for shard, name in renamed.items()})
        if tied_head:
            weights.update({f"lm_head.{k}": shard for shard in renamed for k in ("qweight", "scales", "qzeros")})
        (out / _INDEX).write_text(json.dumps({**data, "weight_map": weights}, indent=2))
    config["quantization_config"] = {**quant, "embeds": False}
    if tied_head:
        overrides = {**(quant.get("overrides") or {}), "lm_head": {"bits": bits, "group_size": group_size}}
        config["quantization_config"].update(tie_word_embeddings=False, overrides=overrides)
        config["tie_word_embeddings"] = False
    (out / "config.json").write_text(json.dumps(config, indent=2))
    logger.info("%s: the embedding Olive quantized to %d bits is given to the builder dequantized (the same values; "
                "onnxruntime-genai's builder does not read a quantized embedding)", folder, bits)  # fmt: skip
    return out
