"""benchmarks/: what RESULTS.md holds must read the same on any machine (no absolute paths of the one it ran on)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from benchmarks._common import RESULTS, ROOT, Timed, output_path, run_main, shown_path, write_section

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


def test_write_section_creates_the_missing_folder(tmp_path: Path) -> None:
    results = tmp_path / "new" / "deeper" / "RESULTS.md"
    write_section(results, "Start-up", "figures")
    assert "## Start-up\n\nfigures" in results.read_text()


def test_output_path_resolves_against_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert output_path("sub/out.md") == tmp_path / "sub" / "out.md"


def test_output_path_refuses_what_cannot_be_written_up_front(tmp_path: Path) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is a folder"):
        output_path(str(tmp_path))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(argparse.ArgumentTypeError, match="cannot create"):
        output_path(str(blocker / "sub" / "out.md"))


def test_shown_path_is_relative_to_the_repository() -> None:
    assert shown_path(RESULTS) == "benchmarks/RESULTS.md"
    assert shown_path(Path("/elsewhere/out.md")) == "/elsewhere/out.md"


def test_run_main_turns_ctrl_c_into_exit_130_and_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exit_:
        run_main(interrupted)
    assert exit_.value.code == 130
    assert capsys.readouterr().err == "interrupted\n"
    with pytest.raises(SystemExit) as exit_:
        run_main(lambda: None)
    assert exit_.value.code == 0


def test_timed_error_names_the_cli_error_line_not_its_hint(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text("error: input model path '/x' does not exist\n  hint: give a local folder\n")
    assert Timed([], 2, 0.5, 10.0, log).error() == "error: input model path '/x' does not exist"
