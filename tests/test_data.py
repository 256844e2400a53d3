"""Data loading and formats: templates, alpaca, messages, text; clear errors for bad columns and splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from olive_ext.data import load_examples, load_rows, to_examples
from olive_ext.errors import UserInputError
from olive_ext.evaluate.exact_match import exact_match, normalize_answer
from olive_ext.recipe.schema import DatasetSpec


@pytest.fixture
def jsonl(tmp_path: Path) -> Path:
    rows = [{"phrase": f"phrase {i}", "tone": "happy" if i % 2 else "sad"} for i in range(10)]
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows))
    return p


def test_split_slices_and_max_samples(jsonl: Path) -> None:
    assert len(load_rows(DatasetSpec(name="json", data_files=str(jsonl), split="train[:70%]"))) == 7
    assert len(load_rows(DatasetSpec(name="json", data_files=str(jsonl), split="train[7:]"))) == 3
    assert len(load_rows(DatasetSpec(name="json", data_files=str(jsonl), max_samples=4))) == 4
    assert len(load_rows(DatasetSpec(name=str(jsonl)))) == 10  # a path as the name


def test_empty_split_and_missing_file_are_clear(jsonl: Path, tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="empty"):
        load_rows(DatasetSpec(name="json", data_files=str(jsonl), split="train[10:]"))
    with pytest.raises(UserInputError, match="does not exist"):
        load_rows(DatasetSpec(name="json", data_files=str(tmp_path / "nope.jsonl")))


def test_template_trailing_field_is_the_response(jsonl: Path) -> None:
    spec = DatasetSpec(name="json", data_files=str(jsonl), text_template="User: {phrase}\nTone: {tone}")
    ex = load_examples(spec)[1]
    assert ex.prompt == "User: phrase 1\nTone: " and ex.response == "happy" and ex.reference == "happy"
    assert ex.text == "User: phrase 1\nTone: happy"


def test_template_with_missing_column_lists_columns(jsonl: Path) -> None:
    spec = DatasetSpec(name="json", data_files=str(jsonl), text_template="{phrase} -> {label}")
    with pytest.raises(UserInputError, match=r"'label'.*it has: phrase, tone"):
        load_examples(spec)


def test_template_without_trailing_field_is_plain_text() -> None:
    spec = DatasetSpec(name="json", data_files="x", text_template="{a} and {b}.")
    ex = to_examples([{"a": "1", "b": "2"}], spec)[0]
    assert ex.prompt == "" and ex.response == "1 and 2." and ex.reference is None


def test_alpaca_uses_chat_template_when_model_has_one(tiny_llama: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    spec = DatasetSpec(name="json", data_files="x", format="alpaca")
    ex = to_examples([{"instruction": "say yes", "input": "", "output": "yes"}], spec, tok)[0]
    assert ex.prompt.endswith("<|im_start|>assistant\n") and "say yes" in ex.prompt
    assert ex.response == "yes<|im_end|>\n" and ex.reference == "yes"
    plain = to_examples([{"instruction": "say yes", "input": "ctx", "output": "yes"}], spec, None)[0]
    assert "### Input:\nctx" in plain.prompt and plain.response == "yes"


def test_messages_split_last_assistant_turn(tiny_llama: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    spec = DatasetSpec(name="json", data_files="x", format="messages")
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]
    ex = to_examples(rows, spec, tok)[0]
    assert ex.prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert ex.response == "hello<|im_end|>\n" and ex.reference == "hello"


def test_auto_format_detection_and_unknown_columns() -> None:
    spec = DatasetSpec(name="json", data_files="x")
    assert to_examples([{"text": "abc"}], spec)[0].response == "abc"
    with pytest.raises(UserInputError, match="columns: a, b"):
        to_examples([{"a": 1, "b": 2}], spec)


def test_exact_match_normalization() -> None:
    assert normalize_answer("  Positive.\n") == "positive"
    assert exact_match(["positive", "Negative ", "neutral"], ["positive", "negative", "happy"]) == pytest.approx(
        200 / 3
    )
    with pytest.raises(ValueError):
        exact_match(["a"], [])
