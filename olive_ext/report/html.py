"""report.html: the choice, its constraints in words, a trade-off chart and the candidates table.

One self-contained file (inline CSS and SVG, no script, nothing fetched), so it can be mailed.
The chart puts decode latency (or throughput) on x and accuracy (or perplexity, or size when no
accuracy was measured) on y, with labelled axes, a legend, the Pareto front, the reference model's
accuracy and the accuracy floor the constraint allows; dot area follows size and the chosen
candidate is ringed. Candidates are numbered: the chart's labels are the table's ``#`` column.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from olive_ext.engine.results import CandidateResult
from olive_ext.evaluate.registry import ACCURACY_METRICS, higher_is_better, unit_of
from olive_ext.report.labels import (
    LIMIT_NAMES,
    OBJECTIVE_WORDS,
    accuracy_name,
    common_settings,
    constraint_texts,
    metric_title,
    number,
    short_names,
    source_text,
    target_label,
)
from olive_ext.report.markdown import metric_columns
from olive_ext.version import __version__

if TYPE_CHECKING:
    from collections.abc import Callable

    from olive_ext.engine.results import RunResult
    from olive_ext.recipe.schema import Recipe

    Scale = Callable[[float], float]  # a measurement -> its pixel position

_W, _H = 860, 440
_LEFT, _RIGHT, _TOP, _BOTTOM = 78, 640, 24, 376  # the plot area; the legend sits right of it
_FRONT, _OTHER, _CHOSEN, _REF, _FLOOR = "#1b9e63", "#8a8f98", "#d62728", "#2f6fb3", "#d62728"
_X_METRICS = ("latency", "throughput")
_Y_METRICS = (*ACCURACY_METRICS, "perplexity")


def _escape(value: object) -> str:
    return html.escape(str(value), quote=True)


@dataclass(frozen=True)
class Axis:
    """A linear axis from ``low`` to ``high`` with round ``ticks``."""

    metric: str
    low: float
    high: float
    ticks: tuple[float, ...]

    def fraction(self, value: float) -> float:
        return (value - self.low) / (self.high - self.low)

    def tick_text(self, value: float) -> str:
        """The tick's value with as many decimals as the step needs: a 2.5 step needs one (it labelled 2.5 "2" and
        7.5 "8", and 0.075 "0.07")."""
        step = self.ticks[1] - self.ticks[0] if len(self.ticks) > 1 else 1.0
        decimals = next((d for d in range(10) if abs(round(step, d) - step) < 1e-9 * max(1.0, step)), 10)
        return f"{value:,.{decimals}f}"


def _nice_step(span: float, count: int = 5) -> float:
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def make_axis(metric: str, values: list[float]) -> Axis:
    """Round ticks around ``values``; equal values get room around them, and no axis of a measurement
    (all are non-negative) goes below 0, nor a percentage above 100."""
    top = 100.0 if unit_of(metric) == "%" else math.inf
    low, high = (min(max(v, 0.0), top) for v in (min(values), max(values)))
    if high - low < 1e-12 * max(1.0, abs(high)):  # all equal: room around the value, not a span of zero
        pad = max(abs(high) * 0.1, 5.0 if top == 100.0 else 0.0) or 1.0
        low, high = low - pad, high + pad
    else:
        margin = 0.08 * (high - low)
        low, high = low - margin, high + margin
    low, high = max(low, 0.0), min(high, top)
    step = _nice_step(high - low)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    ticks = tuple(round(i * step, 10) for i in range(first, last + 1))
    return Axis(metric, ticks[0], ticks[-1], ticks)


def _pick(results: list[CandidateResult], names: tuple[str, ...], not_: str | None = None) -> str | None:
    return next((n for n in names if n != not_ and any(n in r.metrics for r in results)), None)


def pareto_svg(result: RunResult, recipe: Recipe | None = None, numbers: dict[str, int] | None = None) -> str:
    """The trade-off chart (inline SVG), or a sentence saying why there is none."""
    ok = [r for r in result.results if r.ok]
    x_name = _pick(ok, _X_METRICS)
    y_name = _pick(ok, _Y_METRICS) or _pick(ok, ("size",), not_=x_name)
    if not x_name or not y_name:
        return "<p class='muted'>No speed and accuracy (or size) measurements to chart.</p>"
    points = [r for r in ok if x_name in r.metrics and y_name in r.metrics]
    numbers = numbers or {r.candidate.id: i + 1 for i, r in enumerate(result.results)}
    reference, floor = _accuracy_lines(result, recipe, y_name)
    xs = [float(r.metrics[x_name]) for r in points]
    ys = [float(r.metrics[y_name]) for r in points]
    x_axis = make_axis(x_name, xs)
    y_axis = make_axis(y_name, ys + [v for v in (reference, floor) if v is not None])

    def px(x: float) -> float:
        return _LEFT + x_axis.fraction(x) * (_RIGHT - _LEFT)

    def py(y: float) -> float:
        return _BOTTOM - y_axis.fraction(y) * (_BOTTOM - _TOP)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img" '
        f'aria-label="{_escape(metric_title(y_name))} against {_escape(metric_title(x_name))} for each candidate">',
        f'<rect width="{_W}" height="{_H}" fill="#fff"/>',
    ]
    parts += _grid(x_axis, y_axis, px, py)
    if floor is not None:  # the region the accuracy constraint rules out
        top = py(max(min(floor, y_axis.high), y_axis.low))
        parts.append(f'<rect class="floor-zone" x="{_LEFT}" y="{top:.1f}" width="{_RIGHT - _LEFT}" '
                     f'height="{_BOTTOM - top:.1f}" fill="{_FLOOR}" fill-opacity="0.06"/>')  # fmt: skip
        parts.append(_hline(py(floor), _FLOOR, "2 3", "floor"))
    if reference is not None:
        parts.append(_hline(py(reference), _REF, "6 4", "reference"))
    front = sorted((r for r in points if r.on_front), key=lambda r: float(r.metrics[x_name]))
    if len(front) > 1:
        line = " ".join(f"{px(float(r.metrics[x_name])):.1f},{py(float(r.metrics[y_name])):.1f}" for r in front)
        parts.append(f'<polyline class="front" points="{line}" fill="none" stroke="{_FRONT}" '
                     f'stroke-width="1.5" stroke-dasharray="5 4"/>')  # fmt: skip
    parts += _dots(points, x_name, y_name, px, py, numbers, short_names(result.results))
    parts += _legend(points, reference is not None, floor is not None)
    parts.append("</svg>")
    return "".join(parts)


def _accuracy_lines(result: RunResult, recipe: Recipe | None, y_name: str) -> tuple[float | None, float | None]:
    """The reference model's accuracy and the lowest accuracy the constraint allows, when y is that accuracy."""
    if not result.reference or y_name not in ACCURACY_METRICS:
        return None, None
    reference = result.reference["metrics"].get(y_name)
    if not isinstance(reference, int | float):
        return None, None
    drop = recipe.evaluate.constraints.max_accuracy_drop if recipe and recipe.evaluate else None
    return float(reference), (float(reference) - drop if drop is not None else None)


