"""Runtimes that run a candidate inside the evaluation worker: onnxruntime-genai, PyTorch, onnxruntime.

A language-model backend takes token ids and returns token ids and timings; it does no
tokenization or scoring, so every runtime is scored by the same code in the parent.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field


@dataclass
class Generation:
    """Greedy output for one prompt. ``step_seconds[0]`` covers the prompt and the first token."""

    tokens: list[int] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)


class LMBackend(ABC):
    """A causal LM that generates greedily and scores continuations."""

    eos_ids: set[int]

    @abstractmethod
    def generate(self, prompt: list[int], max_new_tokens: int, min_new_tokens: int = 0) -> Generation:
        """Greedy decoding, stopping at an end token once ``min_new_tokens`` are out."""

    @abstractmethod
    def continuation_nll(self, prompt: list[int], continuation: list[int]) -> float:
        """Sum of -log p(continuation token | everything before it)."""


class Stopwatch:
    """Times consecutive steps with perf_counter."""

    def __init__(self) -> None:
        self.last = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        elapsed, self.last = now - self.last, now
        return elapsed


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
    gguf_export folders -> LlamaCppBackend, onnx -> OrtEncoderBackend."""
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
    raise ValueError(f"no evaluation backend for {kind!r} models")
