"""auto-opt: build candidates for each target, measure them, keep those within the constraints, pick one.

``auto_opt_recipe`` turns the options into an ordinary recipe (the target profile's candidate
chains as alternative pipelines), so every auto-opt run is also a rerunnable ``recipe.yaml``;
``auto_opt`` runs one recipe per device.

    >>> import olive_ext
    >>> result = olive_ext.auto_opt("out/ft", output_path="out/onnx", precision="int4")  # doctest: +SKIP
    >>> result.model_path, result.metrics["exact_match"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from olive_ext.artifacts import Artifact
from olive_ext.cache import default_cache_dir
from olive_ext.data import answer_problem, require_answers, rows_for_reading, to_examples
from olive_ext.data.load import portable_spec
from olive_ext.data.spec import DataOptions, DatasetSpec, complement_split
from olive_ext.engine.preflight import check_before_work
from olive_ext.engine.results import OutputFolder, RunResult
from olive_ext.errors import ConstraintsNotMetError, UserInputError
from olive_ext.evaluate.evaluator import label_problem
from olive_ext.evaluate.registry import ACCURACY_METRICS
from olive_ext.evaluate.spec import Constraints, EvaluateSpec, Objective
from olive_ext.models.folder import absolute_if_local, check_head_kept, config_json, model_task, resolve_model_arg
from olive_ext.onnx.genai_builder import check_buildable, olive_quantized_problem
from olive_ext.options import field_of, validate_options, with_options_signature
from olive_ext.passes.gguf_export import source_problem as gguf_source_problem
from olive_ext.progress import Progress, progress_or_quiet
from olive_ext.quiet import api_call
from olive_ext.recipe import parse_recipe
from olive_ext.recipe.schema import ExecutorSpec, Recipe, SearchSpec
from olive_ext.targets.base import CPU, Device
from olive_ext.targets.profiles import ChainStep, chain_precision, get_profile
from olive_ext.workflows.run import run_recipe

logger = logging.getLogger("olive_ext")

NO_EVAL_DATA = (
    "no eval data: task accuracy will NOT be measured and the choice will be made on speed and size alone "
    "(max_accuracy_drop is not checked); give --data_files/--eval_split/--text_template, or pass a finetune "
    "output made with --eval_split"
)
SPEED_METRICS = ["size", "ttft", "latency", "throughput", "memory"]
# the evaluation settings auto-opt passes through to the recipe's `evaluate` section
EVAL_SETTINGS = ("threads", "warmup", "repeats", "max_repeats", "timing_tolerance", "prompt_tokens", "new_tokens",
                 "max_new_tokens", "teacher_forcing", "racing")  # fmt: skip


class AutoOptOptions(DataOptions):
    """Everything `olive-ext auto-opt` takes; flag names are Olive's. Defaults are declared here once."""

    model_name_or_path: str = Field(description="HF folder, hub id, .gguf file, or a `finetune` output folder")
    output_path: str = Field(
        "auto-opt-output", description="output folder (Olive's default); an existing non-empty folder is kept "
        "unless overwrite"
    )
    adapter_path: str | None = Field(None, description="peft adapter folder to apply")
    device: list[Device] = Field(
        default_factory=lambda: [CPU.device], description="one or more targets; each gets its own candidates"
    )
    provider: str | None = Field(
        None, description="execution provider, e.g. CPUExecutionProvider, CUDAExecutionProvider, QNNExecutionProvider"
    )
    precision: Literal["auto", "fp32", "fp16", "int8", "int4"] = Field(
        "auto", description="auto searches the target's precisions; otherwise only this one"
    )
    gguf: bool = Field(
        True,
        description="on cpu, also try llama.cpp GGUF candidates (Q4_0, Q4_K_M, Q5_K_M, Q8_0; needs llama-cpp-python)",
    )
    use_ort_genai: bool = Field(
        True, description="accepted for Olive compatibility: LLM outputs are always onnxruntime-genai folders"
    )
    task: str | None = Field(
        None,
        description="accepted for Olive when it is the model's task: olive-ext reads the task from the model "
        "(text-generation for LLMs; Olive's text-generation-with-past and causal-lm mean the same)",
    )
    olive_int4: bool = Field(
        True,
        description="on cpu, also try olive-ai's GPTQ (on a fine-tune's training rows) and RTN int4 before the "
        "model builder (needs olive-ai: the olive extra)",
    )
    eval_split: str | None = Field(
        None,
        description="split of the eval data, e.g. 'train[480:]' (default: train; for a finetune output without "
        "--data_files, the eval split it was trained with)",
    )
    metric: Literal["exact_match", "accuracy", "perplexity"] | None = Field(
        None, description="task metric on the eval data (default: exact_match for LLMs, accuracy for classifiers)"
    )
    max_accuracy_drop: float | None = field_of(Constraints, "max_accuracy_drop")
    max_latency_ms: float | None = field_of(Constraints, "max_latency_ms")
    max_size_mb: float | None = field_of(Constraints, "max_size_mb")
    max_memory_mb: float | None = field_of(Constraints, "max_memory_mb")
    objective: Objective = field_of(EvaluateSpec, "objective")
    search: Literal["grid", "random", "tpe"] = field_of(SearchSpec, "strategy")
    max_candidates: int | None = field_of(SearchSpec, "max_candidates")
    seed: int = field_of(SearchSpec, "seed")
    threads: int | None = field_of(EvaluateSpec, "threads")
    warmup: int = field_of(EvaluateSpec, "warmup")
    repeats: int = field_of(EvaluateSpec, "repeats")
    prompt_tokens: int = field_of(EvaluateSpec, "prompt_tokens")
    new_tokens: int = field_of(EvaluateSpec, "new_tokens")
    max_new_tokens: int | None = field_of(EvaluateSpec, "max_new_tokens")
    max_repeats: int | None = field_of(EvaluateSpec, "max_repeats")
    timing_tolerance: float | None = field_of(EvaluateSpec, "timing_tolerance")
    teacher_forcing: bool = field_of(EvaluateSpec, "teacher_forcing")
    racing: Literal["off", "exact", "wilson"] = field_of(EvaluateSpec, "racing")
    executor: Literal["local", "ray"] = field_of(ExecutorSpec, "type")
    ray_address: str | None = field_of(ExecutorSpec, "address")
    trust_remote_code: bool = Field(False, description="allow model code from the hub")
    overwrite: bool = Field(False, description="replace an existing output folder")
    cache_dir: str | None = Field(
        None, description="cache of built models and evaluations (default: $OLIVE_EXT_CACHE or ~/.cache/olive-ext)"
    )
    data: DatasetSpec | None = Field(None, description="eval data as a DatasetSpec (instead of the data flags)")

    @field_validator("device", mode="before")
    @classmethod
    def _one_device(cls, value: Any) -> Any:
        """``device="cpu"`` (one device, as Olive's Python API spells it) is a list of one."""
        return [value] if isinstance(value, str) else value

    def eval_data(self) -> DatasetSpec | None:
        """The eval dataset the options name (``data`` or the data flags), or None."""
        return self.data or self.to_spec(self.eval_split)


