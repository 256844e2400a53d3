"""onnxruntime-genai backend: greedy decoding with per-token timing, and continuation NLL."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import numpy as np

from olive_ext.evaluate.backends.base import Forced, Generation, LMBackend, Stopwatch, shared_prefix, top2
from olive_ext.onnx.runtime import genai
from olive_ext.targets.base import provider_short_name


class GenAIBackend(LMBackend):
    """A genai model folder on one execution provider with a fixed thread count."""

    def __init__(
        self, folder: str, provider: str, threads: int, adapter_file: str | None = None, adapter_name: str | None = None
    ) -> None:
        og = genai()
        config = og.Config(folder)
        short = provider_short_name(provider)
        if short != "cpu":
            config.clear_providers()
            config.append_provider(short)
        session = {"intra_op_num_threads": threads, "inter_op_num_threads": 1}
        config.overlay(json.dumps({"model": {"decoder": {"session_options": session}}}))
        self.og = og
        self.model = og.Model(config)
        self.eos_ids = set(int(t) for t in og.Tokenizer(self.model).eos_token_ids)
        with open(f"{folder}/genai_config.json") as f:
            self.context_length = int(json.load(f)["model"]["context_length"])
        self.adapters = None
        self.adapter_name = adapter_name
        if adapter_file:
            self.adapters = og.Adapters(self.model)
            self.adapters.load(adapter_file, adapter_name or "adapter")

    def _generator(self, max_length: int, min_length: int = 0) -> Any:
        params = self.og.GeneratorParams(self.model)
        params.set_search_options(
            max_length=min(max_length, self.context_length), min_length=min_length, do_sample=False
        )
        gen = self.og.Generator(self.model, params)
        if self.adapters is not None:
            gen.set_active_adapter(self.adapters, self.adapter_name or "adapter")
        return gen

    def generate(self, prompt: list[int], max_new_tokens: int, min_new_tokens: int = 0) -> Generation:
        gen = self._generator(len(prompt) + max_new_tokens, len(prompt) + min_new_tokens if min_new_tokens else 0)
        out = Generation()
        watch = Stopwatch()
        gen.append_tokens(np.asarray(prompt, dtype=np.int32))
        while not gen.is_done() and len(out.tokens) < max_new_tokens:
            gen.generate_next_token()
            out.tokens.append(int(gen.get_next_tokens()[0]))
            out.step_seconds.append(watch.lap())
        if out.tokens and out.tokens[-1] in self.eos_ids:
            out.tokens.pop()
        return out

    def continuation_nll(self, prompt: list[int], continuation: list[int]) -> float:
        ids = prompt + continuation
        gen = self._generator(len(ids) + 1)
        gen.append_tokens(np.asarray(ids, dtype=np.int32))
        logits = np.asarray(gen.get_output("logits"), dtype=np.float64)[0]
        return _nll(logits, len(prompt), continuation)

    def forced_predictions(self, rows: list[tuple[list[int], list[int]]]) -> list[Forced]:
        # one row at a time (genai pads a batch on the left with the pad token, which could be a real token here):
        # one prefill over prompt + answer (no decode steps); the prefix all rows share is run once and each row
        # rewinds the generator to it
        shared = shared_prefix(rows)
        if shared:
            with contextlib.suppress(RuntimeError):  # a model whose KV cache cannot rewind: each row whole
                return self._forced_from_prefix(rows, shared)
        out = []
        for prompt, answer in rows:
            ids = prompt + answer
            gen = self._generator(len(ids) + 1)
            gen.append_tokens(np.asarray(ids, dtype=np.int32))
            logits = np.asarray(gen.get_output("logits"))[0]
            out.append(top2(logits[len(prompt) - 1 : len(ids)]))
        return out

    def _forced_from_prefix(self, rows: list[tuple[list[int], list[int]]], shared: int) -> list[Forced]:
        gen = self._generator(max(len(prompt) + len(answer) for prompt, answer in rows) + 1)
        gen.append_tokens(np.asarray(rows[0][0][:shared], dtype=np.int32))
        out = []
        for prompt, answer in rows:
            gen.rewind_to(shared)
            gen.append_tokens(np.asarray((prompt + answer)[shared:], dtype=np.int32))
            logits = np.asarray(gen.get_output("logits"))[0]  # the appended positions only
            start = len(prompt) - 1 - shared
            out.append(top2(logits[start : start + len(answer) + 1]))
        return out


def _nll(logits: np.ndarray, start: int, continuation: list[int]) -> float:
    """-sum log softmax(logits[t-1])[token t] over the continuation positions."""
    rows = logits[start - 1 : start - 1 + len(continuation)]
    shifted = rows - rows.max(axis=-1, keepdims=True)
    logprobs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return float(-logprobs[np.arange(len(continuation)), continuation].sum())
