"""Parity: a converted model against the PyTorch model it came from, on the same token ids.

For LLMs (genai folders) it compares the prompt logits position by position (max |delta|,
top-1 agreement, KL(reference || candidate)) and greedy continuations (the share of the
reference's tokens the candidate reproduces before the first difference). For encoders
(onnx folders) it compares the output tensor (logits or hidden states; cosine similarity
for hidden states).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from olive_ext.onnx.runtime import genai, onnxruntime

# Used when the recipe has no data: short, varied English prompts.
DEFAULT_PROMPTS = (
    "The capital of France is",
    "Write one sentence about the ocean.",
    "Q: What is 12 plus 7?\nA:",
    "List three colors:",
    "def add(a, b):\n    return",
    "Translate to French: good morning",
    "The quick brown fox",
    "Summarize: The meeting moved from Monday to Wednesday because the room was booked.",
)


# Rows of logits compared at once (float64 temporaries): 2M elements, 8 rows of a 262k vocabulary.
CHUNK_ELEMENTS = 1 << 21


@dataclass
class LogitStats:
    """Running comparison of reference and candidate rows (one row per position or example)."""

    max_abs: float = 0.0
    agree: int = 0
    rows: int = 0
    kl_sum: float = 0.0
    cos_min: float = 1.0

    def add(self, ref: np.ndarray, cand: np.ndarray, probabilities: bool = True) -> None:
        """Fold in the rows of ``ref`` and ``cand`` (same shape, last axis compared), a few rows at a time.

        The float64 statistics need several temporaries per row; over a 262k-token vocabulary, a
        whole prompt at once cost 0.9 GB, so rows go in chunks of at most ``CHUNK_ELEMENTS``.
        """
        ref2, cand2 = ref.reshape(-1, ref.shape[-1]), cand.reshape(-1, cand.shape[-1])
        step = max(1, CHUNK_ELEMENTS // max(ref2.shape[-1], 1))
        for start in range(0, ref2.shape[0], step):
            self._add_rows(ref2[start : start + step], cand2[start : start + step], probabilities)

    def _add_rows(self, ref2: np.ndarray, cand2: np.ndarray, probabilities: bool) -> None:
        ref2, cand2 = ref2.astype(np.float64), cand2.astype(np.float64)
        self.max_abs = max(self.max_abs, float(np.abs(ref2 - cand2).max()))
        self.agree += int((ref2.argmax(-1) == cand2.argmax(-1)).sum())
        self.rows += ref2.shape[0]
        if probabilities:
            logp, logq = _log_softmax(ref2), _log_softmax(cand2)
            self.kl_sum += float((np.exp(logp) * (logp - logq)).sum())
        norms = np.linalg.norm(ref2, axis=-1) * np.linalg.norm(cand2, axis=-1)
        cos = (ref2 * cand2).sum(-1) / np.maximum(norms, 1e-12)
        self.cos_min = min(self.cos_min, float(cos.min()))

    def to_json(self, probabilities: bool = True) -> dict[str, float]:
        out = {"max_abs_delta": self.max_abs, "top1_agreement": self.agree / max(self.rows, 1), "positions": self.rows}
        if probabilities:
            out["kl"] = self.kl_sum / max(self.rows, 1)
        out["min_cosine"] = self.cos_min
        return out


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def greedy_prefix_match(ref: list[int], cand: list[int]) -> float:
    """Share of the reference continuation the candidate reproduces before the first difference."""
    if not ref:
        return 1.0 if not cand else 0.0
    n = 0
    for a, b in zip(ref, cand, strict=False):
        if a != b:
            break
        n += 1
    return n / len(ref)


class TorchReference:
    """The PyTorch source model (adapter applied), fp32 on CPU, one thread.

    One thread because parity compares numbers, not speed, and PyTorch's spinning worker
    threads slow down tenfold when the cores are shared (measured: 2 s vs 0.2 s a forward).
    """

    def __init__(self, path: str, adapter_path: str | None, causal: bool, task: str = "") -> None:
        import torch
        from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

        self.torch = torch
        if causal:
            cls: Any = AutoModelForCausalLM
        else:
            cls = AutoModelForSequenceClassification if task == "text-classification" else AutoModel
        model = cls.from_pretrained(path, dtype=torch.float32)
        if adapter_path:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter_path)
        self.model = model.eval()
        eos = model.config.eos_token_id
        self.eos = {int(e) for e in (eos if isinstance(eos, list) else [eos])} if eos is not None else set()

    def _one_thread(self) -> Any:
        import contextlib

        torch = self.torch

        @contextlib.contextmanager
        def scope() -> Any:
            before = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                with torch.inference_mode():
                    yield
            finally:
                torch.set_num_threads(before)

        return scope()

    def logits(self, ids: list[int]) -> np.ndarray:
        """Next-token logits at every position of ``ids``."""
        with self._one_thread():
            return self.model(input_ids=self.torch.tensor([ids])).logits[0].numpy()

    def greedy(self, ids: list[int], n: int) -> list[int]:
        """Greedy continuation of ``ids`` for ``n`` tokens."""
        with self._one_thread():
            out = self.model.generate(
                self.torch.tensor([ids]), max_new_tokens=n, do_sample=False, attention_mask=self.torch.ones(1, len(ids))
            )
        tokens = [int(t) for t in out[0, len(ids) :]]
        return _cut_at_eos(tokens, self.eos)

    def encode(self, features: dict[str, np.ndarray]) -> np.ndarray:
        with self._one_thread():
            outputs = self.model(**{k: self.torch.tensor(v) for k, v in features.items()})
        return (outputs.logits if hasattr(outputs, "logits") else outputs.last_hidden_state).numpy()


def _cut_at_eos(tokens: list[int], eos: set[int]) -> list[int]:
    for i, t in enumerate(tokens):
        if t in eos:
            return tokens[:i]
    return tokens


class GenAICandidate:
    """A genai folder on the CPU EP, its LoRA adapter file active when it has one."""

    def __init__(self, folder: str, adapter_file: str | None) -> None:
        self.og = genai()
        self.model = self.og.Model(folder)
        self.adapters = None
        if adapter_file:
            self.adapters = self.og.Adapters(self.model)
            self.adapters.load(adapter_file, "parity")
        config = json.loads((Path(folder) / "genai_config.json").read_text())
        eos = config["model"].get("eos_token_id", [])
        self.eos = {int(e) for e in (eos if isinstance(eos, list) else [eos])}

    def _generator(self, max_length: int) -> Any:
        params = self.og.GeneratorParams(self.model)
        params.set_search_options(max_length=max_length, do_sample=False)
        gen = self.og.Generator(self.model, params)
        if self.adapters is not None:
            gen.set_active_adapter(self.adapters, "parity")
        return gen

    def logits(self, ids: list[int]) -> np.ndarray:
        """Next-token logits at every position of ``ids`` (onnxruntime-genai)."""
        gen = self._generator(len(ids) + 1)
        gen.append_tokens(np.asarray(ids, dtype=np.int32))
        return np.asarray(gen.get_output("logits"))[0]

    def greedy(self, ids: list[int], n: int) -> list[int]:
        """Greedy continuation of ``ids`` for ``n`` tokens (onnxruntime-genai)."""
        gen = self._generator(len(ids) + n)
        gen.append_tokens(np.asarray(ids, dtype=np.int32))
        tokens: list[int] = []
        while not gen.is_done() and len(tokens) < n:
            gen.generate_next_token()
            tokens.append(int(gen.get_next_tokens()[0]))
        return _cut_at_eos(tokens, self.eos)


def compare_llm(
    reference: TorchReference, candidate: GenAICandidate, prompts: list[list[int]], greedy_tokens: int
) -> dict[str, Any]:
    """Logit statistics over every prompt position, and the greedy-prefix match."""
    stats = LogitStats()
    prefix = []
    for ids in prompts:
        ref, cand = reference.logits(ids), candidate.logits(ids)
        rows = min(ref.shape[0], cand.shape[0])  # a pruned LM head gives the last position only
        stats.add(ref[-rows:], cand[-rows:])
        if greedy_tokens:
            ref_tokens = reference.greedy(ids, greedy_tokens)
            prefix.append(greedy_prefix_match(ref_tokens, candidate.greedy(ids, greedy_tokens)))
    out: dict[str, Any] = stats.to_json()
    out.pop("min_cosine")
    if prefix:
        out["greedy_prefix_match"] = float(np.mean(prefix))
    return out


def compare_encoder(reference: TorchReference, folder: str, texts: list[str], classifier: bool) -> dict[str, Any]:
    """Output-tensor statistics of an ONNX encoder against PyTorch, one example at a time."""
    from transformers import AutoTokenizer

    session = onnxruntime().InferenceSession(f"{folder}/model.onnx", providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    fixed = [d if isinstance(d, int) else None for d in inputs[0].shape]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    stats = LogitStats()
    pooled: list[float] = []
    for text in texts:
        if len(fixed) > 1 and fixed[1]:  # static shapes (NPU builds): pad to the fixed length
            enc = tokenizer([text], padding="max_length", truncation=True, max_length=fixed[1], return_tensors="np")
        else:
            enc = tokenizer([text], truncation=True, max_length=256, return_tensors="np")
        feeds = {i.name: enc[i.name].astype(np.int64) for i in inputs if i.name in enc}
        got = session.run(None, feeds)[0]
        ref = reference.encode({k: v for k, v in feeds.items()})
        if not classifier and "attention_mask" in feeds:  # compare real tokens only
            keep = feeds["attention_mask"][0].astype(bool)
            got, ref = got[:, keep], ref[:, keep]
        if not classifier:  # sentence embeddings are mean-pooled token states
            a, b = ref.astype(np.float64).mean(axis=1)[0], got.astype(np.float64).mean(axis=1)[0]
            pooled.append(float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)))
        stats.add(ref, got, probabilities=classifier)
    out = stats.to_json(probabilities=classifier)
    if not classifier:
        out.pop("top1_agreement")
        out["token_min_cosine"] = out.pop("min_cosine")
        out["min_cosine"] = min(pooled)
    return out