@dataclass
class AutoOptResult(OutputFolder):
    """One RunResult per device. With one device, ``model_path``, ``chosen`` and ``metrics`` are its."""

    runs: dict[str, RunResult]

    def __repr__(self) -> str:  # the runs' records are thousands of characters
        chosen = {d: (r.chosen.candidate.id if r.chosen else None) for d, r in self.runs.items()}
        return f"AutoOptResult(output_dir={self.output_dir!r}, chosen={chosen!r}, metrics={self.metrics!r})"

    @property
    def first(self) -> RunResult:
        """The run of the first device."""
        return next(iter(self.runs.values()))

    @property
    def output_dir(self) -> Path | None:
        """The output folder of the first device."""
        return self.first.output_dir

    @property
    def model_path(self) -> Path | None:
        """The chosen model in the output folder (first device)."""
        return self.first.model_path

    @property
    def metrics(self) -> dict[str, float]:
        """The chosen candidate's metrics (first device)."""
        return self.first.metrics


def _calibration_apart(data: DatasetSpec) -> DatasetSpec | None:
    """The rows of the eval data's split that the eval rows leave out (``train[480:]`` leaves ``train[:480]``,
    ``--max_samples 50`` of ``train`` leaves ``train[50:]``), to calibrate static quantization on; None where the
    split names no such rows or they are empty."""
    other = complement_split(data.split)
    if other is None and data.max_samples is not None and "[" not in data.split:
        other = f"{data.split}[{data.max_samples}:]"
    if other is None:
        return None
    apart = data.model_copy(update={"split": other, "max_samples": None})
    try:
        return apart if len(rows_for_reading(apart)) else None
    except UserInputError:  # an empty slice of a local file is refused as such
        return None


