"""generate-adapter: one ONNX base with LoRA inputs, one adapter file per adapter, each proven equal to peft.

1. Preflight: every adapter is a LoRA adapter whose weights fit the base (shapes, modules).
2. Build the base once (cached) with LoRA weights as inputs covering every adapter's modules.
3. Write each adapter's weights under the builder's names, scaled as peft applies them.
4. Check: each adapter in onnxruntime-genai against PyTorch + peft (logit parity, greedy tokens),
   and no adapter active against the base model. Only adapters that pass are shipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from olive_ext.artifacts import Artifact, fingerprint_input
from olive_ext.cache import Cache
from olive_ext.data import load_examples
from olive_ext.data.formats import encode_prompt
from olive_ext.data.spec import DataOptions, DatasetSpec
from olive_ext.deploy.bundle import chat_template_text
from olive_ext.deploy.manifest import text_sha256
from olive_ext.engine.output import staged_output, write_json
from olive_ext.engine.preflight import check_before_work
from olive_ext.engine.results import OutputFolder
from olive_ext.engine.runner import implicit_conversion, open_context, run_steps
from olive_ext.engine.steps import Step
from olive_ext.errors import OliveExtError, UserInputError
from olive_ext.evaluate.evaluator import load_tokenizer
from olive_ext.models.adapters import (
    AdapterSource,
    builder_weights,
    fit_to_inputs,
    input_dtype,
    lora_inputs_of,
    preflight,
    resolve_adapter,
    unique_names,
    write_adapter_file,
)
from olive_ext.models.folder import config_json, merged_again, resolve_model_arg, write_model_config
from olive_ext.models.hub import hub_model_folder
from olive_ext.onnx.genai_builder import check_buildable
from olive_ext.options import validate_options, with_options_signature
from olive_ext.passes.context import RunContext
from olive_ext.progress import Progress, progress_or_quiet
from olive_ext.quiet import api_call
from olive_ext.targets.base import PROVIDERS, Device, Target, normalize_provider

logger = logging.getLogger("olive_ext")

EXTENSIONS = {"onnx_adapter": ".onnx_adapter", "safetensors": ".safetensors", "numpy": ".npz"}


class GenerateAdapterOptions(DataOptions):
    """Everything `olive-ext generate-adapter` takes; flag names are Olive's."""

    model_name_or_path: str = Field(description="the base: HF folder, hub id or .gguf file")
    adapter_path: list[str] = Field(
        description="peft adapter folders or finetune output folders (space- or comma-separated)"
    )
    output_path: str = Field(description="output folder; an existing non-empty folder is kept unless overwrite")
    precision: Literal["fp32", "int4"] = Field("fp32", description="base precision (LoRA weights stay float)")
    device: Literal["cpu", "gpu"] = Field("cpu", description="device to build for")
    provider: str | None = Field(None, description="execution provider (default: the device's first)")
    adapter_format: Literal["onnx_adapter", "safetensors", "numpy"] = Field(
        "onnx_adapter", description="onnx_adapter for onnxruntime-genai; safetensors/numpy for other runtimes"
    )
    eval_split: str = Field("train", description="split of the data whose prompts check each adapter")
    check_prompts: int = Field(4, ge=1, description="prompts used to check each adapter")
    greedy_tokens: int = Field(16, ge=1, description="greedy tokens compared with peft's per prompt")
    overwrite: bool = Field(False, description="replace an existing output folder")
    cache_dir: str | None = Field(
        None, description="cache of built models and evaluations (default: $OLIVE_EXT_CACHE or ~/.cache/olive-ext)"
    )
    data: DatasetSpec | None = Field(None, description="check prompts as a DatasetSpec (instead of the data flags)")

    @field_validator("adapter_path", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        """Olive's comma list (a,b); a path that exists is one adapter even with a comma in its name."""
        items = [value] if isinstance(value, str) else value
        if isinstance(items, list):
            parts = [[str(item)] if Path(str(item)).expanduser().exists() else str(item).split(",") for item in items]
            return [a.strip() for part in parts for a in part if a.strip()]
        return value

    def check_data(self) -> DatasetSpec | None:
        """The dataset whose prompts check the adapters, if any."""
        return self.data or self.to_spec(self.eval_split)


@dataclass
class GenerateAdapterResult(OutputFolder):
    """Where the multi-adapter model was written and the check of each adapter (the base's first)."""

    output_dir: Path
    checks: list[AdapterCheck]

    @property
    def model_path(self) -> Path:
        """The ONNX base with LoRA inputs, in the output folder."""
        return self.output_dir / "model"

    @property
    def adapters(self) -> dict[str, Path]:
        """Each shipped adapter's file in the output folder, by name."""
        folder = self.output_dir / "adapters"
        return {p.stem: p for p in sorted(folder.iterdir())} if folder.is_dir() else {}


@dataclass
class AdapterCheck:
    """The proof for one adapter (or for the base with no adapter active)."""

    name: str
    numbers: dict[str, Any] = field(default_factory=dict)
    broken: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return not self.broken


def generate_adapters(opts: GenerateAdapterOptions, progress: Progress | None = None) -> list[AdapterCheck]:
    """Build, write and check; returns the checks. Raises when any adapter fails (the rest are kept)."""
    progress = progress_or_quiet(progress)
    data = opts.check_data()
    check_before_work(model=opts.model_name_or_path, cache_dir=opts.cache_dir, datasets=[data] if data else [],
                      output=opts.output_path, overwrite=opts.overwrite, adapters=opts.adapter_path)  # fmt: skip
    if not opts.adapter_path:
        raise UserInputError("give at least one adapter: --adapter_path a [b ...]")
    device: Device = "gpu" if opts.device == "gpu" else "cpu"
    target = Target(device, normalize_provider(opts.provider) if opts.provider else PROVIDERS[device][0])
    ctx = open_context(opts.cache_dir, target, progress)
    cache = ctx.cache
    base = _base_model(opts.model_name_or_path, cache, ctx, opts.adapter_path)
    # a model the builder has no class for (GPT-2, OPT) was refused for its adapters' target_modules instead
    check_buildable(config_json(base.path), opts.model_name_or_path, base.path)
    sources = [resolve_adapter(p) for p in opts.adapter_path]
    unique_names(sources)
    problems = preflight(sources, base.path)
    templates = {s.name: chat_template_text(s.path) for s in sources}
    if len({t for t in templates.values() if t}) > 1:
        names = ", ".join(sorted(n for n, t in templates.items() if t))
        problems.append(f"adapters {names} were fine-tuned with different chat templates, and one model folder ships "
                        "one template: generate them into separate outputs (one per template)")  # fmt: skip
    if problems:
        raise UserInputError("adapters that do not fit the base model:\n  - " + "\n  - ".join(problems))
    with progress, progress.task("build the base with LoRA inputs", total=None):
        template = template_adapter(base, sources, cache)
        built, _ = run_steps(
            Artifact("hf", base.path, str(template), fingerprint=_template_fp(base, template, cache)),
            [Step("build", "model_builder", {"precision": opts.precision, "adapter_mode": "inputs"})],
            ctx,
            "generate-adapter",
        )
    model_file = Path(built.path) / "model.onnx"
    inputs, dtype = lora_inputs_of(model_file), input_dtype(model_file)
    ext = EXTENSIONS.get(opts.adapter_format)
    if ext is None:
        raise UserInputError(f"--adapter_format {opts.adapter_format!r}: choose {', '.join(EXTENSIONS)}")
    with staged_output(opts.output_path, opts.overwrite) as stage:
        shutil.copytree(built.path, stage / "model", ignore=shutil.ignore_patterns("*.onnx_adapter", "entry.json"))
        _ship_adapters_template(stage / "model", {t for t in templates.values() if t})
        checks = _write_and_check(opts, base, sources, stage, inputs, dtype, ext, progress)
        if not checks[0].ok:  # the base itself: no output (package took one and called it measured)
            raise OliveExtError(
                f"the {opts.precision} base model failed its check against the PyTorch model "
                f"({'; '.join(checks[0].broken)}); nothing was written",
                hint="build the base at a higher precision: --precision fp32 (or int8)",
            )
        shipped = {c.name: f"adapters/{c.name}{ext}" for c in checks[1:] if c.ok}
        for c in checks[1:]:
            if not c.ok:
                (stage / "adapters" / f"{c.name}{ext}").unlink(missing_ok=True)
        _write_outputs(stage, opts, base, built, sources, checks, shipped)
    failed = [c for c in checks if not c.ok]
    if failed:
        lines = [f"{c.name}: {'; '.join(c.broken)}" for c in failed]
        raise OliveExtError(
            "adapters failed their checks and were not shipped:\n  " + "\n  ".join(lines),
            hint=f"numbers per adapter are in {Path(opts.output_path) / 'adapter_report.json'}",
        )
    return checks


def _ship_adapters_template(model: Path, templates: set[str]) -> None:
    """The chat template the adapters were fine-tuned with, in the model folder: the base's was shipped, so the
    adapters were chatted and served in a template they never saw (and a base without one had none)."""
    if len(templates) != 1:
        return
    template = next(iter(templates))
    if chat_template_text(model) == template:
        return
    logger.warning("the adapters were fine-tuned with a chat template other than the base model's: the output "
                   "ships theirs (the base without an adapter is prompted in it too)")  # fmt: skip
    (model / "chat_template.jinja").write_text(template)
    config = model / "tokenizer_config.json"
    data = json.loads(config.read_text()) if config.is_file() else None
    if isinstance(data, dict) and "chat_template" in data:  # one template: the folder's two places agree
        data["chat_template"] = template
        config.write_text(json.dumps(data, indent=2, ensure_ascii=False))


def _base_model(model: str, cache: Cache, ctx: RunContext, adapters: Sequence[str] = ()) -> Artifact:
    base = resolve_model_arg(model)
    if merged_again(base, list(adapters)):  # its "(no adapter)" was the fine-tune, and the adapter went in twice
        raise UserInputError(
            f"-m {model} holds a model with the adapter {base.meta['merged_adapter']} merged (finetune --merge): "
            "the base plus that adapter would apply it twice",
            hint="give the model it was fine-tuned from as the base, with the adapter",
        )
    if base.adapter_path:
        raise UserInputError(
            f"-m {model} holds a model with an adapter; give the base model and pass adapters with --adapter_path"
        )
    if base.kind not in {"hf", "gguf"}:
        raise UserInputError(
            f"-m {model} is a {base.kind} model; generate-adapter builds from the PyTorch base "
            "(a Hugging Face folder, hub id or .gguf file)"
        )
    base = fingerprint_input(hub_model_folder(base), cache.memo)  # a hub id: its folder in the hub cache
    conversion = implicit_conversion(base)
    if conversion:  # a GGUF's or bitsandbytes model's full-precision HF folder
        base, _ = run_steps(base, [Step(conversion, conversion, {})], ctx, "generate-adapter")
    if not Path(base.path).is_dir():
        raise UserInputError(
            f"base model {model!r} was not found: no such folder here, and generate-adapter "
            "needs the base's weights on this machine",
            hint="give a local Hugging Face folder or .gguf file with -m/--base_model_path",
        )
    return base


def template_adapter(base: Artifact, sources: list[AdapterSource], cache: Cache) -> Path:
    """A zero LoRA adapter over the union of the adapters' modules: what the base is built with.

    Its weights are all zero and it is cached by content, so the build is reused across runs.
    """
    modules = sorted(set().union(*(s.target_modules for s in sources)))
    key = hashlib.sha256(json.dumps([base.fingerprint, modules]).encode()).hexdigest()[:16]
    folder = cache.root / "lora-templates" / key
    if (folder / "adapter_model.safetensors").exists():
        return folder
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=1, lora_alpha=1, target_modules=modules))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.zero_()
    # this process's own temporary folder: two runs on an empty cache shared one name, and the second's rename
    # failed with "Directory not empty"; the same zero adapter written by another run first is as good as ours
    tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    peft_model.save_pretrained(str(tmp))
    try:
        tmp.rename(folder)
    except OSError:
        if not (folder / "adapter_model.safetensors").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _template_fp(base: Artifact, template: Path, cache: Cache) -> str:
    return fingerprint_input(Artifact("hf", base.path, str(template)), cache.memo).fingerprint


