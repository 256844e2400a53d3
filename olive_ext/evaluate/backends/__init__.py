"""Runtimes that run a candidate inside the evaluation worker: onnxruntime-genai, PyTorch, onnxruntime.

A language-model backend takes token ids and returns token ids and timings; it does no
tokenization or scoring, so every runtime is scored by the same code in the parent.
"""

from __future__ import annotations

from olive_ext.evaluate.backends.base import Forced, Generation, LMBackend, Stopwatch, top2

__all__ = ["Forced", "Generation", "LMBackend", "Stopwatch", "open_backend", "top2"]


def open_backend(
    kind: str,
    path: str,
    adapter_path: str | None,
    provider: str,
    threads: int,
    adapter_name: str | None = None,
    gguf_file: str | None = None,
) -> object:
    """The backend for an artifact kind: genai -> GenAIBackend, hf and gguf inputs -> TorchLMBackend,
    gguf_export folders -> LlamaCppBackend, onnx -> OrtEncoderBackend, openvino -> an OpenVINO LM or encoder."""
    if kind == "genai":
        # each backend module imports this package (its protocol) and a runtime: loaded for its kind only
        from olive_ext.evaluate.backends.genai import GenAIBackend

        return GenAIBackend(path, provider, threads, adapter_path, adapter_name)
    if kind == "gguf" and gguf_file is None:
        # a gguf_export candidate (its folder's llama_cpp.json names the file): run by llama.cpp;
        # a user's GGUF input names its file and is dequantized by PyTorch below
        from olive_ext.evaluate.backends.llama_cpp import LlamaCppBackend, gguf_in

        if gguf_in(path) is not None:
            return LlamaCppBackend(path, threads)
    if kind in {"hf", "gguf"}:
        # torch and transformers: loaded only for PyTorch models
        from olive_ext.evaluate.backends.torch_lm import TorchLMBackend

        return TorchLMBackend(path, adapter_path, threads, gguf_file)
    if kind == "onnx":
        # onnxruntime: loaded only for ONNX models
        from olive_ext.evaluate.backends.ort_encoder import OrtEncoderBackend

        return OrtEncoderBackend(path, provider, threads)
    if kind == "openvino":
        # openvino: loaded only for OpenVINO IR folders (an LM or an encoder, as its openvino.json says)
        from olive_ext.evaluate.backends.openvino import OpenVINOEncoderBackend, OpenVINOLMBackend
        from olive_ext.onnx.openvino_ir import ir_meta  # numpy at import; the json reader is what is used here

        if ir_meta(path).get("causal"):
            return OpenVINOLMBackend(path, threads)
        return OpenVINOEncoderBackend(path, threads)
    raise ValueError(f"no evaluation backend for {kind!r} models")