def _warn_trained_on(evaluation: DatasetSpec, train: DatasetSpec | None) -> None:
    """Say when an --eval_split given for a fine-tune output holds rows it was trained on: its split replaces the
    fine-tune's eval split, and scoring training rows overstates every candidate (said nowhere before)."""
    if train is None:
        return
    # the rows as read, not as rendered: chat rows need the model's tokenizer to render (refused without it)
    seen = {_row_key(r) for r in rows_for_reading(train)}
    rows = [_row_key(r) for r in rows_for_reading(evaluation)]
    if shared := sum(r in seen for r in rows):
        logger.warning("%d of %d eval rows (--eval_split %s) are rows the model was fine-tuned on (%s): accuracy "
                       "measured on them overstates every candidate; give a split apart from the training split",
                       shared, len(rows), evaluation.split, train.split)  # fmt: skip


def _row_key(row: Any) -> str:
    return json.dumps(dict(row), sort_keys=True, default=str)


def _built_from(source: Artifact, cache_dir: str | None) -> str:
    """" (PATH)" naming the model a built one came from, as its model_config.json says, or "" (none, or a
    conversion in olive-ext's cache, not a model the user gave)."""
    origin = source.meta.get("source_model")
    path = origin.get("path") if isinstance(origin, dict) else None
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()  # the run's cache, as the run uses
    if not path or Path(path).resolve().is_relative_to(cache.resolve()):
        return ""
    return f" ({path})"