def _grid(x_axis: Axis, y_axis: Axis, px: Scale, py: Scale) -> list[str]:
    out = []
    for value in x_axis.ticks:
        x = px(value)
        out.append(f'<line x1="{x:.1f}" y1="{_TOP}" x2="{x:.1f}" y2="{_BOTTOM}" stroke="#eceef1"/>')
        out.append(f'<text class="tick x-tick" data-value="{value:g}" x="{x:.1f}" y="{_BOTTOM + 18}" '
                   f'font-size="12" text-anchor="middle" fill="#444">{x_axis.tick_text(value)}</text>')  # fmt: skip
    for value in y_axis.ticks:
        y = py(value)
        out.append(f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_RIGHT}" y2="{y:.1f}" stroke="#eceef1"/>')
        out.append(f'<text class="tick y-tick" data-value="{value:g}" x="{_LEFT - 8}" y="{y + 4:.1f}" '
                   f'font-size="12" text-anchor="end" fill="#444">{y_axis.tick_text(value)}</text>')  # fmt: skip
    out.append(f'<rect x="{_LEFT}" y="{_TOP}" width="{_RIGHT - _LEFT}" height="{_BOTTOM - _TOP}" fill="none" '
               f'stroke="#9aa0a8"/>')  # fmt: skip
    for axis, attrs in (
        (x_axis, f'x="{(_LEFT + _RIGHT) / 2}" y="{_BOTTOM + 44}"'),
        (y_axis, f'x="{-(_TOP + _BOTTOM) / 2}" y="22" transform="rotate(-90)"'),
    ):
        better = "higher is better" if higher_is_better(axis.metric) else "lower is better"
        out.append(f'<text class="axis-title" {attrs} font-size="13" text-anchor="middle" fill="#222">'
                   f"{_escape(metric_title(axis.metric))}, {better}</text>")  # fmt: skip
    return out


def _hline(y: float, color: str, dash: str, name: str) -> str:
    return (f'<line class="{name}-line" x1="{_LEFT}" y1="{y:.1f}" x2="{_RIGHT}" y2="{y:.1f}" stroke="{color}" '
            f'stroke-width="1.5" stroke-dasharray="{dash}"/>')  # fmt: skip


