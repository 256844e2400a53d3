"""Progress a user can follow: plain lines in logs (not a terminal), events through the Python API's hook,
and one display, ours: no library progress bars or harmless library warnings in the output."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from rich.console import Console

if TYPE_CHECKING:
    from olive_ext.progress import ProgressEvent

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = "Q: {q}\\nA: {a}"  # as typed on a command line
# the library output a user saw interleaved with ours (issue 19, item 2)
LIBRARY_NOISE = (
    "Loading weights",
    "Writing model shards",
    "Generating train split",
    "Converting and de-quantizing GGUF tensors",
    "it/s]",  # any other tqdm bar
    "The model is invalid but we will still create a new input",
)


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLIVE_EXT_THREADS", "1")  # the tiny model's ops are too small to share between threads


@pytest.fixture(scope="module")
def qa_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "qa.jsonl"
    path.write_text("\n".join(json.dumps({"q": f"what is {i} plus {i}?", "a": str(2 * i)}) for i in range(40)))
    return path


def finetune_argv(model: Path, data: Path, out: Path, steps: int) -> list[str]:
    return ["finetune", "-m", str(model), "-d", "json", "--data_files", str(data), "--train_split", "train[:30]",
            "--eval_split", "train[30:]", "--text_template", TEMPLATE, "--max_steps", str(steps),
            "--torch_dtype", "float32", "-o", str(out)]  # fmt: skip


def test_plain_lines_at_a_steady_interval_when_the_output_is_not_a_terminal() -> None:
    from olive_ext.progress import Progress

    out = io.StringIO()
    progress = Progress(console=Console(file=out, width=160), interval=0.05)  # a file: not a terminal
    with progress.task("work", total=4) as bar:
        for _ in range(4):
            time.sleep(0.12)
            bar.advance()
            bar.update(info={"loss": 1.5, "tokens_per_second": 1234.0})
    lines = out.getvalue().splitlines()
    assert lines[0] == "work: 0/4 (0%)", lines
    periodic = [line for line in lines[1:-1] if line.startswith("work: ")]
    assert len(periodic) >= 3, lines  # ~0.5 s at one line per 0.05 s, however busy the machine
    assert any(re.search(r"work: [123]/4 \(\d+%\) · loss 1\.500 · 1,234 tok/s · elapsed 0:00 · eta 0:0\d", p)
               for p in periodic), periodic  # fmt: skip
    assert re.fullmatch(r"work: 4/4 \(100%\) · loss 1\.500 · 1,234 tok/s · took 0:0\d", lines[-1]), lines
    assert "\x1b[" not in out.getvalue() and "━" not in out.getvalue()  # no bar drawn into a log


def test_log_lines_print_above_the_live_bar_on_a_terminal() -> None:
    from rich.logging import RichHandler

    from olive_ext.progress import Progress

    out = io.StringIO()
    console, other = (Console(file=out, force_terminal=True, width=100) for _ in range(2))
    handler = RichHandler(console=other, show_time=False, show_path=False)  # as the CLI's logging setup makes it
    logger = logging.getLogger("olive_ext")
    saved = logger.handlers[:], logger.propagate
    logger.handlers[:], logger.propagate = [handler], False
    try:
        with Progress(console=console).task("work", total=2) as bar:
            bar.advance()
            logger.warning("a line from the log")
        assert handler.console is other  # given back when the bars stop
    finally:
        logger.handlers[:], logger.propagate = saved
    text = out.getvalue()
    # the live display erased its bar before the line and drew it again after: the line sits above the bar
    assert re.search(r"\x1b\[2K(\x1b\[[0-9;]*m)*WARNING", text), repr(text)
    assert "work" in text[text.index("a line from the log") :]


def test_finetune_through_the_cli_prints_step_loss_speed_and_eta_into_a_log(
    tiny_llama: Path, qa_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from olive_ext.cli import main

    monkeypatch.setenv("OLIVE_EXT_PROGRESS_INTERVAL", "0.05")
    assert main(finetune_argv(tiny_llama, qa_file, tmp_path / "ft", steps=40)) == 0
    captured = capsys.readouterr()  # not a terminal, like `make demo > log 2>&1`
    log = captured.out + captured.err
    training = re.findall(r"^fine-tuning \(lora\): (\d+)/40 \(\d+%\)(.*)$", log, re.MULTILINE)
    steps = [int(step) for step, _ in training]
    assert steps[0] == 0 and steps[-1] == 40 and len(set(steps)) >= 3, log  # start, some steps, the end
    middle = [rest for step, rest in training if 0 < int(step) < 40]
    figures = r"· loss \d+\.\d{3} · [\d,]+ tok/s · elapsed \d+:\d\d · eta \d+:\d\d$"
    assert any(re.search(figures, rest) for rest in middle), log
    assert re.search(r"^fine-tuning \(lora\): 40/40 \(100%\) · loss .* took \d+:\d\d$", log, re.MULTILINE), log
    for phase in ("eval: base model", "eval: fine-tuned model"):  # the other long phases say when they end
        assert re.search(rf"^{phase}: done · took \d+:\d\d$", log, re.MULTILINE), log


def test_the_python_api_hook_receives_typed_events(tiny_llama: Path, qa_file: Path, tmp_path: Path) -> None:
    from olive_ext.progress import Progress
    from olive_ext.workflows.finetune import finetune

    events: list[ProgressEvent] = []
    finetune(str(tiny_llama), str(tmp_path / "ft"), progress=Progress(enabled=False, on_update=events.append),
             data_files=str(qa_file), train_split="train[:30]", eval_split="train[30:]",
             text_template="Q: {q}\nA: {a}", max_steps=12, torch_dtype="float32")  # fmt: skip
    training = [e for e in events if e.phase == "fine-tuning (lora)"]
    assert training[0].kind == "start" and training[-1].kind == "end"
    updates = [e for e in training if e.kind == "update" and e.completed > 0]
    assert [e.completed for e in updates] == sorted(e.completed for e in updates) and updates[-1].completed == 12
    assert all(e.total == 12 for e in updates)
    last = updates[-1]
    assert last.info["tokens_per_second"] > 0 and last.info["loss"] > 0 and last.eta is not None
    assert last.elapsed >= updates[0].elapsed
    phases = {e.phase for e in events}
    assert {"candidates", "eval: base model", "eval: fine-tuned model"} <= phases, phases
    assert all(e.kind in {"start", "update", "end"} for e in events)


def _run_cli(args: list[str], cwd: Path) -> str:
    """A fresh `olive-ext` process with its output going to a pipe (a log file, CI): what it printed."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OLIVE_EXT_PROGRESS_INTERVAL": "0.5"}
    for name in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        env.pop(name, None)  # the command must switch them off itself
    proc = subprocess.run([sys.executable, "-m", "olive_ext", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    return log


def test_a_finetune_and_an_int4_build_print_no_library_noise(tiny_llama: Path, qa_file: Path, tmp_path: Path) -> None:
    # one process: data loading, LoRA training, the merge, then int4 with the lm_head sharing the embedding
    # (the build where onnx_ir said "the model is invalid")
    recipe = {
        "input_model": {"path": str(tiny_llama)},
        "data": {"train": {"name": "json", "data_files": str(qa_file), "split": "train[:30]",
                           "text_template": "Q: {q}\nA: {a}"}},
        "passes": {"lora": {"type": "lora", "train_data": "train", "max_steps": 4, "torch_dtype": "float32"},
                   "build": {"type": "model_builder", "precision": "int4", "algorithm": "rtn"}},
        "output": {"path": str(tmp_path / "out")},
    }  # fmt: skip
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    log = _run_cli(["run", "--config", str(tmp_path / "recipe.json")], tmp_path)
    for noise in LIBRARY_NOISE:
        assert noise not in log, (noise, log)
    assert "fine-tuning (lora): 4/4 (100%)" in log and "candidates: 1/1 (100%) · lora -> model_builder · took" in log
    # ... and the message was harmless: the saved graph defines every input it uses
    import onnx

    graph = onnx.load(str(tmp_path / "out" / "model" / "model.onnx"), load_external_data=False).graph
    defined = {i.name for i in graph.initializer} | {i.name for i in graph.input} | {""}
    defined |= {o for node in graph.node for o in node.output}
    assert "lm_head.MatMul.weight_scale" in defined
    assert not [i for node in graph.node for i in node.input if i not in defined]


_TQDM_AROUND_AN_API_CALL = """
import io, sys
{first}
from olive_ext.quiet import library_noise_hidden

def bar_text() -> str:
    from tqdm import tqdm
    out = io.StringIO()
    for _ in tqdm(range(3), desc="Processing layers", file=out):
        pass
    return out.getvalue()

with library_noise_hidden(loads_models=False):
    inside = bar_text()
    explicit = __import__("tqdm").tqdm(range(1), file=io.StringIO(), disable=False).disable
after = bar_text()
print(repr(inside), explicit, "Processing layers" in after)
"""


@pytest.mark.parametrize("first", ["import tqdm  # a notebook had imported it", "# tqdm first imported in the call"])
def test_bars_drawn_with_tqdm_itself_are_off_for_an_api_call_only(first: str) -> None:
    """olive-ai's GPTQ and RTN draw with tqdm ("Processing layers...") and reached a notebook's output: tqdm reads
    TQDM_DISABLE once, at its first import, which a caller had done before the call. Read at a first import during
    a call, the variable would have switched the caller's own bars off for the rest of the process."""
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    proc = subprocess.run([sys.executable, "-c", _TQDM_AROUND_AN_API_CALL.format(first=first)], capture_output=True,
                          text=True, timeout=120, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["''", "False", "True"], proc.stdout  # off in the call; an explicit disable= wins