# a command built on auto-opt (optimize) reshapes its candidate pipelines (one dict per pipeline) before parsing
PipelineShaper = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def auto_opt_recipe(opts: AutoOptOptions, device: str, output: str, shape: PipelineShaper | None = None) -> Recipe:
    """The recipe auto-opt runs for one device; ``shape`` may rewrite the candidate pipelines first."""
    source = resolve_model_arg(opts.model_name_or_path, opts.adapter_path)
    if source.kind not in ("hf", "gguf"):  # every candidate starts from PyTorch weights: 12 "pass 'model_builder'
        raise UserInputError(  # takes hf models" lines said it, naming our pipelines instead of the input
            f"{opts.model_name_or_path} is a built {source.kind} model; auto-opt builds its candidates from a Hugging "
            "Face model, a fine-tune output or a .gguf",
            hint=f"give the model it was built from{_built_from(source, opts.cache_dir)}"
            + (f", or quantize this one with `olive-ext quantize -m {opts.model_name_or_path}`"
               if source.kind in ("onnx", "genai") else ""),
        )
    task = model_task(source)
    check_head_kept(source, opts.model_name_or_path, opts.task)
    if task == "text-generation" and source.kind == "hf":
        check_buildable(config_json(source.path), opts.model_name_or_path, source.path)
    profile = get_profile(device)
    data = opts.eval_data()
    answers_checked = False  # the eval rows are read once: either here or by require_answers below
    if data is None:
        data = data_from_model_config(source)
        _refuse_format_flags(opts, data)
        if data is not None:  # the fine-tune's eval split, narrowed as asked (--eval_split, --max_samples)
            asked = {"split": opts.eval_split, "max_samples": opts.max_samples}
            data = data.model_copy(update={k: v for k, v in asked.items() if v is not None})
            if opts.eval_split is not None:
                _warn_trained_on(data, data_from_model_config(source, "train_data"))
        answers_checked = data is not None and task == "text-generation"
        if answers_checked and data is not None and answer_problem(rows_for_reading(data), data):
            # the fine-tune's eval split is plain text: nothing to score answers on (asked-for data is refused below)
            logger.warning("the fine-tune's eval split has no prompt/answer pairs (%s)", data.data_files or data.name)
            data = None
    if data is None and task == "feature-extraction":  # it takes no eval data: NO_EVAL_DATA's advice was refused
        logger.warning("an embedder's task accuracy is not measured here: each quantized build must keep its sentence "
                       "embeddings within parity of PyTorch's (cosine >= 0.99), and the choice is made on speed and "
                       "size among those (max_accuracy_drop is not checked)")  # fmt: skip
    elif data is None:
        logger.warning("%s", NO_EVAL_DATA)
    # an encoder's static int8 (QDQ) build calibrates on rows the candidates are not scored on, where the eval split
    # leaves some out: calibrated on its own eval rows it read more accurate than it is
    encoder_calibration = _calibration_apart(data) if data is not None and task != "text-generation" else None
    chains = profile.candidate_chains(
        task, opts.precision, opts.provider,
        calibration_data=None if data is None else "calib" if encoder_calibration is not None else "eval",
    )  # fmt: skip
    if data is not None and encoder_calibration is None and any(s.type == "qdq_static" for c in chains for s in c):
        logger.warning("the static int8 (QDQ) candidate calibrates on the %s rows it is then scored on (split %r "
                       "leaves no other rows): its accuracy may read higher than on rows it has not seen; an eval "
                       "split such as 'train[100:]' keeps the rows before it for calibration", data.data_files
                       or data.name, data.split)  # fmt: skip
    # an encoder's quantized build without accuracy measured: its parity (the cosine of sentence embeddings or top-1
    # of labels) is the only check of its quality, so it gates (MiniLM's int8 build at cosine 0.929, under the 0.99
    # limit, was chosen over one at 0.993 for 0.1 MB). An LLM's top-1 agreement on a few prompts is not (SmolLM2's
    # base int8 build: 0.895): without data it is recorded, as the warning above says
    parity_gates = data is None and task != "text-generation"
    pipelines = [_with_parity(chain, data is not None, parity_gates) for chain in chains]
    calibration = data_from_model_config(source, "train_data") if task == "text-generation" else encoder_calibration
    olive_chains = profile.olive_chains(
        task, opts.precision, opts.provider, calibration_data="calib" if calibration is not None else None
    ) if opts.olive_int4 else []  # fmt: skip
    if olive_chains and source.kind == "hf" and (problem := olive_quantized_problem(config_json(source.path))):
        logger.info("olive-ai int4 candidates left out: %s", problem)  # each failed after its quantization
        olive_chains = []
    if source.adapter_path:  # Olive's auto-opt keeps the adapter apart (ExtractAdapters): say that we do not
        logger.info("the adapter %s is merged into each candidate's weights (Olive's auto-opt keeps it as a separate "
                    ".onnx_adapter file: `olive-ext generate-adapter` builds that)", source.adapter_path)  # fmt: skip
    if source.adapter_path:  # olive-ai quantizes plain HF weights: the adapter is merged first
        olive_chains = [[ChainStep("merge", "merge_adapter", {}), *chain] for chain in olive_chains]
    pipelines += [_with_parity(chain, data is not None, parity_gates) for chain in olive_chains]
    if olive_chains and calibration is None:
        logger.info("olive-ai GPTQ candidate skipped: it calibrates on the fine-tune's training rows, unknown here")
    if opts.gguf and opts.precision in {"auto", "int4", "int8"}:
        # llama.cpp candidates: no parity step (parity_check compares ONNX runs with PyTorch)
        gguf_chains = profile.gguf_chains(task, opts.precision, opts.provider)
        if gguf_chains and (problem := gguf_source_problem(source)):  # planned, each would fail on its first step
            logger.info("llama.cpp (GGUF) candidates left out: %s", problem)
            gguf_chains = []
        pipelines += [{s.name: {"type": s.type, **s.params} for s in c} for c in gguf_chains]
        if note := profile.gguf_skip_note(task, opts.provider):
            logger.warning("%s", note)
    metrics = list(SPEED_METRICS)
    if data is not None and opts.metric in ("exact_match", "perplexity") and task != "text-generation":
        # measured nothing before: the choice was made on speed alone, the report saying "evaluated on" the data
        raise UserInputError(f"--metric {opts.metric} scores generated text, and a {task} model generates none",
                             hint="it is scored by accuracy (the share of rows whose label it predicts): give "
                             "--metric accuracy, or leave --metric out")  # fmt: skip
    if data is not None and task != "text-generation" and source.kind == "hf":  # before the builds, not after
        if task != "text-classification":
            raise UserInputError(f"{opts.model_name_or_path} is a {task} model, with no classification head to score "
                                 "labels with", hint="give a sequence classification model (…ForSequenceClassification)"
                                 ", or leave out the eval data")  # fmt: skip
        labels = [e.reference for e in to_examples(rows_for_reading(data), data, pairs=True)]
        if problem := label_problem(Path(source.path), labels):
            hint = None if data.response_field else "name the rows' label column: --response_field label (or its name)"
            raise UserInputError(f"accuracy cannot be scored on {data.data_files or data.name}: {problem}", hint=hint)
    if data is not None:
        metrics.append(opts.metric or ("exact_match" if task == "text-generation" else "accuracy"))
        if task == "text-generation" and not answers_checked:  # fails now, not after the first build
            require_answers(data, metrics[-1])
    if task != "text-generation":
        metrics = [m for m in metrics if m not in {"ttft", "throughput"}]
    # without accuracy in points (no eval rows, or perplexity) the limit stays the default one, which the run's notes
    # say was not checked: a recipe that sets it without measuring accuracy is refused
    limits = ["max_latency_ms", "max_size_mb", "max_memory_mb"]
    limits += ["max_accuracy_drop"] if set(metrics) & {*ACCURACY_METRICS} else []
    constraints = {k: getattr(opts, k) for k in limits}
    settings = {k: getattr(opts, k) for k in EVAL_SETTINGS if getattr(opts, k) is not None}
    raw: dict[str, Any] = {
        "input_model": {
            "path": absolute_if_local(source.path),  # recorded in the output: valid from any folder
            "kind": source.kind,
            "adapter_path": absolute_if_local(source.adapter_path) if source.adapter_path else None,
            "gguf_file": source.gguf_file,
            "trust_remote_code": opts.trust_remote_code,
            "task": task,
        },
        "data": {
            **({"eval": portable_spec(data)} if data is not None else {}),  # recipe.yaml reruns from any folder
            **({"calib": portable_spec(calibration)} if calibration is not None else {}),
        },
        "pipelines": shape(pipelines) if shape else pipelines,
        "targets": [{"device": device, **({"provider": opts.provider} if opts.provider else {})}],
        "evaluate": {
            "metrics": metrics,
            "data": "eval" if data is not None else None,
            "constraints": {k: v for k, v in constraints.items() if v is not None},
            "objective": opts.objective,
            **settings,
        },
        "search": {
            "strategy": opts.search,
            "seed": opts.seed,
            **({"max_candidates": opts.max_candidates} if opts.max_candidates else {}),
        },
        "output": {"path": output, "overwrite": opts.overwrite},
        "cache_dir": opts.cache_dir,
    }
    if opts.ray_address and opts.executor == "local":  # dropped without a word: the run stayed on this machine
        raise UserInputError(f"--ray_address {opts.ray_address} is read with --executor ray",
                             hint="add --executor ray to run on that cluster, or leave --ray_address out")  # fmt: skip
    if opts.executor != "local":
        raw["executor"] = {"type": opts.executor, **({"address": opts.ray_address} if opts.ray_address else {})}
    return parse_recipe(raw)


