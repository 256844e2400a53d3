"""parity_check: run a candidate and its PyTorch reference on fixed prompts; fail it beyond thresholds.

The reference is the model the candidate was built from (``meta["source_model"]``: the
HF folder and the adapter, applied), in fp32 on CPU. Numbers are recorded either way: in
the artifact's ``meta["parity"]`` and ``parity.json`` when the candidate passes, in the
error message when it fails. Default thresholds follow the candidate's precision: fp32
needs max |logit delta| < 1e-3; fp16/bf16 top-1 agreement >= 0.98; int8/int4 top-1
agreement >= 0.9 (encoders without logits: the lowest cosine between mean-pooled sentence
embeddings >= 0.99 quantized, 0.999 float).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pydantic import Field

from olive_ext.artifacts import Artifact
from olive_ext.data import load_examples
from olive_ext.data.formats import encode_prompt, leading_bos
from olive_ext.errors import PassError, UserInputError
from olive_ext.passes.base import Pass, PassConfig, dataset_ref, register_pass
from olive_ext.passes.context import RunContext

logger = logging.getLogger("olive_ext")


class ParityCheckConfig(PassConfig):
    data: str | None = dataset_ref("dataset (in `data`) whose prompts are used; unset: the only one defined, else "
                                   "built-in prompts")  # fmt: skip
    samples: int = Field(8, ge=1, le=256, description="prompts compared")
    max_prompt_tokens: int = Field(64, ge=2, description="prompts are cut to this many tokens")
    greedy_tokens: int = Field(16, ge=0, description="greedy tokens compared for the prefix match (LLMs); 0: skip")
    max_abs_delta: float | None = Field(None, gt=0, description="fail above this max |logit delta|; unset: 1e-3 "
                                        "for fp32, no limit otherwise")  # fmt: skip
    min_top1: float | None = Field(None, ge=0, le=1, description="fail below this top-1 agreement; unset: 0.9 "
                                   "quantized, 0.98 fp16/bf16")  # fmt: skip
    max_kl: float | None = Field(None, gt=0, description="fail above this mean KL(reference || candidate)")
    min_greedy_prefix: float | None = Field(None, ge=0, le=1, description="fail below this greedy-prefix match")
    min_cosine: float | None = Field(None, ge=-1, le=1, description="encoders without logits: fail below this "
                                     "cosine; unset: 0.999 float, 0.99 quantized")  # fmt: skip
    fail: bool = Field(True, description="fail the candidate beyond thresholds; false records the numbers only")
    fail_run: bool = Field(False, description="an fp32 build beyond thresholds fails the whole run (its candidates "
                           "share the conversion it checks: auto-opt sets it)")  # fmt: skip


def default_thresholds(cfg: ParityCheckConfig, precision: str, has_logits: bool) -> dict[str, float]:
    """The limits in force: the config's, else those for the candidate's precision."""
    limits: dict[str, float] = {}
    quantized = precision.startswith(("int", "uint"))
    if cfg.max_abs_delta is not None or precision == "fp32":
        limits["max_abs_delta"] = cfg.max_abs_delta or 1e-3
    if has_logits:
        by_precision = 0.9 if quantized else 0.98 if precision != "fp32" else None
        top1 = cfg.min_top1 if cfg.min_top1 is not None else by_precision
        if top1 is not None:
            limits["min_top1"] = top1
    else:
        limits["min_cosine"] = cfg.min_cosine if cfg.min_cosine is not None else (0.99 if quantized else 0.999)
    if cfg.max_kl is not None:
        limits["max_kl"] = cfg.max_kl
    if cfg.min_greedy_prefix is not None:
        limits["min_greedy_prefix"] = cfg.min_greedy_prefix
    return limits


def broken_limits(numbers: dict[str, Any], limits: dict[str, float]) -> list[str]:
    """Each limit the numbers break, as text."""
    checks = {
        "max_abs_delta": ("max_abs_delta", lambda v, lim: v < lim, "<"),
        "min_top1": ("top1_agreement", lambda v, lim: v >= lim, ">="),
        "max_kl": ("kl", lambda v, lim: v <= lim, "<="),
        "min_greedy_prefix": ("greedy_prefix_match", lambda v, lim: v >= lim, ">="),
        "min_cosine": ("min_cosine", lambda v, lim: v >= lim, ">="),
    }
    broken = []
    for limit, value in limits.items():
        key, ok, sign = checks[limit]
        if key in numbers and not ok(numbers[key], value):
            broken.append(f"{key}={numbers[key]:.4g} (needs {sign} {value:g})")
    return broken


@register_pass("parity_check")
class ParityCheck(Pass[ParityCheckConfig]):
    """Compare a genai/onnx candidate with its PyTorch source (logit delta, top-1, KL, greedy prefix)."""

    config_class = ParityCheckConfig
    accepts = frozenset({"genai", "onnx", "openvino"})
    produces = "genai"
    keeps_kind = True
    check_only = True
    libraries = ("onnxruntime", "onnxruntime-genai", "openvino", "torch", "transformers", "peft")

    @classmethod
    def check_input(cls, artifact: Artifact) -> str | None:
        source = artifact.meta.get("source_model")
        if not isinstance(source, dict) or not source.get("path"):
            return "its meta names no source_model (the PyTorch model it came from); put parity_check after a build"
        return None

    def run(self, artifact: Artifact, ctx: RunContext) -> Artifact:
        cfg = self.config
        precision = str(artifact.meta.get("precision", "fp32"))
        smoke = artifact.meta.get("smoke") or {}
        if smoke.get("built_for", "cpu") != "cpu":
            numbers: dict[str, Any] = {"measured": False, "note": f"not measured here: built for {smoke['built_for']}"}
        else:
            numbers = self.measure(artifact, ctx)
            numbers["measured"] = True
            has_logits = "top1_agreement" in numbers
            limits = default_thresholds(cfg, precision, has_logits)
            broken = broken_limits(numbers, limits)
            numbers.update(thresholds=limits, passed=not broken)
            shown = ", ".join(f"{k}={v:.4g}" for k, v in numbers.items() if isinstance(v, float))
            logger.info("parity of %s (%s): %s", artifact.describe(), precision, shown)
            if broken and cfg.fail:
                error = PassError(
                    self.name,
                    f"{precision} candidate breaks parity with its PyTorch reference: {'; '.join(broken)} "
                    f"(all: {shown})",
                    hint=("an fp32 build matches its PyTorch source to float rounding: this one was converted wrong "
                          "(the adapter merge or the export), and the quantized builds of the same conversion are "
                          "suspect too; report it with the model's config.json and adapter_config.json")
                    if precision == "fp32" else  # a lower precision may be allowed to differ more: the user says
                    "in a recipe, relax a limit (passes.<step>.min_top1, max_abs_delta, ...) or set fail: false to "
                    "only record; `olive-ext quantize --parity` fails beyond the default limits: leave out --parity "
                    "(the build is smoke-run all the same), or compare precisions with `olive-ext auto-opt`, which "
                    "records parity and measures accuracy",
                )  # fmt: skip
                # the quantized candidates come from the same conversion: without this, auto-opt chose an int4
                # build of a wrongly merged adapter (top-1 0.2 against peft) and exited 0
                error.fails_every_candidate = cfg.fail_run and precision == "fp32"  # type: ignore[attr-defined]
                raise error
        (ctx.output_dir / "parity.json").write_text(json.dumps(numbers, indent=1))
        return Artifact(artifact.kind, artifact.path, artifact.adapter_path, meta={**artifact.meta, "parity": numbers})

    def measure(self, artifact: Artifact, ctx: RunContext) -> dict[str, Any]:
        # numpy (and torch, onnxruntime through it) at import: loaded when the pass runs, not by `validate`
        from olive_ext.onnx.parity import GenAICandidate, TorchReference, compare_encoder, compare_llm_in_turn

        source = artifact.meta["source_model"]
        if artifact.kind == "openvino":
            return self.measure_openvino(artifact, ctx)
        if artifact.kind == "genai":
            tokenizer = _tokenizer(source)
            prompts = [ids[-self.config.max_prompt_tokens :] for ids in self.prompt_ids(tokenizer, ctx)]
            adapter = artifact.meta.get("adapter_file")
            # one model in memory at a time: the PyTorch reference's answers recorded once per run (model released
            # before any candidate is loaded), each candidate compared with them
            scratch = (ctx.cache.tmp, ctx.cache.scratch_prefix("parity"))  # swept when a run is killed
            numbers = compare_llm_in_turn(
                recorded_reference(source["path"], source.get("adapter_path"), scratch),
                lambda: GenAICandidate(artifact.path, f"{artifact.path}/{adapter}" if adapter else None),
                prompts,
                self.config.greedy_tokens,
            )
        else:
            task = str(artifact.meta.get("task", "feature-extraction"))
            reference = TorchReference(source["path"], source.get("adapter_path"), causal=False, task=task)
            texts = self.texts(ctx, None)
            numbers = compare_encoder(reference, artifact.path, texts, classifier=task == "text-classification")
        numbers["prompts"] = len(prompts) if artifact.kind == "genai" else len(texts)
        return numbers

    def measure_openvino(self, artifact: Artifact, ctx: RunContext) -> dict[str, Any]:
        """An OpenVINO IR against its PyTorch source: logits and greedy prefix (LMs), outputs and cosine (encoders)."""
        # numpy and openvino at import: loaded when an OpenVINO candidate is measured, not by `validate`
        from olive_ext.onnx.openvino_ir import OVModel
        from olive_ext.onnx.parity import TorchReference, compare_encoder_outputs, compare_llm  # numpy (see measure)

        source = artifact.meta["source_model"]
        candidate = OVModel(artifact.path, threads=1)
        if artifact.meta.get("causal"):
            tokenizer = _tokenizer(source)
            prompts = [ids[-self.config.max_prompt_tokens :] for ids in self.prompt_ids(tokenizer, ctx)]
            reference = TorchReference(source["path"], source.get("adapter_path"), causal=True)
            numbers = compare_llm(reference, _OVGreedy(candidate, reference.eos), prompts, self.config.greedy_tokens)
            numbers["prompts"] = len(prompts)
            return numbers
        task = str(artifact.meta.get("task", "feature-extraction"))
        reference = TorchReference(source["path"], source.get("adapter_path"), causal=False, task=task)
        texts = self.texts(ctx, None)
        numbers = compare_encoder_outputs(reference, candidate.forward, candidate.inputs, artifact.path, texts,
                                          classifier=task == "text-classification")  # fmt: skip
        numbers["prompts"] = len(texts)
        return numbers

    def texts(self, ctx: RunContext, tokenizer: Any) -> list[str | tuple[str, str]]:
        """What an encoder reads (``tokenizer`` None: a sentence pair stays a pair), else an LLM's prompts."""
        # numpy at import (see measure)
        from olive_ext.onnx.parity import DEFAULT_PROMPTS

        if self.config.data is None and not ctx.datasets:
            return list[str | tuple[str, str]](DEFAULT_PROMPTS[: self.config.samples])

        spec = ctx.dataset(self.config.data, f"pass '{self.name}' prompts")
        examples = load_examples(spec, tokenizer, pairs=tokenizer is None)[: self.config.samples]
        if not examples:
            raise UserInputError(f"parity_check: dataset {self.config.data or '(default)'} gave no prompts")
        return [e.encoder_input for e in examples]

    def prompt_ids(self, tokenizer: Any, ctx: RunContext) -> list[list[int]]:
        bos = leading_bos(tokenizer)
        return [encode_prompt(tokenizer, text, bos) for text in self.texts(ctx, tokenizer) if isinstance(text, str)]


