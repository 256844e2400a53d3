"""Olive's ``LMEvaluator`` and ``MTEBEvaluator`` translated: lm-eval tasks become metric ``lm_eval``.

An LMEvaluator's tasks are scored by lm-eval itself on every candidate (evaluate/metrics/lm_eval_metric.py). Checked
here, before any work: lm-eval is installed (else a named package refusal), every task name is one lm-eval knows,
and every dataset the tasks read is on this machine (a local file, or a hub dataset already in the local Hugging
Face cache); a hub dataset that is not is a named ``hub`` refusal naming the dataset and what to do, since olive-ext
runs offline. MTEBEvaluator (embedding benchmarks through the ``mteb`` package, hub datasets only) is refused naming
the package or the datasets.
"""

from __future__ import annotations

from typing import Any

from olive_ext.errors import OliveExtError
from olive_ext.evaluate.lm_eval_tasks import LM_EVAL_INSTALL, UnknownTask, lm_eval_version, missing_datasets
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
    "device": "olive-ext runs lm-eval on the target's device",
    "execution_provider": "olive-ext runs lm-eval with the target's execution provider",
    "provider_options": "olive-ext runs lm-eval with the target's provider options",
    "sample_log_num": "olive-ext does not log lm-eval's samples",
}
_MAX_NAMED = 4  # datasets named in one refusal


def lm_evaluator_section(raw: dict[str, Any], at: str, ctx: TranslationContext) -> dict[str, Any]:
    """Our `evaluate` for an Olive LMEvaluator (``raw``, at key path ``at``), or {} after naming the problem."""
    tasks = raw.get("tasks")
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, (str, dict)) for t in tasks):
        ctx.error(f"{at}.tasks", "must be a list of lm-eval task names or task configs", value=tasks, has_value=True)
        return {}
    spec: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "type":
            continue
        if key in _HONOURED:
            spec[_HONOURED[key]] = value
        elif key in _NOTED:
            ctx.note(f"{at}.{key}", _NOTED[key])
        else:
            ctx.unhonoured(f"{at}.{key}", f"LMEvaluator key {key!r} is not read by Olive's LMEvaluator or by "
                           "olive-ext", f"olive-ext reads {', '.join(sorted(_HONOURED))}")  # fmt: skip
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
        named = ", ".join(ds.describe() for ds in missing[:_MAX_NAMED])
        more = f" and {len(missing) - _MAX_NAMED} more" if len(missing) > _MAX_NAMED else ""
        ctx.error(
            f"{at}.tasks",
            f"lm-eval's tasks read hub datasets that are not in this machine's Hugging Face cache, and olive-ext "
            f"runs offline: {named}{more}",
            category="hub",
            hint="download them once where the hub is reachable (`python -c \"import datasets; "
            "datasets.load_dataset('REPO', 'CONFIG')\"`) and copy ~/.cache/huggingface here, or give a local task "
            "config (dataset_path: json, dataset_kwargs: {data_files: ...})",
        )
        return {}
    ctx.note(f"{at}.type", "scored by lm-eval itself on every candidate (metric 'lm_eval'), as Olive scores it")
    return {"metrics": ["lm_eval"], "lm_eval": spec, "constraints": {}}


def mteb_evaluator_section(raw: dict[str, Any], at: str, ctx: TranslationContext) -> dict[str, Any]:
    """MTEBEvaluator: not run by olive-ext (it needs the mteb package and MTEB's hub datasets); named."""
    tasks = raw.get("tasks")
    listed = ", ".join(map(str, tasks)) if isinstance(tasks, list) else "its tasks"
    ctx.unhonoured(f"{at}.type", f"MTEBEvaluator ({listed}) is not run by olive-ext: Olive runs it with the mteb "
                   "package on MTEB's hub datasets",
                   "measure encoders with metrics: accuracy on a local data file, latency, throughput")  # fmt: skip
    return {}
