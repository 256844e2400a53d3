"""onnxruntime backend for encoder models (text classification, feature extraction)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from olive_ext.cpu_threads import ort_allows_spinning
from olive_ext.onnx.folder import onnx_graph, tuned_session_options
from olive_ext.onnx.runtime import onnxruntime


class OrtEncoderBackend:
    """An ONNX encoder in a folder (model.onnx plus tokenizer files), one example at a time."""

    def __init__(self, folder: str, provider: str, threads: int) -> None:
        ort = onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if not ort_allows_spinning():  # a busy machine: wait passively, as OpenMP does (olive_ext/cpu_threads.py)
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        apply_tuned(options, tuned_session_options(folder), ort)  # Olive's OrtSessionParamsTuning, when it ran
        providers = [provider] if provider in ort.get_available_providers() else ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(onnx_graph(folder)), options, providers=providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        # a graph made static (DynamicToFixedShape, NPU exports) takes exactly this many tokens per example
        lengths = [i.shape[1] for i in self.session.get_inputs() if len(i.shape) == 2 and isinstance(i.shape[1], int)]
        self.fixed_length: int | None = lengths[0] if lengths else None

    def run(self, features: dict[str, list[int]]) -> tuple[np.ndarray, float]:
        """Outputs[0] for one tokenized example, and the seconds it took. On a fixed-length graph the example is
        padded (attention mask 0) or cut to that length, and per-token outputs are cut back to its tokens."""
        n = len(features["input_ids"])
        feeds = encoder_feeds(self.input_names, fit_length(features, self.fixed_length))
        start = time.perf_counter()
        out = self.session.run(None, feeds)[0]
        seconds = time.perf_counter() - start
        if self.fixed_length and n < self.fixed_length and out.ndim >= 2 and out.shape[1] == self.fixed_length:
            out = out[:, :n]
        return out, seconds


def fit_length(features: dict[str, list[int]], length: int | None) -> dict[str, list[int]]:
    """``features`` of one example at exactly ``length`` tokens (None: as they are): cut, or padded with 0 and
    an attention mask of 0 over the padding, which attention then ignores."""
    n = len(features["input_ids"])
    if length is None or n == length:
        return features
    if n > length:
        return {k: list(v)[:length] for k, v in features.items()}
    pad = [0] * (length - n)
    padded = {k: list(v) + pad for k, v in features.items()}
    padded["attention_mask"] = list(features.get("attention_mask", [1] * n)) + pad
    return padded


def apply_tuned(options: Any, tuned: dict[str, Any], ort: Any) -> None:
    """Set the session options OrtSessionParamsTuning chose (threads, execution mode, optimization level, config
    entries) on ``options``, as olive-ai's own sessions set them."""
    for key in ("intra_op_num_threads", "inter_op_num_threads"):
        if isinstance(tuned.get(key), int) and tuned[key] > 0:
            setattr(options, key, tuned[key])
    if tuned.get("execution_mode") is not None:
        options.execution_mode = ort.ExecutionMode(int(tuned["execution_mode"]))
    if tuned.get("graph_optimization_level") is not None:
        options.graph_optimization_level = ort.GraphOptimizationLevel(int(tuned["graph_optimization_level"]))
    for key, value in (tuned.get("extra_session_config") or {}).items():
        options.add_session_config_entry(str(key), str(value))


# Inputs an exported encoder may declare that a tokenizer does not always give, and their neutral value for
# one unpadded example of n tokens (a tokenizer without token types, a graph exported with position ids).
_DEFAULT_INPUTS = {
    "attention_mask": lambda n: np.ones(n, dtype=np.int64),
    "token_type_ids": lambda n: np.zeros(n, dtype=np.int64),
    "position_ids": lambda n: np.arange(n, dtype=np.int64),
}


def encoder_feeds(input_names: list[str], features: dict[str, list[int]]) -> dict[str, Any]:
    """A feed for every input the graph declares: the tokenizer's features, the others at their neutral value.

    Raises ValueError naming the input when the graph declares one that neither gives (an exported
    graph that needs, say, pixel values is not a text encoder this backend can time)."""
    n = len(features["input_ids"])
    feeds: dict[str, Any] = {}
    for name in input_names:
        if name in features:
            feeds[name] = np.asarray([features[name]], dtype=np.int64)
        elif name in _DEFAULT_INPUTS:
            feeds[name] = _DEFAULT_INPUTS[name](n)[None, :]
        else:
            given = ", ".join(sorted(features))
            raise ValueError(f"the encoder's graph declares input {name!r}; the tokenizer gives {given} only")
    return feeds
