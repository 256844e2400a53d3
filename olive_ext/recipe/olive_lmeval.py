"""Olive's ``LMEvaluator`` and ``MTEBEvaluator`` translated: metric ``lm_eval`` and metric ``mteb``.

An LMEvaluator's tasks are scored by lm-eval itself on every candidate (evaluate/metrics/lm_eval_metric.py). Checked
here, before any work: lm-eval is installed (else a named package refusal), every task name is one lm-eval knows,
and every dataset the tasks read is on this machine (a local file, or a hub dataset already in the local Hugging
Face cache); a hub dataset that is not is a named ``hub`` refusal naming the dataset and what to do, since olive-ext
runs offline. An MTEBEvaluator's tasks are scored by mteb on every candidate (metric ``mteb``), checked the same way:
mteb installed, task names it registers, their datasets on this machine.
"""

from __future__ import annotations

from typing import Any

from olive_ext.errors import OliveExtError
from olive_ext.evaluate.lm_eval_tasks import (
    LM_EVAL_INSTALL,
    TaskDataset,
    UnknownTask,
    lm_eval_version,
    missing_datasets,
    offline_message,
)
from olive_ext.evaluate.mteb_tasks import MTEB_INSTALL, mteb_version
from olive_ext.evaluate.mteb_tasks import missing_datasets as mteb_missing_datasets
from olive_ext.recipe.olive_context import TranslationContext

# Olive LMEvaluator key -> our evaluate.lm_eval key (same meaning)
_HONOURED = {
    "tasks": "tasks",
    "limit": "limit",
    "batch_size": "batch_size",
    "max_length": "max_length",
    "bootstrap_iters": "bootstrap_iters",
    "model_class": "model_class",
    "num_fewshot": "num_fewshot",
    "apply_chat_template": "apply_chat_template",
    "fewshot_as_multiturn": "fewshot_as_multiturn",
    "model_args": "model_args",
}
# keys that change nothing measured here (olive-ext evaluates on the config's target, on CPU)
_NOTED = {
    "device": "olive-ext runs lm-eval on the CPU",
    "execution_provider": "olive-ext runs lm-eval on onnxruntime's CPU provider (ep: cpu)",
    "provider_options": "olive-ext runs lm-eval on onnxruntime's CPU provider, with its defaults",
    "sample_log_num": "olive-ext does not log lm-eval's samples",
}
# Olive MTEBEvaluator keys, read as given (evaluate.mteb)
_MTEB_HONOURED = {"tasks", "batch_size", "max_length", "model_class", "eval_splits", "eval_subsets"}
_MTEB_NOTED = {  # what metric 'mteb' does instead (evaluate/metrics/mteb_metric.py)
    "device": "olive-ext runs MTEB on the CPU",
    "execution_provider": "olive-ext runs MTEB on onnxruntime's CPU provider",
    "provider_options": "olive-ext runs MTEB on onnxruntime's CPU provider, with its defaults",
    "output_folder": "olive-ext keeps MTEB's scores in candidates.json, not in a results folder",
}


def lm_evaluator_section(raw: dict[str, Any], at: str, ctx: TranslationContext) -> dict[str, Any]:
    """Our `evaluate` for an Olive LMEvaluator (``raw``, at key path ``at``), or {} after naming the problem."""
    tasks = raw.get("tasks")
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, (str, dict)) for t in tasks):
        ctx.error(f"{at}.tasks", "must be a list of lm-eval task names or task configs", value=tasks, has_value=True)
        return {}
    spec = _read_keys(raw, at, ctx, "LMEvaluator", _HONOURED, _NOTED)
    if lm_eval_version() is None:
        ctx.error(f"{at}.type", "Olive's LMEvaluator runs lm-eval, which is not installed", category="package",
                  hint=LM_EVAL_INSTALL)  # fmt: skip
        return {}
    try:
        missing = missing_datasets(tasks)
    except UnknownTask as e:
        ctx.error(f"{at}.tasks", e.message, hint=e.hint, value=tasks, has_value=True)
        return {}
    except OliveExtError as e:  # lm-eval's own task index could not be read
        ctx.error(f"{at}.tasks", e.message, hint=e.hint)
        return {}
    if missing:
        _refuse_offline(
            f"{at}.tasks",
            "lm-eval's",
            missing,
            ctx,
            " or give a local task config (dataset_path: json, dataset_kwargs: {data_files: ...})",
        )
        return {}
    ctx.note(f"{at}.type", "scored by lm-eval itself on every candidate (metric 'lm_eval'), as Olive scores it")
    return {"metrics": ["lm_eval"], "lm_eval": spec, "constraints": {}}


def _read_keys(raw: dict[str, Any], at: str, ctx: TranslationContext, evaluator: str, honoured: dict[str, str],
               noted: dict[str, str]) -> dict[str, Any]:  # fmt: skip
    """An evaluator's keys: ``honoured`` ones mapped to our spec's, ``noted`` ones noted, others unhonoured."""
    spec: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "type":
            continue
        if key in honoured:
            spec[honoured[key]] = value
        elif key in noted:
            ctx.note(f"{at}.{key}", noted[key])
        else:
            ctx.unhonoured(f"{at}.{key}", f"{evaluator} key {key!r} is not read by Olive's {evaluator} or by "
                           "olive-ext", f"olive-ext reads {', '.join(sorted(honoured))}")  # fmt: skip
    return spec


def _refuse_offline(
    at: str, whose: str, missing: list[TaskDataset], ctx: TranslationContext, more_hint: str = ""
) -> None:
    """A named ``hub`` refusal: these tasks' hub datasets are not in this machine's Hugging Face cache."""
    message, hint = offline_message(whose, missing, more_hint)
    ctx.error(at, message, category="hub", hint=hint)


def mteb_evaluator_section(raw: dict[str, Any], at: str, ctx: TranslationContext) -> dict[str, Any]:
    """Our `evaluate` for an Olive MTEBEvaluator: metric 'mteb' on its tasks, or {} after naming the problem."""
    tasks = raw.get("tasks")
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
        ctx.error(f"{at}.tasks", "must be a list of MTEB task names", value=tasks, has_value=True)
        return {}
    spec = _read_keys(raw, at, ctx, "MTEBEvaluator", {key: key for key in _MTEB_HONOURED}, _MTEB_NOTED)
    if mteb_version() is None:
        ctx.error(f"{at}.type", "Olive's MTEBEvaluator runs the mteb package, which is not installed",
                  category="package", hint=MTEB_INSTALL)  # fmt: skip
        return {}
    try:
        missing = mteb_missing_datasets(tasks)
    except UnknownTask as e:
        ctx.error(f"{at}.tasks", e.message, hint=e.hint, value=tasks, has_value=True)
        return {}
    if missing:
        _refuse_offline(f"{at}.tasks", "MTEB's", missing, ctx)
        return {}
    ctx.note(f"{at}.type", "scored by mteb itself on every candidate (metric 'mteb'), as Olive scores it")
    return {"metrics": ["mteb"], "mteb": spec, "constraints": {}}