def _prompt_ids(opts: GenerateAdapterOptions, base: Artifact) -> list[list[int]]:
    # numpy (and the runtimes through it) load when adapters are checked, not for `generate-adapter --help`
    from olive_ext.onnx.parity import DEFAULT_PROMPTS

    tokenizer = load_tokenizer(base)
    texts = list(DEFAULT_PROMPTS)
    data = opts.check_data()
    if data is not None:
        texts = [e.prompt or e.text for e in load_examples(data, tokenizer)]
    return [encode_prompt(tokenizer, t)[:64] for t in texts[: opts.check_prompts]]


def _write_and_check(
    opts: GenerateAdapterOptions,
    base: Artifact,
    sources: list[AdapterSource],
    stage: Path,
    inputs: dict[str, tuple[Any, ...]],
    dtype: Any,
    ext: str,
    progress: Progress,
) -> list[AdapterCheck]:
    # numpy at import (see _prompt_ids)
    from olive_ext.onnx.parity import GenAICandidate, TorchReference, compare_llm

    prompts = _prompt_ids(opts, base)
    model_dir = str(stage / "model")
    checks = []
    with progress.task("check adapters against peft", total=len(sources) + 1) as bar:
        numbers = compare_llm(
            TorchReference(base.path, None, True), GenAICandidate(model_dir, None), prompts, opts.greedy_tokens
        )
        checks.append(_judge("(no adapter)", numbers, opts.precision))
        bar.advance()
        for s in sources:
            params = fit_to_inputs(s.name, builder_weights(base.path, s.path), inputs, dtype)
            onnx_file = write_adapter_file(params, stage / "adapters" / f"{s.name}.onnx_adapter")
            if opts.adapter_format != "onnx_adapter":
                write_adapter_file(params, stage / "adapters" / f"{s.name}{ext}", opts.adapter_format)
            numbers = compare_llm(
                TorchReference(base.path, str(s.path), True),
                GenAICandidate(model_dir, str(onnx_file)),
                prompts,
                opts.greedy_tokens,
            )
            numbers["rank"] = s.config.get("r")
            numbers["target_modules"] = sorted(s.target_modules)
            checks.append(_judge(s.name, numbers, opts.precision))
            if opts.adapter_format != "onnx_adapter":
                onnx_file.unlink()
            bar.advance()
    return checks


