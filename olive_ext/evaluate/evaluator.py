"""Scoring an artifact on a target: every requested metric, in one worker process, cached like builds.

The parent tokenizes the eval data with the model's own tokenizer, starts
``python -m olive_ext.evaluate.worker`` for the candidate (one process per candidate,
so peak memory is that candidate's), and turns the worker's raw token ids and timings
into metrics. Results are cached by (model fingerprint, metrics, settings, data, target,
library versions).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from olive_ext.artifacts import LM_ROLES, Artifact, eval_role, hash_file
from olive_ext.cache import Cache, cache_key
from olive_ext.data import load_examples
from olive_ext.data.formats import encode_encoder_input, encode_prompt, leading_bos
from olive_ext.errors import OliveExtError
from olive_ext.evaluate.context import EvalContext, EvalData, MetricInput
from olive_ext.evaluate.exact_match import count_hits
from olive_ext.evaluate.metrics.olive_metric import evaluate_with_olive
from olive_ext.evaluate.racing import Race
from olive_ext.evaluate.registry import ACCURACY_METRICS, MetricInfo, get_metric
from olive_ext.evaluate.spec import EvaluateSpec
from olive_ext.models.folder import config_json
from olive_ext.models.gguf_header import trained_context
from olive_ext.onnx.chat import context_window
from olive_ext.onnx.folder import config_positions, encoder_max_tokens
from olive_ext.targets.base import cpu_model
from olive_ext.version import installed_version

logger = logging.getLogger(__name__)

# Settings that change measured values; constraints and objective only change selection.
_SPEC_FIELDS_IN_KEY = (
    "warmup",
    "repeats",
    "threads",
    "prompt_tokens",
    "new_tokens",
    "max_new_tokens",
    "max_samples",
    "teacher_forcing",
    "max_repeats",
    "timing_tolerance",
    "olive_metrics",
    "lm_eval",
    "mteb",
)
_RUNTIME_LIBS = ("onnxruntime", "onnxruntime-genai", "torch", "transformers", "peft")
# A fixed English passage: timing prompts are cut from it, so every candidate sees the same text.
_ENCODER_TIMING_TOKENS = 128  # an encoder timed without data runs on this many tokens (or prompt_tokens if fewer)
_TIMING_TEXT = (
    "The history of computing is a story of people finding faster ways to do arithmetic. Early machines used "
    "gears and levers; later ones used relays, vacuum tubes, transistors and finally integrated circuits. "
    "Each step made computers smaller, cheaper and more reliable, and each step changed what people used them for. "
)


class EvaluationError(OliveExtError):
    """The worker could not load or run the candidate."""


def _versions() -> dict[str, str]:
    return {lib: installed_version(lib) or "missing" for lib in _RUNTIME_LIBS}


SCORING_REVISION = 2
"""In every evaluation's cache key: raised when a change to how a model is scored makes scores cached before it
wrong, within one olive-ext version (2: the PyTorch reference stops on the tokenizer's eos, as builds do)."""


def evaluation_key(artifact: Artifact, ectx: EvalContext, metrics: list[str], race: Race | None = None) -> str:
    """Cache key of one evaluation: the model, the metrics, the settings, the data, the target (and
    the racing rule, which decides how many rows a candidate is scored on)."""
    spec = ectx.spec.model_dump(mode="json")
    settings = {k: spec[k] for k in _SPEC_FIELDS_IN_KEY}
    settings["threads"] = ectx.threads
    data = ectx.dataset.model_dump(mode="json") if ectx.dataset else None
    data_fp = _data_fingerprint(ectx)
    return cache_key(
        "eval",
        SCORING_REVISION,
        artifact.fingerprint,
        sorted(metrics),
        settings,
        data,
        data_fp,
        ectx.target.name,
        cpu_model(),  # speed is the node's: a cache shared by a cluster's nodes keeps each CPU's timings apart
        ectx.extras.get("adapter_name"),
        _versions(),
        *([[race.floor, list(race.slices), race.bound]] if race else []),
    )


OLIVE_REFERENCE = "olive-reference"  # the metrics name of a cached input-model evaluation with olive-ai


def olive_reference(source: Artifact, configs: list[dict[str, Any]], cache: Cache) -> dict[str, float]:
    """The input model's values of Olive metric configs (relative Olive goals compare with them), computed by
    olive-ai's evaluator and cached like any evaluation: by the model, the configs, the CPU and the runtimes'
    versions (it ran on every run before, as long as the candidates' own evaluations)."""
    key = cache_key(OLIVE_REFERENCE, SCORING_REVISION, source.fingerprint, configs, cpu_model(), _versions())
    cached = cache.get_result(key)
    if cached is not None:
        return {str(k): float(v) for k, v in cached.items()}
    values = evaluate_with_olive(source, configs)
    cache.put_result(key, values, {"artifact": source.fingerprint, "metrics": [OLIVE_REFERENCE]})
    return values


def _data_fingerprint(ectx: EvalContext) -> str | None:
    if ectx.dataset is None or not ectx.dataset.data_files:
        return None

    files = ectx.dataset.data_files if isinstance(ectx.dataset.data_files, list) else [ectx.dataset.data_files]
    return ",".join(hash_file(Path(f)) for f in files if Path(f).is_file())


def evaluate(
    artifact: Artifact,
    ectx: EvalContext,
    cache: Cache,
    metrics: list[str] | None = None,
    race: Race | None = None,
) -> tuple[dict[str, float], bool]:
    """Compute ``metrics`` (default: the spec's) for ``artifact``; returns (values, cache_hit).

    With ``race``, exact match is scored on growing slices of the rows and the evaluation stops
    once the accuracy cannot reach ``race.floor``: then only the rows seen are scored, the metrics
    that need timing are left out, and ``<metric>.stopped_after`` says after how many rows.
    """
    names = metrics if metrics is not None else list(ectx.spec.metrics)
    role = eval_role(artifact)  # an OpenVINO IR is measured as the LM or encoder it is
    jobs_wanted = _jobs_needed([i for n in names if (i := get_metric(n)) and role in i.kinds], role)
    race = race if "generate" in jobs_wanted else None
    key = evaluation_key(artifact, ectx, names, race)
    cached = cache.get_result(key)
    if cached is not None:
        return cached, True
    infos = [_metric(n) for n in names]
    applicable = [i for i in infos if role in i.kinds]
    if any(i.needs_data for i in applicable) and ectx.dataset is None:
        raise OliveExtError(
            f"metrics {', '.join(i.name for i in applicable if i.needs_data)} need eval data",
            hint="name a dataset in evaluate.data (CLI: --data_files / --data_name)",
        )
    started = time.perf_counter()
    jobs = _jobs_needed(applicable, role)
    data = prepare_data(artifact, ectx, jobs) if jobs else None
    raw: dict[str, Any] = {}
    peak = None
    if jobs:
        assert data is not None
        judge = _race_judge(race, data) if race else None
        raw, peak = run_worker(artifact, ectx, build_jobs(jobs, data, ectx, race), judge)
    if raw.get("generate", {}).get("stopped_after") is not None:
        applicable = [i for i in applicable if not i.needs & {"timing", "nll"}]
    values: dict[str, Any] = {}
    for info in applicable:
        assert info.fn is not None
        values.update(info.fn(MetricInput(artifact, ectx, raw, data, peak)))
    values.update(_answers_record(raw, data, [i.name for i in applicable]))
    values["eval_seconds"] = round(time.perf_counter() - started, 3)
    if jobs:
        values["threads"] = raw.get("threads", ectx.threads)
        values["load_seconds"] = round(raw.get("load_seconds", 0.0), 3)
    cache.put_result(key, values, {"artifact": artifact.fingerprint, "metrics": names})
    return values, False


SAMPLE_ANSWERS = 3


def _answers_record(raw: dict[str, Any], data: EvalData | None, names: list[str]) -> dict[str, Any]:
    """Beside the accuracy metric, for the report: the first few greedy answers, decoded (``<metric>.samples``),
    and the eval rows it left unscored (``<metric>.left_out``)."""
    metric = next((n for n in ACCURACY_METRICS if n in names), None)
    if data is None or metric is None:
        return {}
    record: dict[str, Any] = {f"{metric}.left_out": data.left_out} if data.left_out else {}
    if outputs := raw.get("generate", {}).get("outputs"):
        decode = data.tokenizer.decode
        record[f"{metric}.samples"] = [decode(ids, skip_special_tokens=True) for ids in outputs[:SAMPLE_ANSWERS]]
    return record


def _metric(name: str) -> MetricInfo:
    info = get_metric(name)
    if info is None or info.fn is None:
        raise OliveExtError(f"unknown metric {name!r}")
    return info


def _jobs_needed(infos: list[MetricInfo], kind: str) -> set[str]:
    needs = {n for i in infos for n in i.needs}
    if kind in LM_ROLES:
        jobs = needs & {"timing", "generate", "nll"}
        return jobs or ({"load"} if "load" in needs else set())
    jobs = {"classify"} if needs & {"timing", "classify"} else set()
    return jobs or ({"load"} if "load" in needs else set())


# ----------------------------------------------------------------------------- data


def load_tokenizer(artifact: Artifact) -> Any:
    """The HF tokenizer shipped with the model (genai and onnx folders carry one)."""
    from transformers import AutoTokenizer

    source = artifact.path
    if artifact.adapter_path and (Path(artifact.adapter_path) / "tokenizer_config.json").exists():
        source = artifact.adapter_path  # fine-tuning saved the tokenizer and chat template it used
    kwargs = {"gguf_file": artifact.gguf_file} if artifact.gguf_file else {}
    return AutoTokenizer.from_pretrained(source, **kwargs)


def prepare_data(artifact: Artifact, ectx: EvalContext, jobs: set[str]) -> EvalData:
    """Tokenize the eval examples and the timing prompt for the jobs at hand."""
    tokenizer = load_tokenizer(artifact)
    data = EvalData(tokenizer=tokenizer)
    if "timing" in jobs or "load" in jobs:
        text, ids = _TIMING_TEXT, encode_prompt(tokenizer, _TIMING_TEXT)
        while len(ids) < ectx.spec.prompt_tokens:
            text += _TIMING_TEXT
            ids = encode_prompt(tokenizer, text)
        data.timing_prompt = ids[: ectx.spec.prompt_tokens]
    if "classify" in jobs and ectx.dataset is None:
        # an encoder timed without eval data: the timing text through the tokenizer gives every input the
        # graph may declare (attention_mask, token_type_ids), not input_ids alone
        length = min(ectx.spec.prompt_tokens, _ENCODER_TIMING_TOKENS)
        data.features = [dict(tokenizer(_TIMING_TEXT, truncation=True, max_length=length))] * 8
    if not (jobs & {"generate", "nll", "classify"}) or ectx.dataset is None:
        return data

    dataset = ectx.dataset
    if ectx.spec.max_samples:
        dataset = dataset.model_copy(update={"max_samples": ectx.spec.max_samples})
    examples = load_examples(dataset, tokenizer, pairs="classify" in jobs)
    if "classify" in jobs:  # cut to the positions the encoder has (a fixed 512 failed a 128-position BERT)
        length = encoder_max_tokens(artifact.path)
        data.features = [dict(encode_encoder_input(tokenizer, e.encoder_input, truncation=True, max_length=length))
                         for e in examples]  # fmt: skip
        mapping = label_ids(Path(artifact.path))  # once, not once per row
        data.labels = [_label_id(mapping, e.reference) for e in examples]
        return data
    context = model_context(artifact)
    said: set[tuple[Any, ...]] = ectx.extras.get("said", set())  # the run's (engine.run.said_once); else say it
    rows = len(examples)
    if "generate" in jobs:
        examples = _answered(examples, dataset, said)
    empty = rows - len(examples)
    bos = leading_bos(tokenizer)
    prompts = [encode_prompt(tokenizer, e.prompt, bos) if e.prompt else [] for e in examples]
    answers = [list(tokenizer(e.reference or "", add_special_tokens=False)["input_ids"]) for e in examples]
    if context is not None and "generate" in jobs:  # on the ids just made: each row was tokenized twice
        kept = _fitting([len(p) + len(a) + 1 for p, a in zip(prompts, answers, strict=True)], context, dataset, said)
        examples = [examples[i] for i in kept]
        prompts, answers = [prompts[i] for i in kept], [answers[i] for i in kept]
    data.prompts, data.answers = prompts, answers
    data.left_out = left_out_text(rows, empty, len(examples))
    if data.left_out:  # warned above: a candidate whose figures come from the cache does not say it again
        said.add(("left_out", data.left_out))
    data.references = [e.reference for e in examples]
    data.answer_ends = [e.answer_end for e in examples]
    data.responses = [list(tokenizer(e.response, add_special_tokens=False)["input_ids"]) for e in examples]
    if "generate" in jobs and any(r is None or not p for r, p in zip(data.references, data.prompts, strict=True)):
        raise OliveExtError(
            "exact-match accuracy needs examples with a prompt and an expected answer",
            hint="use a template ending in the answer column, alpaca data, or chat messages",
        )
    return data


def left_out_text(rows: int, empty: int, kept: int) -> str | None:
    """The eval rows not scored, and why, for the record (the warnings say it once, and not on a cached rerun)."""
    if kept == rows:
        return None
    why = [f"{n} {what}" for n, what in ((empty, "with an empty answer"),
                                         (rows - empty - kept, "too long for the model's context")) if n]  # fmt: skip
    return f"{rows - kept} of {rows} eval rows not scored ({', '.join(why)})"


def model_context(artifact: Artifact) -> int | None:
    """Tokens the model can attend to, where its folder says: genai_config.json's limit, a GGUF's trained
    context, config.json's max_position_embeddings; None where it says nothing."""
    folder = Path(artifact.path)
    try:
        if (folder / "genai_config.json").is_file():
            return context_window(folder)  # what chat holds a conversation to
        if artifact.gguf_file:
            return trained_context(folder / artifact.gguf_file)
        return config_positions(config_json(folder))
    except (OSError, ValueError, KeyError, TypeError):  # an unreadable config: the backend says what is wrong
        return None


def _answered(examples: list[Any], dataset: Any, said: set[tuple[Any, ...]]) -> list[Any]:
    """The rows with an expected answer; rows whose answer is empty (a missing, null or blank cell) are left out,
    said once per run: they were scored, and a model that answered nothing matched them."""
    empty = [i for i, e in enumerate(examples) if e.reference is not None and not e.reference.strip()]
    if not empty:
        return examples
    if len(empty) == len(examples):
        raise OliveExtError("every eval row's expected answer is empty: exact match has nothing to compare",
                            hint="the template's last column (or --response_field) must hold the answers")  # fmt: skip
    key = ("empty", str(getattr(dataset, "data_files", None) or getattr(dataset, "name", "")))
    if key not in said:
        said.add(key)
        logger.warning("%d of %d eval rows have an empty answer and are not scored (row %d first)", len(empty),
                       len(examples), empty[0])  # fmt: skip
    left_out = set(empty)
    return [e for i, e in enumerate(examples) if i not in left_out]


def _fitting(sizes: list[int], context: int, dataset: Any, said: set[tuple[Any, ...]]) -> list[int]:
    """The indexes of the rows whose prompt, answer and end token (``sizes``, in tokens) fit the context; the others
    are left out, said once per run (one row too long ended the run: "input_ids size (807) ... exceeds max length
    (512)")."""
    long = [i for i, n in enumerate(sizes) if n > context]
    if not long:
        return list(range(len(sizes)))
    if len(long) == len(sizes):
        raise OliveExtError(
            f"no eval row fits the model's context of {context} tokens with its answer (the shortest needs "
            f"{min(sizes)})", hint="shorten the eval prompts, or evaluate on other rows")  # fmt: skip
    key = ("long", str(getattr(dataset, "data_files", None) or getattr(dataset, "name", "")), context)
    if key not in said:
        said.add(key)
        logger.warning("%d of %d eval rows are left out: with the answer they need more than the model's %d "
                       "tokens of context (row %d needs %d)", len(long), len(sizes), context, long[0],
                       sizes[long[0]])  # fmt: skip
    left_out = set(long)
    return [i for i in range(len(sizes)) if i not in left_out]


def _label_id(mapping: dict[str, int], label: str | None) -> int:
    if label is None:
        raise OliveExtError("classification accuracy needs a label column (response_field)")
    found = class_id(mapping, label)
    if found is None:
        raise OliveExtError(f"label {label!r} is not in the model's label2id ({', '.join(mapping) or 'none'})")
    return found


def label_ids(folder: Path) -> dict[str, int]:
    """A classifier's label names -> ids (config.json's label2id; {} when it names none)."""
    return dict((config_json(folder) or {}).get("label2id", {}))


def class_id(mapping: dict[str, int], label: str) -> int | None:
    """The class a row's label names: its label2id entry first (a star-rating model's classes are named "1".."5"
    with ids 0..4: "1" was read as id 1 and every row scored wrong), else the label as a class id; None if neither."""
    if label in mapping:
        return int(mapping[label])
    text = label.strip()
    return int(text) if text.lstrip("-").isdigit() else None


def label_problem(folder: Path, labels: list[str | None]) -> str | None:
    """Why a classifier at ``folder`` cannot be scored on ``labels`` (found after every candidate was built before),
    or None. Names must be in its label2id; numbers that are not names are class ids, among its classes."""
    if None in labels:
        return "some rows have no label (response_field)"
    config = config_json(folder)  # a hub id's from the local Hugging Face cache (it was checked against none)
    mapping = dict((config or {}).get("label2id", {}))
    given = {str(x) for x in labels}
    unknown = sorted(x for x in given if class_id(mapping, x) is None)
    if unknown:
        names = ", ".join(mapping) if mapping else "none: its config.json has no label2id (give class ids, 0, 1, ...)"
        plural = "s" if len(unknown) > 1 else ""
        return f"label{plural} {', '.join(map(repr, unknown[:5]))} not in the model's label2id ({names})"
    if config is None:  # no config.json to read: its head's size is not known here
        return None
    classes = class_count(config)
    outside = sorted(x for x in given if not 0 <= (class_id(mapping, x) or 0) < classes)
    if outside:  # counted as wrong rows before, without a word
        plural = "s" if len(outside) > 1 else ""
        names = f": {', '.join(mapping)}" if mapping else ""
        return (f"class id{plural} {', '.join(outside[:5])} outside the model's {classes} classes "
                f"(0 to {classes - 1}{names})")
    return None


def class_count(config: dict[str, Any]) -> int:
    """How many classes a classifier's head has, from its read config.json: its label names, else num_labels, else
    2 (transformers' default, which it leaves out of the file with the default LABEL_0/LABEL_1 names)."""
    names = config.get("id2label") or config.get("label2id") or {}
    return len(names) or int(config.get("num_labels") or 2)


def build_jobs(jobs: set[str], data: EvalData | None, ectx: EvalContext, race: Race | None = None) -> dict[str, Any]:
    """The worker's jobs: token ids and settings (teacher forcing answers, racing slices)."""
    assert data is not None
    spec = ectx.spec
    out: dict[str, Any] = {}
    if "timing" in jobs:
        out["timing"] = {
            "prompt": data.timing_prompt,
            "new_tokens": spec.new_tokens,
            "warmup": spec.warmup,
            "repeats": spec.repeats,
            "max_repeats": spec.max_repeats,
            "tolerance": spec.timing_tolerance,
        }
    if "generate" in jobs:
        out["generate"] = {
            "prompts": data.prompts,
            "max_new_tokens": answer_limit(spec, data),
            "answers": data.answers if spec.teacher_forcing else None,
            "slices": list(race.slices) if race else None,
            # judged once more on every row: below the floor there, the candidate is not timed
            "judge_last": bool(race) and "timing" in jobs,
        }
    if "nll" in jobs:
        out["nll"] = {"pairs": [[p, r] for p, r in zip(data.prompts, data.responses, strict=True) if p and r]}
    if "classify" in jobs:
        out["classify"] = {
            "features": data.features,
            "warmup": spec.warmup,
        }
    return out


def answer_limit(spec: EvaluateSpec, data: EvalData) -> int:
    """The generation limit for exact match: ``max_new_tokens``, or unset, the longest expected answer and its end
    token (at least 16). A fixed 16 cut longer answers, so no such row could ever match; a limit set that cuts
    answers is a warning."""
    longest = max((len(a) for a in data.answers), default=0)
    if spec.max_new_tokens is None:
        return max(ANSWER_TOKENS, longest + 1)
    if cut := sum(len(a) > spec.max_new_tokens for a in data.answers):
        # tokenized alone: after the prompt an answer may take fewer tokens (a leading space merged), and match
        # ("can never match" was said of answers the model then matched)
        logger.warning("%d eval answer%s longer than max_new_tokens %d when tokenized alone (the longest has %d "
                       "tokens): such a row matches only if the model writes it in fewer tokens after its prompt; "
                       "raise it to %d to be sure", cut, "s are" if cut > 1 else " is", spec.max_new_tokens, longest,
                       longest + 1)  # fmt: skip
    return spec.max_new_tokens


ANSWER_TOKENS = 16  # the least generation limit of exact match when max_new_tokens is unset


# ----------------------------------------------------------------------------- worker


def _race_judge(race: Race, data: EvalData) -> Any:
    """The parent's verdict after each slice: keep going unless the accuracy cannot reach the floor."""
    refs = [r or "" for r in data.references]

    def keep_going(outputs: list[list[int]]) -> bool:
        # scored exactly as the exact_match metric scores (answer_ends included), or racing could stop a winner
        n = len(outputs)
        answers = [data.tokenizer.decode(ids, skip_special_tokens=True) for ids in outputs]
        hits = count_hits(answers, refs[:n], data.answer_ends[:n] if data.answer_ends else None)
        return not race.should_stop(hits, n, len(refs))

    return keep_going


def run_worker(
    artifact: Artifact, ectx: EvalContext, jobs: dict[str, Any], judge: Any = None
) -> tuple[dict[str, Any], float]:
    """Run the jobs in a fresh process; return its result and its peak RSS in MB (as the worker saw it).

    ``judge`` (racing) is asked after each slice of generated rows whether the worker goes on."""
    model = {
        "kind": artifact.kind,
        "path": artifact.path,
        "adapter_path": artifact.adapter_path,
        "gguf_file": artifact.gguf_file,
        "adapter_name": ectx.extras.get("adapter_name"),
    }
    if artifact.kind == "genai":
        # a model built with LoRA inputs runs with its own adapter file active, unless told otherwise
        own = artifact.meta.get("adapter_file")
        adapter_file = ectx.extras.get("adapter_file") or (str(Path(artifact.path) / own) if own else None)
        model["adapter_path"] = adapter_file
        model["adapter_name"] = ectx.extras.get("adapter_name") or artifact.meta.get("adapter_name")
    request = {"model": model, "provider": ectx.target.provider, "threads": ectx.threads, "jobs": jobs}
    with tempfile.TemporaryDirectory(prefix="olive-ext-eval-") as tmp:
        req, res = Path(tmp) / "request.json", Path(tmp) / "result.json"
        req.write_text(json.dumps(request))
        env = {
            **os.environ,
            "OMP_NUM_THREADS": str(ectx.threads),
            "TOKENIZERS_PARALLELISM": "false",
            "OLIVE_EXT_EVAL_PARENT": str(os.getpid()),
        }  # the worker ends with this process (worker.py)
        argv = [sys.executable, "-m", "olive_ext.evaluate.worker", str(req), str(res)]
        # stderr goes to a file: a pipe could fill up while the parent waits on the racing channel
        with open(Path(tmp) / "stderr", "w+b") as err:
            if judge is None:
                proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
                proc.wait()
            else:
                proc = _run_racing(argv, env, err, judge)
            err.seek(0)
            stderr = err.read().decode(errors="replace")
        result = json.loads(res.read_text()) if res.exists() else {}
    if "error" in result or proc.returncode != 0:
        detail = result.get("error") or stderr.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        raise EvaluationError(
            f"evaluating {artifact.describe()} failed: {detail if isinstance(detail, str) else detail[0]}"
        )
    return result, float(result.get("peak_rss_mb", 0.0))


def _run_racing(argv: list[str], env: dict[str, str], err: Any, judge: Any) -> subprocess.Popen[bytes]:
    """Start the worker with the two racing pipes and answer its reports until it exits."""
    verdict_r, verdict_w = os.pipe()
    report_r, report_w = os.pipe()
    try:
        proc = subprocess.Popen(
            [*argv, str(verdict_r), str(report_w)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            pass_fds=(verdict_r, report_w),
        )
    finally:
        os.close(verdict_r)
        os.close(report_w)
    try:
        with os.fdopen(report_r, "r") as reports, os.fdopen(verdict_w, "w") as verdicts:
            for line in reports:  # ends when the worker exits (its end of the pipe closes)
                verdicts.write("go\n" if judge(json.loads(line)["outputs"]) else "stop\n")
                verdicts.flush()
    finally:  # a failing judge closes the pipes: the worker reads no "go", stops and exits
        proc.wait()
    return proc
