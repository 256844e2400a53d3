"""Run reports: report.md (readable anywhere) and report.html (table plus Pareto chart)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from olive_ext.report.html import write_html_report
from olive_ext.report.markdown import write_report

if TYPE_CHECKING:
    from olive_ext.engine.results import RunResult
    from olive_ext.recipe.schema import Recipe


def write_reports(folder: Path, result: RunResult, recipe: Recipe) -> None:
    """Write report.md and report.html into ``folder``."""
    write_report(folder, result, recipe)
    write_html_report(folder, result, recipe)
