"""PyTorch backend (transformers + optional peft adapter): the fp32 reference candidates are measured against.

Logits are computed only for the positions that are read (the last one when generating, the
continuation when scoring), so memory does not grow with prompt length x vocabulary: a 300-token
prompt over Gemma 3's 262k vocabulary would otherwise be 315 MB of fp32 logits per call, 630 MB
in float64.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from olive_ext.evaluate.backends.base import Forced, Generation, LMBackend, Stopwatch, shared_prefix, top2
from olive_ext.models.folder import tokenizer_eos_ids, tokenizer_folder
from olive_ext.onnx.peft_model import apply_adapter

# Rows per teacher-forced batch, and a cap on the padded tokens of one batch (bounds the logits kept).
_BATCH_ROWS = 8
_BATCH_TOKENS = 2048


def model_eos_ids(model: Any) -> set[int]:
    """The end-of-sequence ids a transformers model names in its config and its generation config."""
    eos = model.config.eos_token_id
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    return {int(e) for x in (eos, gen_eos) if x is not None for e in (x if isinstance(x, list) else [x])}


class TorchLMBackend(LMBackend):
    """A Hugging Face causal LM on CPU, greedy, with a KV cache, timed per token."""

    def __init__(self, path: str, adapter_path: str | None, threads: int, gguf_file: str | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(threads)
        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs)
        if adapter_path:
            model = apply_adapter(model, adapter_path)
        self._wrap(model.eval(), torch)
        # the tokenizer's eos too, as the builders write into genai_config and training ends every answer with it
        self.eos_ids = model_eos_ids(model) | tokenizer_eos_ids(Path(tokenizer_folder(path, adapter_path)))

    def _wrap(self, model: Any, torch: Any) -> None:
        self.torch = torch
        self.model = model
        self.keep_kw = "logits_to_keep" if _accepts_logits_to_keep(model) else None

    @classmethod
    def from_model(cls, model: Any, eos_ids: set[int]) -> TorchLMBackend:
        """A backend over a model already in memory (fine-tuning's, in whatever adapter state it is in)."""
        import torch

        backend = cls.__new__(cls)
        backend._wrap(model, torch)
        backend.eos_ids = set(eos_ids)
        return backend

    def generate(self, prompt: list[int], max_new_tokens: int, min_new_tokens: int = 0) -> Generation:
        torch = self.torch
        out = Generation()
        watch = Stopwatch()
        with torch.inference_mode():
            ids = torch.tensor([prompt])
            past = None
            for step in range(max_new_tokens):
                result = self.model(input_ids=ids, past_key_values=past, use_cache=True, **self._keep(1))
                past = result.past_key_values
                logits = result.logits[0, -1]
                if step < min_new_tokens:
                    logits[list(self.eos_ids)] = float("-inf")
                token = int(logits.argmax())
                out.step_seconds.append(watch.lap())
                if token in self.eos_ids:
                    break
                out.tokens.append(token)
                ids = torch.tensor([[token]])
        return out

    def continuation_nll(self, prompt: list[int], continuation: list[int]) -> float:
        torch = self.torch
        n = len(continuation)
        with torch.inference_mode():
            logits = self.model(input_ids=torch.tensor([prompt + continuation]), **self._keep(n + 1)).logits[0]
            rows = logits[-(n + 1) : -1]  # the positions that predict the continuation
            total = 0.0
            for start in range(0, n, _NLL_ROWS):  # float64 softmax a few rows at a time
                logprobs = torch.log_softmax(rows[start : start + _NLL_ROWS].double(), dim=-1)
                picked = torch.tensor(continuation[start : start + _NLL_ROWS])
                total -= float(logprobs[torch.arange(len(picked)), picked].sum())
        return total

    def _keep(self, n: int) -> dict[str, int]:
        return {self.keep_kw: n} if self.keep_kw else {}

    def forced_predictions(self, rows: list[tuple[list[int], list[int]]]) -> list[Forced]:
        # rows are batched by length; padding goes on the right, where causal attention keeps it
        # from every real position, so no attention mask is needed and positions stay 0..n-1; the prefix
        # all rows share runs once per batch (one row) and its KV cache is repeated for the batch's rows
        shared = shared_prefix(rows)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]) + len(rows[i][1]))
        out: dict[int, Forced] = {}
        batch: list[int] = []
        for i in order:
            width = len(rows[i][0]) + len(rows[i][1])
            if batch and (len(batch) >= _BATCH_ROWS or width * (len(batch) + 1) > _BATCH_TOKENS):
                out.update(self._forced_batch(rows, batch, shared))
                batch = []
            batch.append(i)
        if batch:
            out.update(self._forced_batch(rows, batch, shared))
        return [out[i] for i in range(len(rows))]

    def _forced_batch(
        self, rows: list[tuple[list[int], list[int]]], batch: list[int], shared: int
    ) -> dict[int, Forced]:
        torch = self.torch
        seqs = [(rows[i][0] + rows[i][1])[shared:] for i in batch]
        width = max(len(s) for s in seqs)
        ids = torch.tensor([s + [0] * (width - len(s)) for s in seqs])
        first = min(len(rows[i][0]) for i in batch) - 1 - shared  # earliest position whose logits are needed
        with torch.inference_mode():
            past: dict[str, Any] = {"use_cache": False}
            if shared:
                prefix = torch.tensor([rows[batch[0]][0][:shared]])
                cache = self.model(input_ids=prefix, use_cache=True, **self._keep(1)).past_key_values
                cache.batch_repeat_interleave(len(batch))
                past = {"past_key_values": cache, "use_cache": True}
            # only the positions that predict answer tokens (where the model can): the biggest tensor here
            keep = width - first
            logits = self.model(input_ids=ids, **past, **self._keep(keep)).logits[:, -keep:]
        out = {}
        for row, i in enumerate(batch):
            prompt, answer = rows[i]
            start = len(prompt) - 1 - shared - first
            out[i] = top2(logits[row, start : start + len(answer) + 1].float().numpy())
        return out


_NLL_ROWS = 64


def _accepts_logits_to_keep(model: Any) -> bool:
    """transformers' causal LMs take ``logits_to_keep``; remote-code models may not."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters
