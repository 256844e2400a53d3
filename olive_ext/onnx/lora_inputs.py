"""LoRA weights as model inputs: one base ONNX model, adapters swapped at run time.

The genai builder, given ``adapter_path``, writes each LoRA layer as its own
``lora_A``/``lora_B`` MatMul pair with the weights as initializers. ``make_lora_inputs``
turns those initializers into graph inputs whose rank dimension is dynamic, keeps an
empty (rank 0) default so the model still runs as the base model with no adapter
active, and writes the weights to an ``.onnx_adapter`` file that onnxruntime-genai
loads with ``og.Adapters``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from olive_ext.onnx.runtime import onnxruntime

# Where the builder puts LoRA MatMuls: /model/layers.{i}/{attn|mlp}/{module}/lora_{A|B}/MatMul.
_BUILDER_MODULES = {
    "attn": ("q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "dense"),
    "mlp": ("gate_proj", "up_proj", "down_proj", "gate_up_proj", "fc1", "fc2"),
}


def lora_node_names(adapter_path: str | Path, num_layers: int) -> list[str]:
    """Names of the LoRA MatMuls the builder will write, so quantization can leave them in float."""
    config = json.loads((Path(adapter_path) / "adapter_config.json").read_text())
    targets = config.get("target_modules") or []
    wanted = None if isinstance(targets, str) else {str(t).split(".")[-1] for t in targets}
    names = []
    for layer in range(num_layers):
        for group, modules in _BUILDER_MODULES.items():
            for module in modules:
                if wanted is not None and module not in wanted:
                    continue
                names += [f"/model/layers.{layer}/{group}/{module}/lora_{x}/MatMul" for x in "AB"]
    return names


def is_lora_weight(name: str) -> bool:
    return ".lora_A." in name or ".lora_B." in name


def make_lora_inputs(model_path: Path, adapter_file: Path) -> int:
    """Rewrite ``model_path`` in place with LoRA weights as inputs; write them to ``adapter_file``.

    Returns the number of weights moved. Raises ValueError when the model has none in float.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(model_path), load_external_data=False)
    params = {}
    for init in model.graph.initializer:
        if not is_lora_weight(init.name):
            continue
        if init.data_type != onnx.TensorProto.FLOAT and init.data_type != onnx.TensorProto.FLOAT16:
            raise ValueError(f"LoRA weight {init.name} is quantized; LoRA inputs need float weights")
        arr = numpy_helper.to_array(init, base_dir=str(model_path.parent))
        params[init.name] = arr
        is_a = ".lora_A." in init.name
        shape = [arr.shape[0], "lora_r"] if is_a else ["lora_r", arr.shape[1]]
        model.graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, shape))
        empty = np.zeros((arr.shape[0], 0) if is_a else (0, arr.shape[1]), dtype=arr.dtype)
        init.CopyFrom(numpy_helper.from_array(empty, init.name))
    if not params:
        raise ValueError("the model has no LoRA weights (initializers named *.lora_A.* / *.lora_B.*)")
    onnx.save(model, str(model_path))
    export_onnx_adapter(params, adapter_file)
    return len(params)


def export_onnx_adapter(params: dict[str, Any], adapter_file: Path) -> None:
    """Write named weights (numpy arrays) as an onnxruntime ``.onnx_adapter`` file."""

    ort = onnxruntime()
    adapter = ort.AdapterFormat()
    adapter.set_adapter_version(1)
    adapter.set_model_version(1)
    adapter.set_parameters({k: ort.OrtValue.ortvalue_from_numpy(v) for k, v in params.items()})
    adapter_file.parent.mkdir(parents=True, exist_ok=True)
    adapter.export_adapter(str(adapter_file))