def _with_parity(chain: list[Any], have_data: bool, gates: bool) -> dict[str, Any]:
    """A pipeline section: the chain plus a parity check against the PyTorch source.

    Float builds must match the reference (a conversion bug fails them); quantized ones only record their numbers,
    since measured task accuracy decides their fate, unless parity ``gates`` them (an encoder without eval data).
    """
    section: dict[str, Any] = {step.name: {"type": step.type, **step.params} for step in chain}
    quantized = chain_precision(chain).startswith("int")
    section["parity"] = {"type": "parity_check", "fail": not quantized or gates,
                         **({"data": "eval"} if have_data else {}),
                         **({"fail_run": True} if not quantized else {})}  # fmt: skip
    return section


def _refuse_format_flags(opts: AutoOptOptions, data: DatasetSpec | None) -> None:
    """Flags that shape rows into text do nothing without --data_files/-d: the fine-tune's data (``data``) keeps its
    own format, and without one there are no rows. Said before any work, naming them (they were ignored)."""
    shaping = ("text_template", "text_field", "messages_field", "response_field", "response_template", "input_cols")
    given = [f"--{k}" for k in shaping if getattr(opts, k)]
    given += ["--use_chat_template"] if opts.use_chat_template else []
    # these narrow a fine-tune's own eval split (below); with no data at all they were dropped without a word
    narrowing = [f"--{k}" for k in ("eval_split", "max_samples") if getattr(opts, k) is not None]
    if (given or narrowing) and data is None:
        given += narrowing
        raise UserInputError(
            f"{', '.join(given)} {'has' if len(given) == 1 else 'have'} no rows to apply to: no --data_files was "
            f"given and {opts.model_name_or_path} records no eval split",
            hint="give --data_files (with -d and --eval_split) to score the candidates on your data",
        )
    if given and data is not None:
        raise UserInputError(
            f"{', '.join(given)} {'has' if len(given) == 1 else 'have'} no effect here: without --data_files the "
            f"eval data is the fine-tune's own ({data.data_files or data.name}, {data.split}), in the format it "
            "was trained with",
            hint="drop them, or give --data_files (and -d) to score on data of your own in that format",
        )


