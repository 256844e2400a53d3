"""Prompts sent to a built genai model start with the BOS its tokenizer adds, as fine-tuning and evaluation saw them.

onnxruntime-genai's ``Tokenizer.encode`` adds no special tokens by default; serve, chat, verify and the bundle's
run.py add the BOS once (``olive_ext/onnx/genai_tokens.py``).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import pytest
from convert_helpers import build
from tiny_models import add_bos_post_processor, build_tiny_llama

from olive_ext.data.formats import encode_prompt
from olive_ext.serve.genai_backend import GenAIBackend

TEXT = "the capital of paris is"


@pytest.fixture(scope="module")
def bos_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    src = build_tiny_llama(tmp_path_factory.mktemp("bos-llama") / "model")
    bos = add_bos_post_processor(src)
    art = build(src, {"build": {"type": "model_builder"}}, cache_dir=tmp_path_factory.mktemp("bos-cache"))
    return Path(art.path), bos


def _hf(folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def test_served_prompt_ids_equal_the_evaluated_ones(bos_model: tuple[Path, int]) -> None:
    folder, bos = bos_model
    backend = GenAIBackend(folder, {})
    hf = _hf(folder)
    assert backend.encode(TEXT) == encode_prompt(hf, TEXT)
    assert backend.encode(TEXT)[0] == bos
    templated = backend.chat_prompt([{"role": "user", "content": "hello"}])
    assert backend.encode(templated) == encode_prompt(hf, templated)
    # text that already starts with the BOS gets no second one
    with_bos = hf.convert_ids_to_tokens(bos) + TEXT
    assert backend.encode(with_bos)[:2] != [bos, bos]


def test_a_tokenizer_without_bos_gets_none(tiny_llama: Path, tmp_path: Path) -> None:
    art = build(tiny_llama, {"build": {"type": "model_builder"}}, cache_dir=tmp_path / "cache")
    backend = GenAIBackend(Path(art.path), {})
    assert backend.encode(TEXT) == encode_prompt(_hf(Path(art.path)), TEXT)


def test_the_bundles_run_py_adds_the_bos_too(bos_model: tuple[Path, int], tmp_path: Path) -> None:
    folder, bos = bos_model
    script = Path(__file__).parents[1] / "olive_ext" / "deploy" / "templates" / "run.py"
    copy = tmp_path / "run.py"
    shutil.copy(script, copy)
    spec = importlib.util.spec_from_file_location("bundle_run", copy)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    chat = module.Chat(str(folder))
    assert chat.bos == bos
    out: list[str] = []
    chat.answer("hello", max_new_tokens=2, write=out.append)  # runs with the BOS in front
