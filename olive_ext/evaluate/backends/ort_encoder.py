"""onnxruntime backend for encoder models (text classification, feature extraction)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from olive_ext.cpu_threads import ort_allows_spinning
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
        providers = [provider] if provider in ort.get_available_providers() else ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(f"{folder}/model.onnx", options, providers=providers)
        self.input_names = {i.name for i in self.session.get_inputs()}

    def run(self, features: dict[str, list[int]]) -> tuple[np.ndarray, float]:
        """Outputs[0] for one tokenized example, and the seconds it took."""
        feeds: dict[str, Any] = {
            k: np.asarray([v], dtype=np.int64) for k, v in features.items() if k in self.input_names
        }
        start = time.perf_counter()
        out = self.session.run(None, feeds)[0]
        return out, time.perf_counter() - start