def _dots(points: list[CandidateResult], x_name: str, y_name: str, px: Scale, py: Scale,
          numbers: dict[str, int], names: dict[str, str]) -> list[str]:  # fmt: skip
    sizes = [float(r.metrics.get("size", 1.0)) for r in points]
    biggest = max(sizes, default=1.0) or 1.0
    out: list[str] = []
    placed: list[tuple[float, float]] = []
    # the chosen one last, so it is drawn on top
    for r, size in sorted(zip(points, sizes, strict=True), key=lambda pair: pair[0].chosen):
        x, y = px(float(r.metrics[x_name])), py(float(r.metrics[y_name]))
        radius = 5 + 9 * (size / biggest) ** 0.5
        color = _FRONT if r.on_front else _OTHER
        tip = (f"#{numbers[r.candidate.id]} {names[r.candidate.id]} ({r.candidate.id}): "
               f"{metric_title(x_name, False)} {number(r.metrics[x_name])}, "
               f"{metric_title(y_name, False)} {number(r.metrics[y_name])}, size {number(size)} MB\n"
               f"{r.candidate.describe()}")  # fmt: skip
        out.append(f'<g class="point{" chosen" if r.chosen else ""}"><title>{_escape(tip)}</title>'
                   f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" fill="{color}" fill-opacity="0.55" '
                   f'stroke="{color}"/>')  # fmt: skip
        if r.chosen:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius + 5:.1f}" fill="none" stroke="{_CHOSEN}" '
                       f'stroke-width="2.5"/>')  # fmt: skip
        label_y = y - radius - 6
        while any(abs(label_y - ly) < 13 and abs(x - lx) < 40 for lx, ly in placed):  # overlapping labels
            label_y -= 13
        placed.append((x, label_y))
        text = f"{numbers[r.candidate.id]}" + (" chosen" if r.chosen else "")
        weight = ' font-weight="bold"' if r.chosen else ""
        fill = _CHOSEN if r.chosen else "#222"
        out.append(f'<text x="{x:.1f}" y="{label_y:.1f}" font-size="12" text-anchor="middle" fill="{fill}"'
                   f"{weight}>{_escape(text)}</text></g>")  # fmt: skip
    return out


def _legend(points: list[CandidateResult], reference: bool, floor: bool) -> list[str]:
    x, y = _RIGHT + 22, _TOP + 8
    out = [f'<g class="legend" font-size="12" fill="#222"><text x="{x}" y="{y + 4}" font-weight="bold">Legend</text>']
    rows: list[tuple[str, str]] = [
        (f'<circle cx="{x + 8}" cy="{{y}}" r="6" fill="{_FRONT}" fill-opacity="0.55" stroke="{_FRONT}"/>',
         "on the Pareto front"),
        (f'<circle cx="{x + 8}" cy="{{y}}" r="6" fill="{_OTHER}" fill-opacity="0.55" stroke="{_OTHER}"/>',
         "dominated by another"),
        (f'<circle cx="{x + 8}" cy="{{y}}" r="8" fill="none" stroke="{_CHOSEN}" stroke-width="2.5"/>', "chosen"),
        (f'<line x1="{x}" y1="{{y}}" x2="{x + 18}" y2="{{y}}" stroke="{_FRONT}" stroke-width="1.5" '
         f'stroke-dasharray="5 4"/>', "Pareto front"),
    ]  # fmt: skip
    if reference:
        rows.append((f'<line x1="{x}" y1="{{y}}" x2="{x + 18}" y2="{{y}}" stroke="{_REF}" stroke-width="1.5" '
                     f'stroke-dasharray="6 4"/>', "reference (PyTorch)"))  # fmt: skip
    if floor:
        rows.append((f'<line x1="{x}" y1="{{y}}" x2="{x + 18}" y2="{{y}}" stroke="{_FLOOR}" stroke-width="1.5" '
                     f'stroke-dasharray="2 3"/>', "lowest allowed accuracy"))  # fmt: skip
        rows.append((f'<rect x="{x}" y="{{y_top}}" width="18" height="12" fill="{_FLOOR}" fill-opacity="0.12"/>',
                     "ruled out by the limit"))  # fmt: skip
    for i, (mark, text) in enumerate(rows):
        row_y = y + 26 + 22 * i
        out.append(mark.format(y=row_y, y_top=row_y - 6) + f'<text x="{x + 26}" y="{row_y + 4}">{_escape(text)}</text>')
    sizes = [float(r.metrics["size"]) for r in points if "size" in r.metrics]
    notes = ["dot area: model size"]
    if sizes:
        notes.append(f"({number(min(sizes))}–{number(max(sizes))} MB)")
    notes += ["numbers: the # column", "of the table below"]
    for i, text in enumerate(notes):
        out.append(f'<text x="{x}" y="{y + 26 + 22 * len(rows) + 8 + 16 * i}" fill="#555">{_escape(text)}</text>')
    out.append("</g>")
    return out


