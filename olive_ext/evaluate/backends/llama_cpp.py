"""llama.cpp backend (llama-cpp-python): greedy decoding with per-token timing, and continuation NLL.

It runs the folders the ``gguf_export`` pass writes: a ``.gguf`` plus the HF tokenizer and a
``llama_cpp.json`` marker naming the file. The marker is how a GGUF *candidate* is told apart
from a GGUF *input* (a user's file, which the PyTorch backend dequantizes through transformers).
Timing mirrors the genai backend: one ``llama_decode`` of one token plus the argmax of its
logits per step, timed from Python, so ttft/latency/throughput mean the same for both runtimes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from olive_ext.evaluate.backends.base import Forced, Generation, LMBackend, Stopwatch, shared_prefix, top2
from olive_ext.models.gguf_header import trained_context

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


def held_context(llm: Any) -> int:
    """The tokens a ``llama_cpp.Llama`` really holds: llama.cpp pads its context up (300 -> 512), while
    llama-cpp-python's token buffer keeps the size asked for, and a prompt past it raised "could not broadcast"."""
    return min(int(llm.n_ctx()), len(llm.input_ids))


class LlamaCppBackend(LMBackend):
    """A gguf_export folder run by llama.cpp on the CPU with a fixed thread count."""

    def __init__(self, folder: str, threads: int) -> None:
        path = gguf_in(folder)
        if path is None:
            raise FileNotFoundError(f"{folder} holds no {MARKER} naming its .gguf")
        import llama_cpp

        self._lib = llama_cpp
        self.llm = load_llama(path, threads)
        self.context_length = held_context(self.llm)
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
        """Teacher forcing the llama.cpp way: the prefix all rows share once, kept in the KV cache; then per row one
        batch of the rest of its prompt and its answer, with logits at the positions that predict the answer."""
        import numpy as np

        shared = shared_prefix(rows)
        self._reset()
        if shared:
            self._eval(rows[0][0][:shared])
        out = []
        llm, logits_at = self.llm, self._lib.llama_get_logits_ith
        for prompt, answer in rows:
            tokens = (prompt + answer)[shared:]
            if shared + len(tokens) > self.context_length:
                raise ValueError(f"prompt plus answer exceed llama.cpp's context of {self.context_length} tokens")
            first = len(prompt) - 1 - shared  # the index in ``tokens`` whose logits predict the answer's first token
            llm.n_tokens = shared
            llm._ctx.kv_cache_seq_rm(-1, shared, -1)  # the previous row's tokens out of the cache
            logits = []
            for start in range(0, len(tokens), llm.n_batch):
                chunk = tokens[start : start + llm.n_batch]
                wanted = range(max(first - start, 0), len(chunk))
                llm._batch.set_batch(batch=chunk, n_past=llm.n_tokens, logits_all=False)
                for i in wanted:
                    llm._batch.batch.logits[i] = True
                llm._ctx.decode(llm._batch)
                llm.n_tokens += len(chunk)
                logits += [
                    np.ctypeslib.as_array(logits_at(llm._ctx.ctx, i), shape=(self.n_vocab,)).copy() for i in wanted
                ]
            out.append(top2(np.stack(logits)))
        self._reset()
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