def _judge(name: str, numbers: dict[str, Any], precision: str) -> AdapterCheck:
    """fp32/fp16 bases: logits within 1e-3 (fp16: top-1 >= 0.98) and the same greedy tokens; int bases: top-1 >= 0.9."""
    check = AdapterCheck(name, numbers)
    if precision == "fp32":
        if numbers["max_abs_delta"] >= 1e-3:
            check.broken.append(f"max |logit delta| {numbers['max_abs_delta']:.3g} >= 1e-3")
    elif numbers["top1_agreement"] < (0.9 if precision.startswith("int") else 0.98):
        check.broken.append(f"top-1 agreement {numbers['top1_agreement']:.3f} is too low for {precision}")
    exact_greedy = not precision.startswith("int")
    if exact_greedy and numbers.get("greedy_prefix_match", 1.0) < 1.0:
        check.broken.append(f"greedy tokens differ from peft's (prefix match {numbers['greedy_prefix_match']:.2f})")
    return check


def _write_outputs(
    stage: Path,
    opts: GenerateAdapterOptions,
    base: Artifact,
    built: Artifact,
    sources: list[AdapterSource],
    checks: list[AdapterCheck],
    shipped: dict[str, str],
) -> None:
    templates = {s.name: chat_template_text(s.path) for s in sources}
    finetune = {t for t in templates.values() if t}
    write_model_config(
        stage,
        {
            "kind": "genai",
            "model": "model",
            "adapters": shipped,
            "precision": opts.precision,
            "target": {"device": opts.device, "provider": built.meta.get("provider")},
            "base_model": base.path,
            "adapter_sources": {s.name: str(s.path) for s in sources},
            "finetune_chat_template_sha256": text_sha256(finetune.pop()) if len(finetune) == 1 else None,
            "fingerprint": built.fingerprint,
        },
    )
    write_json(
        stage / "adapter_report.json", [{"name": c.name, "ok": c.ok, "broken": c.broken, **c.numbers} for c in checks]
    )
    lines = [
        "# generate-adapter report",
        "",
        f"Base: {base.path} ({opts.precision}), built once with LoRA inputs.",
        "",
        "| adapter | shipped | max abs logit delta | top-1 agreement | greedy prefix match | problems |",
        "|---|---|---|---|---|---|",
    ]
    for c in checks:
        n = c.numbers
        lines.append(
            f"| {c.name} | {'yes' if c.name in shipped else ('-' if c.name == '(no adapter)' else 'no')} "
            f"| {n['max_abs_delta']:.3g} | {n['top1_agreement']:.4f} | {n.get('greedy_prefix_match', 1):.2f} "
            f"| {'; '.join(c.broken)} |"
        )
    (stage / "report.md").write_text("\n".join(lines) + "\n")


@api_call()
def generate_adapter(
    model_name_or_path: str | Path,
    adapter_path: list[str | Path] | str | Path,
    output_path: str | Path,
    *,
    progress: Progress | None = None,
    **options: Any,
) -> GenerateAdapterResult:
    """One ONNX base, one adapter file per LoRA adapter, each checked against peft (``olive-ext generate-adapter``).

    ``options`` are :class:`GenerateAdapterOptions` fields (``precision``, ``adapter_format``,
    ``device``...). Raises OliveExtError when an adapter fails its check (the others are kept).
    """
    values = {"model_name_or_path": model_name_or_path, "adapter_path": adapter_path, "output_path": output_path}
    opts = validate_options(GenerateAdapterOptions, {**values, **options})
    checks = generate_adapters(opts, progress_or_quiet(progress))
    return GenerateAdapterResult(Path(opts.output_path), checks)


with_options_signature(generate_adapter, GenerateAdapterOptions)
