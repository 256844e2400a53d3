"""The weight-only quantization settings that the genai builder and the ONNX quantizer share, declared once.

``model_builder`` (int4/int8 builds) and ``int4_weight`` (MatMulNBits on an existing ONNX model) both
quantize MatMul weights in blocks; their block size, symmetry and compute type are these fields, with
one default each. Olive's ONNX quantizer passes default to block 128: their translation says so
explicitly (``olive_type_params``), so an Olive config means what it meant in Olive.
"""

from __future__ import annotations

from typing import Literal

from olive_ext.options import Options, searchable

BlockSize = Literal[16, 32, 64, 128, 256]
AccuracyLevel = Literal[0, 1, 2, 3, 4]


class WeightQuantConfig(Options):
    """Block-wise weight quantization: block size, symmetry, MatMulNBits compute type."""

    block_size: BlockSize = searchable(32, description="weights per quantization block (int4/int8)")
    symmetric: bool = searchable(True, description="symmetric (int4/int8) or asymmetric (uint4/uint8 + zero point)")
    accuracy_level: AccuracyLevel | None = searchable(
        None,
        description="MatMulNBits compute type: 1 fp32, 2 fp16, 3 bf16, 4 int8 (fast on CPU); unset: model_builder "
        "uses 4 on cpu/webgpu and 0 elsewhere, int4_weight leaves 0",
    )
