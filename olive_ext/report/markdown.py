"""report.md: the candidates table and the choice, readable in any viewer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from olive_ext.evaluate.registry import ACCURACY_METRICS, DECLARED, get_metric, unit_of
from olive_ext.report.labels import (
    common_settings,
    constraint_texts,
    number,
    short_names,
    source_text,
    target_label,
)

if TYPE_CHECKING:
    from olive_ext.engine.results import RunResult
    from olive_ext.recipe.schema import Recipe


def metric_columns(result: RunResult) -> list[str]:
    """Headline metric names measured on any candidate, in a stable order."""
    names: list[str] = []
    measured = [r.metrics for r in result.results] + ([result.reference["metrics"]] if result.reference else [])
    for metrics in measured:
        for key in metrics:
            if "." not in key and key not in names and (get_metric(key) is not None or key in DECLARED):
                names.append(key)
    return names


def format_metric(name: str, value: object) -> str:
    """A metric value as people write it (``19,930``, ``0.0321``) and its unit; '-' when not measured."""
    if not isinstance(value, (int, float)):
        return "-"
    unit = f" {unit_of(name)}" if unit_of(name) not in {"", "%"} else ""
    return f"{number(value)}{unit}"


def write_report(folder: Path, result: RunResult, recipe: Recipe) -> None:
    """Write report.md: the choice, the constraints in words, every candidate, the notes."""
    cols = metric_columns(result)
    names = short_names(result.results)
    source = source_text(recipe)
    lines = ["# olive-ext run report", "", source[0].upper() + source[1:] + ".", ""]
    if result.chosen:
        c = result.chosen.candidate
        lines += [f"Chosen: **{names[c.id]}** on {target_label(c.target)} (`{c.id}`: {c.describe()})", ""]
    else:
        lines += ["No candidate was chosen.", ""]
    if recipe.evaluate:
        lines += [f"Objective: {recipe.evaluate.objective}. Constraints:", ""]
        lines += [f"- {text}: {state}" for _, text, state in constraint_texts(result, recipe)] or ["- none"]
        lines.append("")
    common = common_settings(result.results)
    if common:
        lines += [f"Every candidate: `{common}`; the candidate column says what differs.", ""]
    header = ["", "id", "candidate", "target", *cols, "constraints", "front", "error"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    if result.reference:
        ref = result.reference["metrics"]
        cells = ["reference", "-", result.reference["label"], "cpu", *(format_metric(c, ref.get(c)) for c in cols)]
        lines.append("| " + " | ".join([*cells, "", "", ""]) + " |")
    for r in result.results:
        mark = "**chosen**" if r.chosen else ""
        met = (
            "-"
            if not r.constraints
            else (
                "met"
                if all(r.constraints.values())
                else "broke " + ", ".join(k for k, v in r.constraints.items() if not v)
            )
        )
        row = [
            mark,
            r.candidate.id,
            names[r.candidate.id],
            target_label(r.candidate.target),
            *(format_metric(c, r.metrics.get(c)) for c in cols),
            met,
            "yes" if r.on_front else "",
            _cut((r.error or "").replace("|", "/").splitlines()[0]) if r.error else "",
        ]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Pipelines:", ""] + [f"- `{r.candidate.id}`: {r.candidate.describe()}" for r in result.results]
    failed = [r for r in result.results if r.error and len(r.error.splitlines()[0]) > _CELL]
    if failed:  # the table cuts a long error (a Ray worker's "...Check python-core-worker-*.log files for more i")
        lines += ["", "Errors in full:", ""] + [f"- `{r.candidate.id}`: {r.error}" for r in failed]
    lines += _racing_line(result) + _sample_line(result)
    for note in result.notes:
        lines += ["", f"Note: {note}"]
    lines += [
        "",
        f"Wall time: {result.seconds:.1f} s; steps reused from cache: {result.cache_hits}/{result.steps_run}.",
        "",
    ]
    (folder / "report.md").write_text("\n".join(lines))


_CELL = 120  # characters of an error in the table


def _cut(text: str) -> str:
    return text if len(text) <= _CELL else text[: _CELL - 1] + "…"


def _racing_line(result: RunResult) -> list[str]:
    """One line naming the candidates racing stopped early, and after how many eval rows."""
    stops = []
    for r in result.results:
        for name in ACCURACY_METRICS:
            if f"{name}.stopped_after" in r.metrics:
                seen, rows = int(r.metrics[f"{name}.stopped_after"]), int(r.metrics.get(f"{name}.rows", 0))
                stops.append(f"{r.candidate.id} stopped after {seen} of {rows} rows")
                break
    if not stops:
        return []
    return [
        "",
        "Racing: "
        + "; ".join(stops)
        + " (accuracy could not meet the constraint; its value is over those rows; not timed).",
    ]


def _sample_line(result: RunResult) -> list[str]:
    """The chosen candidate's first greedy answers, so a reader sees what the model says."""
    metrics = result.chosen.metrics if result.chosen else {}
    samples = next((metrics[f"{n}.samples"] for n in ACCURACY_METRICS if metrics.get(f"{n}.samples")), None)
    if not isinstance(samples, list) or not samples:
        return []
    shown = [repr(str(s) if len(str(s)) <= 76 else str(s)[:75] + "…") for s in samples]  # cut inside the quotes
    return ["", "First answers of the chosen candidate: " + ", ".join(shown)]
