"""The `finetune` output folder after the run: metrics at the top, the adapter beside a merged model, a summary."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from olive_ext.model_folder import MODEL_CONFIG, write_model_config
from olive_ext.train.run import METRICS_FILE


def _lora_adapter(result: Any) -> Path | None:
    """The adapter the training step produced (the final artifact's, or the one a merge consumed)."""
    art = result.chosen.artifact if result.chosen else None
    if art is None:
        return None
    path = art.adapter_path or art.meta.get("merged_adapter")
    return Path(path) if path else None


def finish_output(result: Any, merged: bool) -> dict[str, Any]:
    """Put train_metrics.json at the top of the output; with --merge also keep adapter/ and say it is merged."""
    out: Path = result.output_dir
    adapter = _lora_adapter(result)
    metrics: dict[str, Any] = {}
    if adapter is not None and (adapter / METRICS_FILE).exists():
        metrics = json.loads((adapter / METRICS_FILE).read_text())
        cache_hit = any(r.cache_hit and r.type in {"lora", "qlora", "dora"} for r in result.chosen.records)
        metrics["cache_hit"] = cache_hit
        (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    config_path = out / MODEL_CONFIG
    info = json.loads(config_path.read_text()) if config_path.exists() else {}
    if merged and adapter is not None:
        if not (out / "adapter").exists():
            shutil.copytree(adapter, out / "adapter")
        info.update({"adapter_merged": True, "merged_adapter": "adapter"})
        info.pop("adapter", None)  # the weights in model/ already hold it: never apply it twice
    else:
        info["adapter_merged"] = False
    write_model_config(out, info)
    return metrics


def print_summary(metrics: dict[str, Any], result: Any, console: Any) -> None:
    if not metrics:
        console.print(f"wrote {result.output_dir}")
        return
    evals = metrics.get("eval") or {}
    lines = [
        f"[bold]fine-tuned[/] {metrics.get('method')} on {metrics.get('device')} ({metrics.get('torch_dtype')}): "
        f"{metrics.get('steps')} steps, final loss {metrics.get('final_loss')}"
        + (" (reused from cache)" if metrics.get("cache_hit") else ""),
        f"  {metrics.get('train_tokens_per_second')} train tokens/s (non-pad), {metrics.get('train_seconds')} s "
        f"training, peak RSS {metrics.get('peak_rss_mb')} MB",
    ]
    if "base" in evals and "finetuned" in evals:
        base, ft = evals["base"], evals["finetuned"]
        lines.append(f"  eval loss {base['eval_loss']:.4f} -> {ft['eval_loss']:.4f}")
        if "exact_match" in base and "exact_match" in ft:
            lines.append(
                f"  exact match {base['exact_match']:.1f}% -> {ft['exact_match']:.1f}% ({ft['examples']} eval examples)"
            )
    lines.append(f"  wrote {result.output_dir} (adapter/, model/, model_config.json, train_metrics.json, recipe.yaml)")
    for line in lines:
        console.print(line, highlight=False)
