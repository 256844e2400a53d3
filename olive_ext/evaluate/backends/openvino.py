"""OpenVINO backend: an IR folder (olive_ext/onnx/openvino_ir.py) on OpenVINO's CPU plugin, fp32 inference precision.

Causal LMs are measured like every other LM backend (greedy tokens with per-token timings, continuation NLL,
teacher-forced top-2); their IR has no KV cache, so each decode step runs the whole sequence again (slower per
token than a cached decoder of the same weights, and recorded as such). Encoders answer ``run(features)`` like
the onnxruntime encoder backend.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from olive_ext.evaluate.backends.base import Forced, Generation, LMBackend, Stopwatch, top2
from olive_ext.models.folder import folder_eos_ids
from olive_ext.onnx.openvino_ir import OVModel


class OpenVINOLMBackend(LMBackend):
    """A causal-LM IR (no KV cache), greedy, timed per token."""

    def __init__(self, folder: str, threads: int) -> None:
        self.model = OVModel(folder, threads)
        self.eos_ids = folder_eos_ids(Path(folder))

    def generate(self, prompt: list[int], max_new_tokens: int, min_new_tokens: int = 0) -> Generation:
        out = Generation()
        watch = Stopwatch()
        seq = list(prompt)
        for step in range(max_new_tokens):
            logits = self.model.logits(seq)[-1]
            if step < min_new_tokens and self.eos_ids:
                logits = logits.copy()
                logits[list(self.eos_ids)] = -np.inf
            token = int(logits.argmax())
            out.step_seconds.append(watch.lap())
            if token in self.eos_ids:
                break
            out.tokens.append(token)
            seq.append(token)
        return out

    def continuation_nll(self, prompt: list[int], continuation: list[int]) -> float:
        logits = self.model.logits(prompt + continuation).astype(np.float64)
        rows = logits[len(prompt) - 1 : len(prompt) - 1 + len(continuation)]
        shifted = rows - rows.max(axis=-1, keepdims=True)
        logprobs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        return float(-logprobs[np.arange(len(continuation)), continuation].sum())

    def forced_predictions(self, rows: list[tuple[list[int], list[int]]]) -> list[Forced]:
        out = []
        for prompt, answer in rows:
            logits = self.model.logits(prompt + answer)
            out.append(top2(logits[len(prompt) - 1 : len(prompt) + len(answer)]))
        return out


class OpenVINOEncoderBackend:
    """An encoder IR, one example at a time (the onnxruntime encoder backend's interface)."""

    def __init__(self, folder: str, threads: int) -> None:
        self.model = OVModel(folder, threads)

    def run(self, features: dict[str, list[int]]) -> tuple[np.ndarray, float]:
        """Output 0 for one tokenized example, and the seconds it took."""
        feeds = {k: np.asarray([v], dtype=np.int64) for k, v in features.items() if k in self.model.inputs}
        start = time.perf_counter()
        out = self.model.forward(feeds)
        return out, time.perf_counter() - start
