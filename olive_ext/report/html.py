"""report.html: the candidates table and a Pareto chart (inline SVG, no plotting library).

The chart puts decode latency (or throughput) on x and accuracy (or perplexity) on y;
dot area follows size; the Pareto front is joined by a line and the chosen candidate
is ringed. Everything is escaped and self-contained, so the file can be mailed.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from olive_ext.engine.results import CandidateResult
from olive_ext.evaluate.registry import higher_is_better, unit_of
from olive_ext.report.markdown import constraints_text, format_metric, metric_columns

if TYPE_CHECKING:
    from olive_ext.engine.results import RunResult
    from olive_ext.recipe.schema import Recipe

_W, _H, _PAD = 640, 380, 56


def _axis(results: list[CandidateResult], names: tuple[str, ...]) -> str | None:
    for name in names:
        if sum(name in r.metrics for r in results) >= 1:
            return name
    return None


def pareto_svg(result: RunResult) -> str:
    """An SVG scatter of the measured candidates, or a note when there is nothing to plot."""
    ok = [r for r in result.results if r.ok]
    x_name = _axis(ok, ("latency", "throughput"))
    y_name = _axis(ok, ("accuracy", "exact_match", "perplexity"))
    if not x_name or not y_name:
        return "<p>No latency and accuracy measurements to chart.</p>"
    points = [r for r in ok if x_name in r.metrics and y_name in r.metrics]
    xs = [float(r.metrics[x_name]) for r in points]
    ys = [float(r.metrics[y_name]) for r in points]
    sizes = [float(r.metrics.get("size", 1.0)) for r in points]
    x0, x1 = _span(xs)
    y0, y1 = _span(ys)
    smax = max(sizes) or 1.0

    def px(x: float) -> float:
        return _PAD + (x - x0) / (x1 - x0) * (_W - 2 * _PAD)

    def py(y: float) -> float:
        return _H - _PAD - (y - y0) / (y1 - y0) * (_H - 2 * _PAD)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" role="img" '
        f'aria-label="Pareto chart of {html.escape(y_name)} against {html.escape(x_name)}">',
        f'<rect width="{_W}" height="{_H}" fill="white" stroke="#ccc"/>',
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#333"/>',
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" stroke="#333"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        xv, yv = x0 + frac * (x1 - x0), y0 + frac * (y1 - y0)
        parts.append(f'<text x="{px(xv):.1f}" y="{_H - _PAD + 16}" font-size="11" text-anchor="middle">{xv:.3g}</text>')
        parts.append(f'<text x="{_PAD - 6}" y="{py(yv) + 4:.1f}" font-size="11" text-anchor="end">{yv:.3g}</text>')
    x_dir = "higher is better" if higher_is_better(x_name) else "lower is better"
    y_dir = "higher is better" if higher_is_better(y_name) else "lower is better"
    parts.append(
        f'<text x="{_W / 2}" y="{_H - 12}" font-size="12" text-anchor="middle">'
        f"{html.escape(x_name)} ({html.escape(unit_of(x_name))}, {x_dir})</text>"
    )
    parts.append(
        f'<text x="14" y="{_H / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 14 {_H / 2})">{html.escape(y_name)} ({y_dir})</text>'
    )
    front = sorted((p for p in points if p.on_front), key=lambda r: float(r.metrics[x_name]))
    if len(front) > 1:
        path = " ".join(f"{px(float(r.metrics[x_name])):.1f},{py(float(r.metrics[y_name])):.1f}" for r in front)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#2a7" stroke-dasharray="4 3"/>')
    for r, x, y, s in zip(points, xs, ys, sizes, strict=True):
        radius = 4 + 10 * (s / smax) ** 0.5
        color = "#2a7" if r.on_front else "#888"
        title = html.escape(
            f"{r.candidate.id} {r.candidate.describe()}: {x_name}={x:.4g}, {y_name}={y:.4g}, size={s:.4g} MB"
        )
        parts.append(
            f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="{radius:.1f}" fill="{color}" '
            f'fill-opacity="0.6"><title>{title}</title></circle>'
        )
        if r.chosen:
            parts.append(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="{radius + 5:.1f}" fill="none" '
                f'stroke="#d33" stroke-width="2"/>'
            )
        parts.append(
            f'<text x="{px(x) + radius + 3:.1f}" y="{py(y) - 3:.1f}" font-size="10">'
            f"{html.escape(r.candidate.id[:6])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _span(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        lo, hi = lo - 1.0, hi + 1.0
    margin = 0.08 * (hi - lo)
    return lo - margin, hi + margin


def write_html_report(folder: Path, result: RunResult, recipe: Recipe) -> None:
    cols = metric_columns(result)
    rows = []
    if result.reference:
        ref = result.reference["metrics"]
        rows.append(
            "<tr class='ref'><td>reference</td><td>-</td><td>cpu</td>"
            f"<td>{html.escape(result.reference['label'])}</td>"
            + "".join(f"<td>{html.escape(format_metric(c, ref.get(c)))}</td>" for c in cols)
            + "<td></td><td></td></tr>"
        )
    for r in result.results:
        status = (
            html.escape(r.error.splitlines()[0][:160])
            if r.error
            else (
                "met"
                if all(r.constraints.values())
                else "broke " + html.escape(", ".join(k for k, v in r.constraints.items() if not v))
            )
        )
        if r.notes:
            status += "<br><small>" + html.escape("; ".join(r.notes)) + "</small>"
        rows.append(
            f"<tr class='{'chosen' if r.chosen else ''}'><td>{'chosen' if r.chosen else ''}</td>"
            f"<td>{r.candidate.id}</td><td>{html.escape(r.candidate.target.name)}</td>"
            f"<td>{html.escape(r.candidate.describe())}</td>"
            + "".join(f"<td>{html.escape(format_metric(c, r.metrics.get(c)))}</td>" for c in cols)
            + f"<td>{'yes' if r.on_front else ''}</td><td>{status}</td></tr>"
        )
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["", "id", "target", "pipeline", *cols, "front", "status"])
    chosen = (
        f"<p>Chosen: <b>{result.chosen.candidate.id}</b> {html.escape(result.chosen.candidate.describe())}</p>"
        if result.chosen
        else "<p>No candidate was chosen.</p>"
    )
    limits = ""
    if recipe.evaluate:
        limits = (
            f"<p>Objective: {html.escape(recipe.evaluate.objective)}; constraints: "
            f"{html.escape(constraints_text(result, recipe))}</p>"
        )
    notes = "".join(f"<p><i>Note: {html.escape(n)}</i></p>" for n in result.notes)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>olive-ext report</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ddd;padding:4px 8px;font-size:13px}}tr.chosen{{background:#eafbea}}
tr.ref{{background:#f3f3f3}}</style></head>
<body><h1>olive-ext run report</h1>{chosen}{limits}{pareto_svg(result)}
<table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>{notes}
<p>Wall time {result.seconds:.1f} s; steps reused from cache: {result.cache_hits}/{result.steps_run}.</p>
</body></html>
"""
    (folder / "report.html").write_text(page)
