"""benchmarks/: what RESULTS.md holds must read the same on any machine (no absolute paths of the one it ran on)."""

from __future__ import annotations

import re
from pathlib import Path

from benchmarks._common import RESULTS, ROOT, write_section

# an absolute path of a POSIX machine, not a URL (no ':' before the slash)
ABSOLUTE = re.compile(r"(?<![\w:/.~])/(?:root|home|work|tmp|Users|mnt|opt|var)/[\w.-]")


def test_write_section_writes_repository_paths_relative_and_home_as_tilde(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    body = (
        f"`olive-ext finetune -m {Path.home() / '.cache/olive-ext/pypi-models/m.gguf'} "
        f"--data_files {ROOT / 'recipes/data/tone.jsonl'}` run in {ROOT}; see https://example.org/x"
    )
    write_section(results, "Fine-tuning", body)
    text = results.read_text()
    assert "--data_files recipes/data/tone.jsonl" in text
    assert "-m ~/.cache/olive-ext/pypi-models/m.gguf" in text
    assert "run in .;" in text and "https://example.org/x" in text
    assert str(ROOT) not in text


def test_results_md_has_no_absolute_paths() -> None:
    found = [line[:120] for line in RESULTS.read_text().splitlines() if ABSOLUTE.search(line)]
    assert not found, found
