"""Data-parallel fine-tuning: `torchrun --nproc_per_node 2 -m olive_ext finetune` on the tiny Llama (gloo, CPU).

Two processes with 2 examples each per step against one process with 2 examples and 2 accumulation steps:
the same global batch of 4, in the same order, so the loss curves match (tolerance 1e-3 per logged step;
they agree to the 5 decimals train_metrics.json keeps). Only rank 0 writes the output folder.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from conftest import write_qa_rows

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).parent / "torchrun"
TOLERANCE = 1e-3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _finetune(launcher: list[str], model: Path, data: Path, out: Path, cache: Path, *extra: str,
              length: tuple[str, str] = ("--max_steps", "6")) -> dict[str, object]:
    args = ["finetune", "-m", str(model), "-d", "json", "--data_files", str(data), "--text_template", "Q: {q}\\nA: {a}",
            *length, "--learning_rate", "3e-3", "--torch_dtype", "float32", "--logging_steps", "1",
            "--gradient_checkpointing", "false", "--per_device_train_batch_size", "2", "--log_level", "2",
            "-o", str(out), *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OLIVE_EXT_CACHE": str(cache), "TMPDIR": str(cache.parent)}
    done = subprocess.run([*launcher, "-m", "olive_ext", *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "train_metrics.json").read_text())


def test_torchrun_two_processes_match_one_process_with_the_same_global_batch(tiny_llama: Path, tmp_path: Path) -> None:
    data = write_qa_rows(tmp_path / "train.jsonl", 40)
    single = _finetune([sys.executable], tiny_llama, data, tmp_path / "single", tmp_path / "cache-1",
                       "--gradient_accumulation_steps", "2")  # fmt: skip
    torchrun = [str(TORCHRUN), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port",
                str(_free_port())]  # fmt: skip
    ddp = _finetune(torchrun, tiny_llama, data, tmp_path / "ddp", tmp_path / "cache-2")
    one, two = single["loss_curve"], ddp["loss_curve"]
    assert isinstance(one, list) and isinstance(two, list) and len(one) == len(two) == 6
    for a, b in zip(one, two, strict=True):
        assert a["step"] == b["step"] and abs(a["loss"] - b["loss"]) <= TOLERANCE, (one, two)
    # every process's tokens are counted: the same as the single process's, over the same micro-batches
    assert ddp["processes"] == 2 and single["processes"] == 1
    assert ddp["train_tokens"] == single["train_tokens"] and ddp["train_target_tokens"] == single["train_target_tokens"]
    # rank 0 alone wrote: one output folder, no rank's scratch folder left behind
    assert (tmp_path / "ddp" / "adapter" / "adapter_model.safetensors").exists()
    assert not list(tmp_path.glob("olive-ext-rank-*"))


def test_torchrun_with_an_eval_split_and_epochs(tiny_llama: Path, tmp_path: Path) -> None:
    """With --eval_split two processes hung at step 0 (rank 0's evaluation before training had the loss take the
    decoder under DDP, which raised, and its error waited at a barrier for ever); an epoch was world-size epochs."""
    data = write_qa_rows(tmp_path / "train.jsonl", 40)
    torchrun = [str(TORCHRUN), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port",
                str(_free_port())]  # fmt: skip
    metrics = _finetune(torchrun, tiny_llama, data, tmp_path / "ddp", tmp_path / "cache", "--train_split",
                        "train[:32]", "--eval_split", "train[32:]", length=("--num_train_epochs", "1"))  # fmt: skip
    # 32 rows, 2 rows per process per step, 2 processes: 8 steps make one epoch
    assert metrics["steps"] == 8 and metrics["epochs"] == 1.0, metrics


def test_too_few_rows_for_every_process_s_batch_are_said() -> None:
    """Under torchrun a per-device batch larger than the data repeated rows unevenly (the sampler pads each
    process's batch), without a word."""
    from olive_ext.train.run import uneven_rows

    assert uneven_rows(40, 2, 2) is None and uneven_rows(3, 8, 1) is None  # enough rows; one process pads nothing
    note = uneven_rows(3, 2, 2)
    assert note is not None and "3 training rows for 2 processes" in note and "--per_device_train_batch_size 1" in note
