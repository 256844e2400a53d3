"""The candidates table printed at the end of a run (the chosen one marked)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from olive_ext.engine.results import RunResult


def print_run_summary(result: RunResult, console: Any) -> None:
    """The candidates table (chosen one starred), wall time, cache reuse and the output folder."""
    from rich.table import Table

    from olive_ext.report.labels import short_names, target_label
    from olive_ext.report.markdown import format_metric, metric_columns

    cols = metric_columns(result)
    names = short_names(result.results)
    table = Table(title="candidates", show_lines=False)
    for header in ["", "id", "target", "pipeline", *cols, "status"]:
        table.add_column(header)
    for r in result.results:
        status = (
            r.error.splitlines()[0][:60]
            if r.error
            else (
                "ok"
                if not r.constraints
                else (
                    "met"
                    if all(r.constraints.values())
                    else "broke " + ",".join(k for k, v in r.constraints.items() if not v)
                )
            )
        )
        table.add_row(
            "*" if r.chosen else "",
            r.candidate.id,
            target_label(r.candidate.target),
            names.get(r.candidate.id, r.candidate.describe())[:70],
            *(format_metric(c, r.metrics.get(c)) for c in cols),
            status,
        )
    console.print(table)
    reused = f"{result.cache_hits}/{result.steps_run} steps reused from cache"
    console.print(f"done in {result.seconds:.1f} s; {reused}")
    if result.output_dir:
        console.print(f"output: {result.output_dir}")
        if (Path(result.output_dir) / "model").is_dir():  # where a script loads it (Olive puts it in the output itself)
            console.print(f"model: {Path(result.output_dir) / 'model'}")
