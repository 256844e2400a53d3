"""llama.cpp backend (llama-cpp-python): greedy decoding with per-token timing, and continuation NLL.

It runs the folders the ``gguf_export`` pass writes: a ``.gguf`` plus the HF tokenizer and a
``llama_cpp.json`` marker naming the file. The marker is how a GGUF *candidate* is told apart
from a GGUF *input* (a user's file, which the PyTorch backend dequantizes through transformers).
Timing mirrors the genai backend: one ``llama_decode`` of one token plus the argmax of its
logits per step, timed from Python, so ttft/latency/throughput mean the same for both runtimes.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import IO, Any

from olive_ext.evaluate.backends.base import Forced, Generation, LMBackend, Stopwatch, top2

MARKER = "llama_cpp.json"
# KV cache size: prompts plus new tokens of the eval jobs fit; a larger context would only add
# KV-cache memory that the other runtimes (allocating per request) do not pay.
MAX_CONTEXT = 2048


def gguf_in(folder: str | Path) -> Path | None:
    """The .gguf a ``gguf_export`` folder holds (named by its marker), or None when ``folder`` is not one."""
    marker = Path(folder) / MARKER
    if not marker.is_file():
        return None
    name = json.loads(marker.read_text()).get("gguf_file", "")
    path = Path(folder) / name
    return path if name and path.is_file() else None


def load_llama(model_path: Path, threads: int, n_ctx: int = 0) -> Any:
    """A llama_cpp.Llama on the CPU with ``threads`` threads and a context of ``n_ctx`` (0: the model's, capped)."""
    import llama_cpp

    if not n_ctx:
        n_ctx = min(trained_context(model_path) or MAX_CONTEXT, MAX_CONTEXT)
    return llama_cpp.Llama(
        model_path=str(model_path),
        n_ctx=n_ctx,
        n_batch=512,
        n_threads=threads,
        n_threads_batch=threads,
        n_gpu_layers=0,
        verbose=False,
    )


# GGUF metadata value types (gguf.GGUFValueType) -> struct format of a scalar; 8 is a string, 9 an array
_SCALAR_FORMATS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


def trained_context(path: Path) -> int | None:
    """The ``<arch>.context_length`` a GGUF file's metadata gives, or None when it has none.

    Read from the header's key-value section, stopping at that key (it comes before the tokenizer's
    arrays), not with gguf's GGUFReader, which parses every field and tensor header eagerly: 3.6 s of a
    4.1 s llama.cpp load for SmolLM2-135M (its 49k-token vocabulary). Big-endian or version-1 files go
    to GGUFReader."""
    with open(path, "rb") as f:
        magic, version = f.read(4), f.read(4)
        if magic != b"GGUF" or struct.unpack("<I", version)[0] not in (2, 3):
            return _trained_context_by_reader(path)
        _tensors, n_kv = struct.unpack("<QQ", f.read(16))
        arch = None
        for _ in range(n_kv):
            key = _gguf_string(f)
            value = _gguf_value(f, struct.unpack("<I", f.read(4))[0])
            if key == "general.architecture":
                arch = value
            elif arch is not None and key == f"{arch}.context_length":
                return int(value)
    return None


def _trained_context_by_reader(path: Path) -> int | None:
    from gguf import GGUFReader

    fields = GGUFReader(path).fields
    arch = fields["general.architecture"].contents()
    trained = fields.get(f"{arch}.context_length")
    return int(trained.contents()) if trained else None


def _gguf_string(f: IO[bytes]) -> str:
    (size,) = struct.unpack("<Q", f.read(8))
    return f.read(size).decode("utf-8", errors="replace")


def _gguf_value(f: IO[bytes], kind: int) -> Any:
    if kind == _STRING:
        return _gguf_string(f)
    if kind == _ARRAY:  # skipped over: item type, count, items
        item, count = struct.unpack("<IQ", f.read(12))
        if item in _SCALAR_FORMATS:
            f.seek(count * struct.calcsize("<" + _SCALAR_FORMATS[item]), 1)
        else:
            for _ in range(count):
                _gguf_value(f, item)
        return None
    fmt = "<" + _SCALAR_FORMATS[kind]
    return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


class LlamaCppBackend(LMBackend):
    """A gguf_export folder run by llama.cpp on the CPU with a fixed thread count."""

    def __init__(self, folder: str, threads: int) -> None:
        path = gguf_in(folder)
        if path is None:
            raise FileNotFoundError(f"{folder} holds no {MARKER} naming its .gguf")
        import llama_cpp

        self._lib = llama_cpp
        self.llm = load_llama(path, threads)
        self.context_length = self.llm.n_ctx()
        self.n_vocab = self.llm.n_vocab()
        self.eos_ids = {int(self.llm.token_eos())}
        # chat models end a turn with EOT (e.g. <|im_end|>), which may differ from EOS
        eot = int(self.llm._model.token_eot())
        if eot >= 0:
            self.eos_ids.add(eot)

    def _reset(self) -> None:
        # n_tokens back to 0: the next eval drops the KV cache from there (llama_memory_seq_rm)
        self.llm.reset()

    def _eval(self, tokens: list[int]) -> None:
        if self.llm.n_tokens + len(tokens) > self.context_length:
            raise ValueError(f"prompt plus new tokens exceed llama.cpp's context of {self.context_length} tokens")
        self.llm.eval(tokens)

    def _last_logits(self) -> Any:
        # numpy loads with the model, not with this module: deploy imports it and must leave warnings alone
        import numpy as np

        ptr = self._lib.llama_get_logits_ith(self.llm._ctx.ctx, -1)
        # a copy: the view points into llama.cpp's output buffer, which the next decode overwrites
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def generate(self, prompt: list[int], max_new_tokens: int, min_new_tokens: int = 0) -> Generation:
        self._reset()
        out = Generation()
        watch = Stopwatch()
        self._eval(prompt)
        while len(out.tokens) < max_new_tokens:
            token = int(self._last_logits().argmax())
            out.tokens.append(token)
            out.step_seconds.append(watch.lap())
            if token in self.eos_ids and len(out.tokens) >= min_new_tokens:
                break
            if len(out.tokens) < max_new_tokens:
                self._eval([token])
        if out.tokens and out.tokens[-1] in self.eos_ids:
            out.tokens.pop()
        return out

    def forced_predictions(self, rows: list[tuple[list[int], list[int]]]) -> list[Forced]:
        """Teacher forcing the llama.cpp way: prompt once, then the answer token by token (no sampling)."""
        import numpy as np

        out = []
        for prompt, answer in rows:
            self._reset()
            self._eval(prompt)
            logits = [self._last_logits()]
            for token in answer:
                self._eval([token])
                logits.append(self._last_logits())
            out.append(top2(np.stack(logits)))
        return out

    def continuation_nll(self, prompt: list[int], continuation: list[int]) -> float:
        import numpy as np

        self._reset()
        self._eval(prompt)
        total = 0.0
        for i, token in enumerate(continuation):
            logits = self._last_logits().astype("float64")
            shifted = logits - logits.max()
            total -= float(shifted[token] - np.log(np.exp(shifted).sum()))
            if i + 1 < len(continuation):
                self._eval([token])
        return total