def _status(r: CandidateResult) -> str:
    if r.error:
        first = r.error.splitlines()[0]
        return f"<span class='bad' title='{_escape(r.error)}'>failed: {_escape(first)}</span>"  # whole: it was cut
    if not r.constraints:
        # a size alone is the file's, not a measurement: a build for a device not here was "measured" above the
        # note that said it was not
        ran = any(k != "size" for k in r.metrics)
        text = "<span class='muted'>measured</span>" if ran else "<span class='muted'>built, not run here</span>"
    elif all(r.constraints.values()):
        text = "<span class='good'>meets the constraints</span>"
    else:
        broken = ", ".join(LIMIT_NAMES.get(k, k) for k, v in r.constraints.items() if not v)
        text = f"<span class='bad'>breaks {_escape(broken)}</span>"
    if r.notes:
        text += "<br><small>" + _escape("; ".join(r.notes)) + "</small>"
    return text


def _table(result: RunResult, cols: list[str], numbers: dict[str, int], names: dict[str, str]) -> str:
    head = "".join(f"<th class='num'>{_escape(metric_title(c))}</th>" for c in cols)
    rows = []
    if result.reference:
        ref = result.reference["metrics"]
        label = _escape(result.reference["label"])
        rows.append(f"<tr class='ref'><td>ref</td><td><b>reference</b><div class='muted'>{label}</div></td><td>cpu</td>"
                    + "".join(f"<td class='num'>{number(ref.get(c))}</td>" for c in cols)
                    + "<td></td><td class='muted'>what accuracy drops are measured against</td></tr>")  # fmt: skip
    for r in result.results:
        c = r.candidate
        rows.append(
            f"<tr class='{'chosen' if r.chosen else ''}'><td>{numbers[c.id]}</td>"
            f"<td class='cand' title='{_escape(c.describe())}'><b>{_escape(names[c.id])}</b>"
            + (" <span class='tag'>chosen</span>" if r.chosen else "")
            + f"<details><summary>{c.id} · pipeline</summary><code>{_escape(c.describe())}</code></details></td>"
            f"<td>{_escape(target_label(c.target))}</td>"
            + "".join(f"<td class='num'>{number(r.metrics.get(col))}</td>" for col in cols)
            + f"<td>{'yes' if r.on_front else ''}</td><td>{_status(r)}</td></tr>"
        )
    return (f"<table><thead><tr><th>#</th><th>candidate</th><th>target</th>{head}<th>Pareto front</th>"
            f"<th>status</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")  # fmt: skip


def _choice(result: RunResult, recipe: Recipe, cols: list[str], numbers: dict[str, int],
            names: dict[str, str]) -> str:  # fmt: skip
    chosen = result.chosen
    if chosen is None:
        head = "<h2>No candidate was chosen</h2>"
    else:
        c = chosen.candidate
        head = (f"<h2>Chosen: #{numbers[c.id]} {_escape(names[c.id])} <span class='muted'>on "
                f"{_escape(target_label(c.target))}</span></h2><p class='muted'>{c.id} · "
                f"<code>{_escape(c.describe())}</code></p>")  # fmt: skip
        ref = result.reference["metrics"] if result.reference else {}
        cells = []
        for col in cols:
            value = chosen.metrics.get(col)
            if value is None:
                continue
            against = f"<div class='muted'>reference {number(ref[col])}</div>" if col in ref else ""
            cells.append(f"<div class='figure'><div class='label'>{_escape(metric_title(col))}</div>"
                         f"<div class='value'>{number(value)}</div>{against}</div>")  # fmt: skip
        head += f"<div class='figures'>{''.join(cells)}</div>"
    if recipe.evaluate:
        objective = OBJECTIVE_WORDS.get(recipe.evaluate.objective, recipe.evaluate.objective)
        if recipe.evaluate.objective == "accuracy":
            objective = f"highest {metric_title(accuracy_name(result), False)}"
        items = (
            "".join(
                f"<li><span class='state {_state_class(state)}'>{_escape(state)}</span> {_escape(text)}</li>"
                for _, text, state in constraint_texts(result, recipe)
            )
            or "<li>none set</li>"
        )
        head += (f"<p><b>Objective:</b> {_escape(objective)}, among the candidates that meet the constraints.</p>"
                 f"<p><b>Constraints</b>{' (for the chosen candidate)' if chosen else ''}:</p>"
                 f"<ul class='constraints'>{items}</ul>")  # fmt: skip
    head += "".join(f"<p class='note'>{_escape(n)}</p>" for n in result.notes)
    return f"<section class='choice'>{head}</section>"