class _OVGreedy:
    """An OVModel with the reference's end tokens: the candidate side of compare_llm."""

    def __init__(self, model: Any, eos: set[int]) -> None:
        self.model, self.eos = model, eos

    def logits(self, ids: list[int]) -> Any:
        return self.model.logits(ids)

    def greedy(self, ids: list[int], n: int) -> list[int]:
        return list(self.model.greedy(ids, n, self.eos))


# The PyTorch references' answers, per source model checked in this run: every candidate of a run is checked
# against its source on the same prompts, so each source is loaded and run once per run, not per candidate. A
# run has a few sources (the fine-tune with its adapter; the adapter merged, before Olive's quantizers), and its
# candidates may alternate between them (the background-built ones come last): each was recorded again at every
# switch when only the last was kept, 10 s each on the demo. The logits live on disk (RecordedReference), about
# 100 MB per source there; the oldest beyond MAX_RECORDED is dropped.
_RECORDED: dict[tuple[Any, ...], Any] = {}
MAX_RECORDED = 3


def recorded_reference(path: str, adapter_path: str | None, scratch: tuple[Path, str] | None = None) -> Any:
    """The causal PyTorch reference at ``path`` (+ adapter), its answers remembered per prompt in this process.

    Keyed by the folders and their files' sizes and modification times, so a model rewritten in place
    is loaded again. :func:`forget_recorded` (the end of a run) drops them all."""
    # numpy at import (see measure)
    from olive_ext.onnx.parity import RecordedReference, TorchReference

    key = (path, adapter_path, _stamp(path), _stamp(adapter_path))
    if key not in _RECORDED:
        while len(_RECORDED) >= MAX_RECORDED:
            _RECORDED.pop(next(iter(_RECORDED))).close()
        _RECORDED[key] = RecordedReference(lambda: TorchReference(path, adapter_path, causal=True), scratch)
    return _RECORDED[key]


def forget_recorded() -> None:
    """Drop the remembered reference answers (their files too)."""
    for recorded in _RECORDED.values():
        recorded.close()
    _RECORDED.clear()


def _stamp(folder: str | None) -> tuple[tuple[str, int, int], ...]:
    if not folder or not Path(folder).is_dir():
        return ()
    return tuple(
        (p.name, st.st_size, st.st_mtime_ns) for p in sorted(Path(folder).iterdir()) if (st := p.stat()) and p.is_file()
    )


def _tokenizer(source: dict[str, Any]) -> Any:
    from pathlib import Path

    from transformers import AutoTokenizer

    adapter = source.get("adapter_path")
    path = adapter if adapter and (Path(adapter) / "tokenizer_config.json").exists() else source["path"]
    return AutoTokenizer.from_pretrained(path)