def data_from_model_config(source: Artifact, key: str = "eval_data") -> DatasetSpec | None:
    """A finetune output records its eval split (auto-opt -m <finetune output> measures on it by default) and its
    train split (``key="train_data"``: GPTQ calibrates on it)."""
    spec = source.meta.get(key)
    if isinstance(spec, dict):
        files = spec.get("data_files")
        file_list = files if isinstance(files, list) else [files] if files else []
        if all(Path(f).exists() for f in file_list):
            return DatasetSpec.model_validate(spec)
    return None


# how auto-opt's user writes the constraints it has options for: as flags
CONSTRAINT_FLAGS = {n: f"--{n}" for n in Constraints.model_fields if n in AutoOptOptions.model_fields}


LLM_TASKS = {"text-generation", "text-generation-with-past", "causal-lm"}  # Olive's names for a causal LM's task


def check_task(task: str, opts: AutoOptOptions) -> None:
    """Olive's task is accepted when it is the task olive-ext reads from the model (which it always uses)."""
    inferred = model_task(resolve_model_arg(opts.model_name_or_path, opts.adapter_path))
    if ("text-generation" if task in LLM_TASKS else task) != inferred:
        raise UserInputError(
            f"--task {task}: olive-ext infers the task from the model, and {opts.model_name_or_path} is {inferred}",
            hint="drop --task",
        )


def plan_auto_opt(opts: AutoOptOptions, shape: PipelineShaper | None = None) -> dict[str, Recipe]:
    """Each device's recipe, after the checks before work (outputs, cache, model, data); with several devices
    each gets ``<output>/<device>``. Builds nothing: ``--dry_run`` prints these. ``shape``: see auto_opt_recipe."""
    if opts.task:
        check_task(opts.task, opts)
    devices = list(dict.fromkeys(opts.device))
    if not devices:
        raise UserInputError("--device needs at least one of cpu, gpu, npu")
    outputs = [opts.output_path] if len(devices) == 1 else [str(Path(opts.output_path) / d) for d in devices]
    data = opts.eval_data()
    for output in outputs:  # every device's output, before the recipes read any data
        check_before_work(model=opts.model_name_or_path, cache_dir=opts.cache_dir, datasets=[data] if data else [],
                          output=output, overwrite=opts.overwrite, adapters=[opts.adapter_path])  # fmt: skip
    return {d: auto_opt_recipe(opts, d, o, shape) for d, o in zip(devices, outputs, strict=True)}


def run_auto_opt(
    opts: AutoOptOptions, progress: Progress | None = None, shape: PipelineShaper | None = None
) -> AutoOptResult:
    """Run auto-opt for every device; with several devices each gets ``<output>/<device>``."""
    runs: dict[str, RunResult] = {}
    failures = []
    for device, recipe in plan_auto_opt(opts, shape).items():
        try:
            runs[device] = run_recipe(recipe, progress=progress, spelled=CONSTRAINT_FLAGS)
        except ConstraintsNotMetError as e:
            failures.append(e)
    if failures:
        raise failures[0]
    return AutoOptResult(runs)


@api_call()
def auto_opt(
    model_name_or_path: str | Path, output_path: str | Path, *, progress: Progress | None = None, **options: Any
) -> AutoOptResult:
    """Build candidates for each device, measure them, pick the best (``olive-ext auto-opt``).

    ``options`` are :class:`AutoOptOptions` fields, named like the CLI flags (``device``,
    ``precision``, ``max_accuracy_drop``, ``data_files``, ``eval_split``, ``text_template``...);
    an unknown name is refused with a did-you-mean. A `finetune` output is measured on its own
    eval split unless data is given.
    """
    opts = validate_options(
        AutoOptOptions, {"model_name_or_path": model_name_or_path, "output_path": output_path, **options}
    )
    return run_auto_opt(opts, progress_or_quiet(progress))


with_options_signature(auto_opt, AutoOptOptions)