_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:2em auto;
max-width:1180px;padding:0 1.5em;color:#222;line-height:1.4}
h1{font-size:1.7em;margin:0 0 .2em}h2{font-size:1.25em;margin:1.4em 0 .4em}
.muted{color:#6b7079;font-weight:normal}code{font-size:12px;word-break:break-word}
header .source{overflow-wrap:anywhere}figure{margin:1em 0}figure svg{max-width:100%;height:auto}
.wide{overflow-x:auto}
.choice{border:1px solid #d9dde3;border-radius:8px;padding:.4em 1.2em 1em;background:#fafbfc}
.figures{display:flex;flex-wrap:wrap;gap:.6em;margin:.8em 0}
.figure{border:1px solid #e3e6ea;border-radius:6px;background:#fff;padding:.4em .8em;min-width:9em}
.figure .label{font-size:12px;color:#555}.figure .value{font-size:1.35em;font-weight:600}
.figure .muted{font-size:12px}
ul.constraints{margin:.2em 0;padding-left:1.2em}
.state{display:inline-block;border-radius:4px;padding:0 .45em;margin-right:.4em;font-size:12px;font-weight:600}
.state.met{background:#e3f5ea;color:#17693f}.state.broken{background:#fde7e7;color:#a11d1d}
.state.not{background:#fff3d6;color:#7a5300}.state.met,.state.broken,.state.not{border:1px solid currentColor}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.4em .8em}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e3e6ea;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f3f5f7;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.chosen{background:#eaf7ef}tr.ref{background:#f6f7f9}
td.cand{max-width:26em}td.cand details{margin-top:2px}td.cand summary{color:#6b7079;cursor:pointer;font-size:12px}
.tag{background:#d62728;color:#fff;border-radius:4px;padding:0 .4em;font-size:11px;margin-left:.3em}
.good{color:#17693f}.bad{color:#a11d1d}figure{margin:0}
figcaption{font-size:13px;color:#555;max-width:860px}
footer{margin-top:2em;font-size:12px;color:#6b7079}
"""


def write_html_report(folder: Path, result: RunResult, recipe: Recipe) -> None:
    """Write report.html: the choice and constraints, the trade-off chart, the candidates table."""
    cols = metric_columns(result)
    numbers = {r.candidate.id: i + 1 for i, r in enumerate(result.results)}
    names = short_names(result.results)
    common = common_settings(result.results)
    targets = ", ".join(dict.fromkeys(target_label(r.candidate.target) for r in result.results)) or "no target"
    subtitle = f"{len(result.results)} candidate{'s' if len(result.results) != 1 else ''} for {targets}"
    caption = ("Each dot is a candidate that was built and measured; hover over one for its figures and full "
               "pipeline. Better is towards the axis titles' direction; the Pareto front joins the candidates "
               "that no other candidate beats on every measure.")  # fmt: skip
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>olive-ext run report</title><style>{_STYLE}</style></head>
<body><header><h1>olive-ext run report</h1><div class="muted">{_escape(subtitle)}</div>
<div class="muted source">{_escape(source_text(recipe))}</div></header>
{_choice(result, recipe, cols, numbers, names)}
<h2>Trade-off</h2><figure>{pareto_svg(result, recipe, numbers)}<figcaption>{caption}</figcaption></figure>
<h2>Candidates</h2>
{f"<p class='muted'>Every candidate: <code>{_escape(common)}</code>; the names say what differs.</p>" if common else ""}
<div class="wide">{_table(result, cols, numbers, names)}</div>
<footer>Wall time {result.seconds:.1f} s; steps reused from cache: {result.cache_hits} of {result.steps_run}.
Written by olive-ext {_escape(__version__)}.</footer>
</body></html>
"""
    (folder / "report.html").write_text(page)


def _state_class(state: str) -> str:
    """The badge of a constraint's state: green "met" only when it holds for the chosen candidate ("met by 0 of 2
    candidates", when none was chosen, was green too); red when no candidate meets it; amber otherwise."""
    if state == "met":
        return "met"
    if state == "broken" or state.startswith("met by 0 "):
        return "broken"
    return "not"
