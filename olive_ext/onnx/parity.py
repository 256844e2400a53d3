"""Parity: a converted model against the PyTorch model it came from, on the same token ids.

For LLMs (genai folders) it compares the prompt logits position by position (max |delta|,
top-1 agreement, KL(reference || candidate)) and greedy continuations (the share of the
reference's tokens the candidate reproduces before the first difference). For encoders
(onnx folders) it compares the output tensor (logits or hidden states; cosine similarity
for hidden states).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from olive_ext.memory import release_freed_memory
from olive_ext.onnx.folder import encoder_max_tokens, onnx_graph
from olive_ext.onnx.peft_model import apply_adapter
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
            model = apply_adapter(model, adapter_path)
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


class RecordedReference:
    """The PyTorch reference's answers (logits and greedy tokens) per prompt, recorded once and kept on disk.

    :meth:`record` loads the model (``load()``), runs the prompts it has not seen, and releases the model before
    returning, so a candidate is never in memory beside it; the logits stay in a temporary folder (float32, one
    file per prompt) until :meth:`close`. Every candidate of a run is compared with the same recorded answers: the
    model is loaded, and each prompt run, once per run, and the values are exactly what a fresh reference computes.
    """

    def __init__(self, load: Callable[[], TorchReference], scratch: tuple[Path, str] | None = None) -> None:
        """``scratch``: the folder and name prefix for the logits' folder (the cache's tmp and
        :meth:`~olive_ext.cache.Cache.scratch_prefix`, so a killed run's logits are swept), else the system's."""
        self._load = load
        self._scratch = scratch
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._shapes: dict[tuple[int, ...], tuple[int, ...]] = {}
        self._files: dict[tuple[int, ...], Path] = {}
        self._greedy: dict[tuple[tuple[int, ...], int], list[int]] = {}
        self.loads = 0  # how many times the model was loaded (a test reads it)

    def record(self, prompts: list[list[int]], greedy_tokens: int) -> None:
        """Run the model on the prompts not recorded yet (one load, released at the end)."""
        todo = [
            ids
            for ids in prompts
            if tuple(ids) not in self._files or (greedy_tokens and (tuple(ids), greedy_tokens) not in self._greedy)
        ]
        if not todo:
            return
        if self._folder is None:
            where, prefix = self._scratch or (None, "olive-ext-parity-")
            self._folder = tempfile.TemporaryDirectory(prefix=prefix, dir=where)
        reference = self._load()
        self.loads += 1
        try:
            for ids in todo:
                key = tuple(ids)
                if key not in self._files:
                    logits = np.ascontiguousarray(reference.logits(ids), dtype=np.float32)
                    path = Path(self._folder.name) / f"{len(self._files)}.f32"
                    logits.tofile(path)
                    self._files[key], self._shapes[key] = path, logits.shape
                    del logits
                if greedy_tokens and (key, greedy_tokens) not in self._greedy:
                    self._greedy[(key, greedy_tokens)] = reference.greedy(ids, greedy_tokens)
        finally:
            del reference
            release_freed_memory()

    def logits(self, ids: list[int]) -> np.ndarray:
        """The recorded logits of ``ids`` (recorded first if they were not)."""
        self.record([ids], 0)
        key = tuple(ids)
        return np.fromfile(self._files[key], dtype=np.float32).reshape(self._shapes[key])

    def greedy(self, ids: list[int], n: int) -> list[int]:
        """The recorded greedy continuation of ``ids`` (recorded first if it was not)."""
        self.record([ids], n)
        return list(self._greedy[(tuple(ids), n)])

    def close(self) -> None:
        """Delete the recorded logits."""
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None
        self._files.clear()
        self._shapes.clear()
        self._greedy.clear()


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
        return self.logits_and_greedy(ids, n)[1]

    def logits_and_greedy(self, ids: list[int], n: int) -> tuple[np.ndarray, list[int]]:
        """:meth:`logits` and :meth:`greedy` from one generator: the prompt is run once, not twice.

        The prompt's logits are read after ``append_tokens`` (before any token is generated), so they
        are those :meth:`logits` gives; decoding then continues on the same KV cache, as :meth:`greedy`
        would after its own identical prefill. On the demo's int8 build this halves the check's model
        time (8 prompts of ~48 tokens: 6.0 s -> 3.1 s).
        """
        gen = self._generator(len(ids) + max(n, 1))
        gen.append_tokens(np.asarray(ids, dtype=np.int32))
        logits = np.array(gen.get_output("logits"))[0]  # our own copy, whatever get_output shares
        tokens: list[int] = []
        while n and not gen.is_done() and len(tokens) < n:
            gen.generate_next_token()
            tokens.append(int(gen.get_next_tokens()[0]))
        return logits, _cut_at_eos(tokens, self.eos)


def _fold(stats: LogitStats, ref: np.ndarray, cand: np.ndarray) -> None:
    rows = min(ref.shape[0], cand.shape[0])  # a pruned LM head gives the last position only
    stats.add(ref[-rows:], cand[-rows:])


def _llm_numbers(stats: LogitStats, prefix: list[float]) -> dict[str, Any]:
    out: dict[str, Any] = stats.to_json()
    out.pop("min_cosine")
    if prefix:
        out["greedy_prefix_match"] = float(np.mean(prefix))
    return out


def compare_llm(
    reference: TorchReference | RecordedReference,
    candidate: GenAICandidate | Any,
    prompts: list[list[int]],
    greedy_tokens: int,
) -> dict[str, Any]:
    """Logit statistics over every prompt position, and the greedy-prefix match, both models in memory.

    :func:`compare_llm_in_turn` gives the same numbers with one model in memory at a time.
    """
    stats = LogitStats()
    prefix = []
    both = getattr(candidate, "logits_and_greedy", None)  # one prefill for both where the candidate offers it
    for ids in prompts:
        if greedy_tokens and both is not None:
            cand_logits, cand_tokens = both(ids, greedy_tokens)
        else:
            cand_logits = candidate.logits(ids)
            cand_tokens = candidate.greedy(ids, greedy_tokens) if greedy_tokens else []
        _fold(stats, reference.logits(ids), cand_logits)
        del cand_logits
        if greedy_tokens:
            prefix.append(greedy_prefix_match(reference.greedy(ids, greedy_tokens), cand_tokens))
    return _llm_numbers(stats, prefix)


def compare_llm_in_turn(
    load_reference: Callable[[], TorchReference] | RecordedReference,
    load_candidate: Callable[[], GenAICandidate | Any],
    prompts: list[list[int]],
    greedy_tokens: int,
) -> dict[str, Any]:
    """:func:`compare_llm`'s numbers with the PyTorch model and the candidate in memory one after the other.

    The reference runs first (or was recorded by an earlier candidate of the run: a :class:`RecordedReference`):
    its logits go to a temporary folder and its greedy tokens stay in memory; the PyTorch model is released before
    the candidate is loaded, and the candidate's logits are compared with the reference's one prompt at a time. On
    a Qwen2-0.5B shape (2 GB of fp32 weights) the fp32 candidate's check held both models, 7.1 GB; one at a time it
    stays near the larger of the two (benchmarks/RESULTS.md, "Scaling with model size").
    """
    recorded = load_reference if isinstance(load_reference, RecordedReference) else RecordedReference(load_reference)
    try:
        recorded.record(prompts, greedy_tokens)
        candidate = load_candidate()
        try:
            return compare_llm(recorded, candidate, prompts, greedy_tokens)
        finally:
            del candidate
            release_freed_memory()
    finally:
        if recorded is not load_reference:
            recorded.close()


def compare_encoder(
    reference: TorchReference, folder: str, texts: list[str | tuple[str, str]], classifier: bool
) -> dict[str, Any]:
    """Output-tensor statistics of an ONNX encoder against PyTorch, one example at a time."""
    session = onnxruntime().InferenceSession(str(onnx_graph(folder)), providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    fixed = [d if isinstance(d, int) else None for d in inputs[0].shape]

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(session.run(None, feeds)[0])

    return compare_encoder_outputs(reference, run, [i.name for i in inputs], folder, texts, classifier, fixed)


def compare_encoder_outputs(
    reference: TorchReference,
    run: Any,
    input_names: list[str],
    folder: str,
    texts: list[str | tuple[str, str]],
    classifier: bool,
    fixed: list[int | None] | None = None,
) -> dict[str, Any]:
    """Output-tensor statistics of an encoder (``run(feeds) -> output 0``, any runtime) against PyTorch."""
    from transformers import AutoTokenizer

    fixed = fixed or []
    tokenizer = AutoTokenizer.from_pretrained(folder)
    limit = encoder_max_tokens(folder)  # a 128-position BERT failed every candidate on rows of 207 tokens
    stats = LogitStats()
    pooled: list[float] = []
    for text in texts:
        if len(fixed) > 1 and fixed[1]:  # static shapes (NPU builds): pad to the fixed length
            enc = tokenizer([text], padding="max_length", truncation=True, max_length=fixed[1], return_tensors="np")
        else:
            enc = tokenizer([text], truncation=True, max_length=min(256, limit), return_tensors="np")
        feeds = {name: enc[name].astype(np.int64) for name in input_names if name in enc}
        got = run(feeds)
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
