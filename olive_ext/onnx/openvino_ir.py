"""OpenVINO IR folders: convert a Hugging Face model (PyTorch) to OpenVINO, compress its weights, run it.

An ``openvino`` artifact is a folder holding ``openvino_model.xml`` + ``openvino_model.bin`` (the IR), the source's
tokenizer and config files, and ``openvino.json`` (what the graph is: ``causal`` LM or encoder ``task``, its inputs).

Conversion is ``openvino.convert_model`` on the PyTorch module (OpenVINO's PyTorch frontend, dynamic batch and
sequence axes). A causal LM is converted without its KV cache (``use_cache=False``: input ids -> logits at every
position), so :class:`OVModel` decodes by running the whole sequence again for each new token. The CPU plugin runs
with ``INFERENCE_PRECISION_HINT=f32``: on CPUs with AVX512-BF16 or AMX its default is bf16, which would make an
"fp32" build something else. Weight compression is NNCF's ``compress_weights`` (int8 or int4, data-free).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from olive_ext.onnx.runtime import openvino

IR_FILE = "openvino_model.xml"
META_FILE = "openvino.json"
# NNCF's data-free weight compression modes, by our precision name
COMPRESSION_MODES = {"int8": "INT8_ASYM", "int8_sym": "INT8_SYM", "int4": "INT4_ASYM", "int4_sym": "INT4_SYM"}


def ir_meta(folder: str | Path) -> dict[str, Any]:
    """The folder's ``openvino.json`` (causal, task, inputs, precision)."""
    return dict(json.loads((Path(folder) / META_FILE).read_text()))


def copy_hf_companions(source: Path, out_dir: Path) -> None:
    """Tokenizer and config files of the HF source, beside the IR (as onnx_export writes them)."""
    for item in source.iterdir():
        # .jinja: transformers 5 saves the chat template apart (chat_template.jinja); without it the IR had none
        if item.is_file() and item.suffix in {".json", ".txt", ".model", ".jinja"} and not item.name.endswith(
            ".index.json"
        ):
            shutil.copy2(item, out_dir / item.name)


def convert_hf(model: Any, out_dir: Path, causal: bool, task: str, input_names: list[str]) -> dict[str, Any]:
    """Convert a loaded transformers model (fp32, eval) to IR in ``out_dir``; returns the folder's meta."""
    import torch

    ov = openvino("converting models to OpenVINO")
    output = "logits" if causal or task == "text-classification" else "last_hidden_state"

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None) -> Any:
            given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
            kwargs = {name: given[name] for name in input_names}
            if causal:
                kwargs["use_cache"] = False
            return getattr(self.inner(**kwargs), output)

    example = {name: torch.ones(1, 8, dtype=torch.int64) for name in input_names}
    with torch.inference_mode():
        converted = ov.convert_model(Wrapped().eval(), example_input=example,
                                     input=[(name, [-1, -1], ov.Type.i64) for name in input_names])  # fmt: skip
    for port, name in zip(converted.inputs, input_names, strict=True):
        port.get_tensor().set_names({name})
    converted.outputs[0].get_tensor().set_names({output})
    out_dir.mkdir(parents=True, exist_ok=True)
    ov.save_model(converted, str(out_dir / IR_FILE), compress_to_fp16=False)
    meta = {"causal": causal, "task": task, "inputs": input_names, "output": output, "precision": "fp32",
            "openvino": ov.get_version()}  # fmt: skip
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=1))
    return meta


def compress_weights(source: Path, out_dir: Path, precision: str, group_size: int, ratio: float) -> dict[str, Any]:
    """NNCF's data-free weight compression of the IR in ``source`` into ``out_dir`` (companions copied)."""
    ov = openvino("compressing OpenVINO weights")
    import nncf

    model = ov.Core().read_model(str(source / IR_FILE))
    kwargs: dict[str, Any] = {"mode": getattr(nncf.CompressWeightsMode, COMPRESSION_MODES[precision])}
    if precision.startswith("int4"):
        kwargs.update(group_size=group_size, ratio=ratio)
    compressed = nncf.compress_weights(model, **kwargs)
    out_dir.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file() and item.name not in {IR_FILE, IR_FILE.replace(".xml", ".bin")}:
            shutil.copy2(item, out_dir / item.name)
    ov.save_model(compressed, str(out_dir / IR_FILE), compress_to_fp16=False)
    meta = {**ir_meta(source), "precision": precision.split("_")[0], "compression": {"mode": kwargs["mode"].value}}
    if precision.startswith("int4"):
        meta["compression"].update(group_size=group_size, ratio=ratio)
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=1))
    return meta


def describe_ir(folder: Path, causal: bool, task: str, precision: str) -> dict[str, Any]:
    """Write ``openvino.json`` for an IR another tool made (Olive's OpenVINO passes), renamed to ``IR_FILE``; its
    inputs are read from the IR. Returns the meta."""
    ov = openvino("reading OpenVINO models")
    xml = folder / IR_FILE
    if not xml.exists():
        found = sorted(folder.glob("*.xml"))
        if len(found) != 1:
            raise FileNotFoundError(f"{folder} holds {len(found)} OpenVINO .xml files; expected one")
        found[0].rename(xml)
        found[0].with_suffix(".bin").rename(xml.with_suffix(".bin"))
    model = ov.Core().read_model(str(xml))
    inputs = [port.get_any_name() for port in model.inputs]
    meta = {"causal": causal, "task": task, "inputs": inputs, "output": model.outputs[0].get_any_name(),
            "precision": precision, "openvino": ov.get_version()}  # fmt: skip
    (folder / META_FILE).write_text(json.dumps(meta, indent=1))
    return meta


class OVModel:
    """An IR folder compiled for OpenVINO's CPU plugin (fp32 inference precision, ``threads`` threads)."""

    def __init__(self, folder: str, threads: int | None = None) -> None:
        ov = openvino("running OpenVINO models")
        self.meta = ir_meta(folder)
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(Path(folder) / IR_FILE)), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.inputs: list[str] = list(self.meta["inputs"])

    def forward(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Output 0 for a batch of features (missing mask/type ids at their neutral values)."""
        ids = np.asarray(features["input_ids"], dtype=np.int64)
        neutral = {"attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        feeds = {name: np.asarray(features.get(name, neutral.get(name)), dtype=np.int64) for name in self.inputs}
        result = self.request.infer(feeds)
        return np.asarray(result[self.compiled.outputs[0]])

    def logits(self, ids: list[int]) -> np.ndarray:
        """Next-token logits at every position of ``ids`` (causal LMs)."""
        return self.forward({"input_ids": np.asarray([ids])})[0]

    def greedy(self, ids: list[int], n: int, eos: set[int]) -> list[int]:
        """Greedy continuation of ``ids`` for up to ``n`` tokens, stopping at an end token (not kept)."""
        seq, out = list(ids), []
        for _ in range(n):
            token = int(self.logits(seq)[-1].argmax())
            if token in eos:
                break
            out.append(token)
            seq.append(token)
        return out
