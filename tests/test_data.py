"""Data loading and formats: templates, alpaca, messages, text; clear errors for bad columns and splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from olive_ext.data import load_examples, load_rows, smoke_prompts, to_examples
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


def test_smoke_prompts_are_the_first_three_prompts_of_the_split(jsonl: Path) -> None:
    template = "User: {phrase}\nTone: {tone}"
    spec = DatasetSpec(name="json", data_files=str(jsonl), split="train[4:]", text_template=template)
    assert smoke_prompts(spec) == [f"User: phrase {i}\nTone: " for i in (4, 5, 6)]
    assert smoke_prompts(spec.model_copy(update={"max_samples": 1})) == ["User: phrase 4\nTone: "]
    plain = DatasetSpec(name="json", data_files=str(jsonl), format="text", text_field="phrase")
    assert smoke_prompts(plain) == []  # plain text has no prompts


def test_template_with_missing_column_lists_columns(jsonl: Path) -> None:
    spec = DatasetSpec(name="json", data_files=str(jsonl), text_template="{phrase} -> {label}")
    with pytest.raises(UserInputError, match=r"'label'.*it has: phrase, tone"):
        load_examples(spec)


@pytest.mark.parametrize(("sep", "named"), [(";", "semicolons"), ("\t", "tabs")])
def test_a_csv_with_another_separator_says_so(tmp_path: Path, sep: str, named: str) -> None:
    """A spreadsheet's CSV export in many locales separates with semicolons: read comma-separated it is one column,
    and the error said only "it has: phrase;tone"."""
    from olive_ext.data.formats import check_named_columns

    data = tmp_path / "d.csv"
    data.write_text(f"phrase{sep}tone\nI love it{sep}joyful\n")
    for spec in (DatasetSpec(name="csv", data_files=str(data), text_template="{phrase} -> {tone}"),
                 DatasetSpec(name="csv", data_files=str(data), format="text", text_field="phrase")):  # fmt: skip
        with pytest.raises(UserInputError) as e:
            check_named_columns(spec)
        assert f"separated by {named}" in (e.value.hint or ""), e.value


@pytest.mark.parametrize("name", ["rows.tsv", "rows.tab", "rows.tsv.gz"])
def test_a_tsv_file_is_read_tab_separated(tmp_path: Path, name: str) -> None:
    """A .tsv was refused as "not JSON" without -d, and read as one column with -d csv."""
    import gzip

    from olive_ext.data.load import check_data_files
    from olive_ext.data.spec import DataOptions

    text = "phrase\ttone\nI love it, truly\tjoyful\n02134\tsad\n"
    data = tmp_path / name
    data.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    flags = [{"data_files": str(data)}] if not name.endswith(".gz") else []
    for given in [*flags, {"data_name": "csv", "data_files": str(data)}]:
        spec = DataOptions(**given, text_template="{phrase} -> {tone}").to_spec("train")
        assert spec is not None
        check_data_files(spec)
        rows = [dict(r) for r in load_rows(spec)]
        assert rows == [{"phrase": "I love it, truly", "tone": "joyful"}, {"phrase": "02134", "tone": "sad"}], rows


def test_text_after_the_last_column_ends_the_answer(tiny_llama: Path) -> None:
    from transformers import AutoTokenizer

    from olive_ext.train.features import IGNORE, PromptEncoder, tokenize

    chatml = "<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n{answer}<|im_end|>\n"
    spec = DatasetSpec(name="json", data_files="x", text_template=chatml)
    ex = to_examples([{"question": "capital of france?", "answer": "paris"}], spec)[0]
    assert ex.prompt == "<|im_start|>user\ncapital of france?<|im_end|>\n<|im_start|>assistant\n"
    assert ex.response == "paris<|im_end|>" and ex.reference == "paris" and ex.answer_end == "<|im_end|>"
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    row = tokenize([ex], PromptEncoder(tok), 64).rows[0]
    trained = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != IGNORE]
    assert tok.decode(trained) == "paris<|im_end|>"  # the model learns to stop at the end-of-turn
    plain = to_examples([{"a": "1", "b": "2"}], spec.model_copy(update={"text_template": "{a} and {b}."}))[0]
    assert (plain.prompt, plain.response, plain.reference, plain.answer_end) == ("1 and ", "2.", "2", ".")
    braces = to_examples([{"q": "x", "a": "y"}], spec.model_copy(update={"text_template": "{q} {{ {a} }}"}))[0]
    assert (braces.prompt, braces.response, braces.reference) == ("x { ", "y }", "y")  # braces escaped as {{ }}
    # exact match compares the answer column: a plain-text end marker the model generates is not part of it
    assert exact_match(["paris </answer>", "rome"], ["paris", "paris"], ["</answer>", "</answer>"]) == 50.0
    assert exact_match(["3.5."], ["3.5"], ["."]) == 100.0


def test_response_field_outside_the_template_makes_the_template_the_prompt() -> None:
    spec = DatasetSpec(name="json", data_files="x", text_template="Review: {text}\nTone: ", response_field="label")
    ex = to_examples([{"text": "great", "label": "positive"}], spec)[0]
    assert (ex.prompt, ex.response, ex.reference) == ("Review: great\nTone: ", "positive", "positive")
    with pytest.raises(UserInputError, match=r"--response_field names column 'tone'.*it has: text, label"):
        to_examples([{"text": "great", "label": "positive"}], spec.model_copy(update={"response_field": "tone"}))


def test_a_template_that_cannot_be_filled_names_the_row() -> None:
    spec = DatasetSpec(name="json", data_files="x", text_template="{q} -> {} {a}")
    with pytest.raises(UserInputError, match=r"row 0: text template .* could not be filled"):
        to_examples([{"q": "x", "a": "y"}], spec)


def test_alpaca_uses_chat_template_when_model_has_one(tiny_llama: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    spec = DatasetSpec(name="json", data_files="x", format="alpaca")
    ex = to_examples([{"instruction": "say yes", "input": "", "output": "yes"}], spec, tok)[0]
    assert ex.prompt.endswith("<|im_start|>assistant\n") and "say yes" in ex.prompt
    assert ex.response == "yes<|im_end|>\n" and ex.reference == "yes"
    plain = to_examples([{"instruction": "say yes", "input": "ctx", "output": "yes"}], spec, None)[0]
    assert "### Input:\nctx" in plain.prompt and plain.response == "yes"
    # instruction and input in one user turn, joined as LLaMA-Factory joins them ("\n\n" before): its adapters are
    # scored on the prompts they were trained on
    both = to_examples([{"instruction": "Translate to French", "input": "good morning", "output": "bonjour"}],
                       spec, tok)[0]  # fmt: skip
    assert "<|im_start|>user\nTranslate to French\ngood morning<|im_end|>" in both.prompt


def test_llama_factory_alpaca_rows_keep_system_history_and_empty_cells(
    tiny_llama: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """LLaMA-Factory's alpaca columns ``system`` and ``history`` were dropped without a word, and a null output
    was trained on as the word "None"; --use_chat_template on alpaca rows asked for a messages column."""
    from transformers import AutoTokenizer

    from olive_ext.data.spec import DataOptions
    from olive_ext.train.run import check_answers

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    spec = DatasetSpec(name="json", data_files="x", format="alpaca")
    row = {"instruction": "And in German?", "input": None, "output": "Katze", "system": "You translate.",
           "history": [["French for cat?", "chat"]]}  # fmt: skip
    ex = to_examples([row], spec, tok)[0]
    assert ex.prompt.startswith("<|im_start|>system\nYou translate.<|im_end|>\n<|im_start|>user\nFrench for cat?")
    assert ex.prompt_turns[1] == "chat<|im_end|>\n" and ex.response == "Katze<|im_end|>\n"  # both answers trained
    plain = to_examples([row], spec, None)[0]
    assert plain.prompt.startswith("You translate.\n\n### Instruction:\nFrench for cat?\n\n### Response:\nchat")
    assert "None" not in plain.prompt
    nulls = to_examples([{"instruction": "q", "output": None}, {"instruction": "q2", "output": "a"}], spec, tok)
    assert nulls[0].reference == "" and "None" not in nulls[0].text
    with caplog.at_level("WARNING", logger="olive_ext"):
        check_answers(nulls, spec)
    assert "1 of 2 rows have an empty answer" in caplog.text
    with pytest.raises(UserInputError, match="row 0: column 'history'"):
        to_examples([{**row, "history": "French for cat? chat"}], spec, tok)
    forced = DataOptions(data_files="x.jsonl", use_chat_template=True).to_spec("train")
    assert forced is not None and to_examples([row], forced, tok)[0].reference == "Katze"


def test_a_template_in_another_familys_control_tokens_is_warned(
    tiny_llama: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A Llama 3 template (the style of Olive's guide) on a ChatML model: <|eot_id|> is trained as 8 plain-text
    pieces and the model's own <|im_end|> never; it was accepted without a word."""
    from transformers import AutoTokenizer

    from olive_ext.train.run import warn_foreign_tokens

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    with caplog.at_level("WARNING", logger="olive_ext"):
        warn_foreign_tokens("<|start_header_id|>user<|end_header_id|>\n{q}<|eot_id|>{a}<|eot_id|>", tok)
    assert "<|start_header_id|>, <|end_header_id|>, <|eot_id|>, which this model's tokenizer" in caplog.text
    assert "<|im_end|>" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="olive_ext"):
        warn_foreign_tokens("<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n{a}<|im_end|>", tok)
    assert caplog.text == ""


def test_llama_factory_dataset_registry_says_which_files_to_pass(tmp_path: Path) -> None:
    """LLaMA-Factory's dataset_info.json given as the data was read as rows ("cannot tell how to turn rows into
    text; the data has columns: my_alpaca, my_sharegpt")."""
    from olive_ext.data.load import check_data_files

    (tmp_path / "mine.json").write_text("[]")
    (tmp_path / "chats.jsonl").write_text("")
    registry = tmp_path / "dataset_info.json"
    registry.write_text(json.dumps({
        "mine": {"file_name": "mine.json", "columns": {"prompt": "question", "response": "answer"}},
        "chats": {"file_name": "chats.jsonl", "formatting": "sharegpt",
                  "columns": {"messages": "dialog", "system": "sys_prompt"}},
        # LLaMA-Factory's documented OpenAI-style entry: read as it is (it was told to rename its tags)
        "openai": {"file_name": "chats.jsonl", "formatting": "sharegpt", "columns": {"messages": "messages"},
                   "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                            "assistant_tag": "assistant", "system_tag": "system"}},
        "custom": {"file_name": "chats.jsonl", "formatting": "sharegpt",
                   "tags": {"role_tag": "speaker", "user_tag": "human"}},
    }))  # fmt: skip
    with pytest.raises(UserInputError, match="LLaMA-Factory's dataset registry") as e:
        check_data_files(DatasetSpec(name="json", data_files=str(registry)))
    hint = e.value.hint or ""
    assert f"mine: -d json --data_files {tmp_path / 'mine.json'} (rename its columns question -> instruction" in hint
    assert f"chats: -d json --data_files {tmp_path / 'chats.jsonl'} --messages_field dialog" in hint
    assert "rename its column sys_prompt -> system" in hint  # its system prompts were dropped without a word
    entries = dict(part.split(": ", 1) for part in hint.split("; "))
    assert "rename" not in entries["openai"] and "rename role_tag='speaker' to those" in entries["custom"], hint


def test_chat_rows_in_the_role_names_other_tools_write(tiny_llama: Path, caplog: pytest.LogCaptureFixture) -> None:
    """role/content rows with ShareGPT's names (human/gpt) were rendered as roles the template does not know and
    trained whole; ShareGPT rows with from: user/assistant were refused; a conversation ending with the user's
    turn was trained whole, the user's words included."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    spec = DatasetSpec(name="json", data_files="x", format="messages")
    human_gpt = {"messages": [{"role": "human", "content": "hi"}, {"role": "gpt", "content": "hello"}]}
    ex = to_examples([human_gpt], spec, tok)[0]
    assert ex.prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n" and ex.reference == "hello"
    gemma = {"messages": [{"role": "User", "content": "hi"}, {"role": "model", "content": "hello"}]}
    assert to_examples([gemma], spec, tok)[0] == ex  # Gemma's "model", a capitalised "User"
    user_assistant = _sharegpt_row(("user", "hi"), ("assistant", "hello"))
    assert to_examples([user_assistant], DatasetSpec(name="json", data_files="x"), tok)[0].reference == "hello"
    ends_with_user = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                                   {"role": "user", "content": "SECRET"}]}  # fmt: skip
    with caplog.at_level("WARNING", logger="olive_ext"):
        examples = to_examples([human_gpt, ends_with_user], spec, tok)
    assert len(examples) == 1 and "SECRET" not in examples[0].text
    assert "1 of 2 rows of 'messages' do not end with an assistant turn (first: row 1)" in caplog.text
    with pytest.raises(UserInputError, match="do not end with an assistant turn"):
        to_examples([ends_with_user], spec, tok)


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


def _sharegpt_row(*turns: tuple[str, str]) -> dict[str, object]:
    return {"conversations": [{"from": who, "value": text} for who, text in turns]}


def test_sharegpt_rows_are_detected_and_every_assistant_turn_is_trained(tiny_llama: Path) -> None:
    from transformers import AutoTokenizer

    from olive_ext.data.spec import DataOptions
    from olive_ext.train.features import IGNORE, PromptEncoder, tokenize

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    row = _sharegpt_row(("system", "be brief"), ("human", "hi"), ("gpt", "hello"), ("human", "bye"), ("gpt", "ciao"))
    spec = DatasetSpec(name="json", data_files="x")  # no flags: the conversations column is found
    ex = to_examples([row], spec, tok)[0]
    assert ex.prompt.startswith("<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n")
    assert ex.prompt.endswith("<|im_start|>user\nbye<|im_end|>\n<|im_start|>assistant\n")
    assert ex.response == "ciao<|im_end|>\n" and ex.reference == "ciao"  # exact match: the last turn
    enc = PromptEncoder(tok)
    tokens = tokenize([ex], enc, 128).rows[0]
    trained = [t if label != IGNORE else None for t, label in zip(tokens["input_ids"], tokens["labels"], strict=True)]
    spans, current = [], []
    for t in [*trained, None]:
        if t is None and current:
            spans.append(tok.decode(current))
            current = []
        elif t is not None:
            current.append(t)
    assert spans == ["hello<|im_end|>\n", "ciao<|im_end|>\n"]  # both answers, no user or system text
    assert tok.decode(tokens["input_ids"]) == ex.text

    # OpenAI-style messages get the same multi-turn loss; --messages_field names another column
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "bye"}, {"role": "assistant", "content": "ciao"}]  # fmt: skip
    chat = DataOptions(data_files="x.jsonl", messages_field="dialog").to_spec("train")
    assert chat is not None and chat.format == "messages" and chat.messages_field == "dialog"
    turns = to_examples([{"dialog": msgs}], chat, tok)[0]
    assert len(turns.prompt_turns) == 3 and turns.prompt_turns[1] == "hello<|im_end|>\n"
    forced = DataOptions(data_files="x.jsonl", use_chat_template=True).to_spec("train")
    assert forced is not None and to_examples([row], forced, tok)[0].reference == "ciao"


def test_chat_rows_a_template_cannot_render_name_the_row_and_field(
    tiny_llama: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    spec = DatasetSpec(name="json", data_files="x", format="messages")
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"}]}
    bad = {"messages": [{"role": None, "content": "hi"}, {"role": "assistant", "content": "yes"}]}
    with pytest.raises(UserInputError, match=r"row 1, field 'messages': the model's chat template failed"):
        to_examples([good, bad], spec, tok)
    strict = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('roles must alternate') }}{% endif %}"
    tok.chat_template = strict + tok.chat_template
    system_first = {"messages": [{"role": "system", "content": "s"}, *good["messages"]]}
    with pytest.raises(UserInputError, match=r"row 0, field 'messages'.*roles must alternate"):
        to_examples([system_first], spec, tok)
    with pytest.raises(UserInputError, match=r"row 0, field 'messages': message 0 has keys 'speaker', 'text'"):
        to_examples([{"messages": [{"speaker": "a", "text": "b"}]}], spec, tok)
    sharegpt = DatasetSpec(name="json", data_files="x")
    with pytest.raises(UserInputError, match=r"row 0, field 'conversations': message 1 has from='bot'"):
        to_examples([_sharegpt_row(("human", "hi"), ("bot", "yes"))], sharegpt, tok)
    # rows out of LLaMA-Factory's order are skipped with a warning, as LLaMA-Factory does; none left is an error
    rows = [_sharegpt_row(("human", "hi"), ("gpt", "yes")), _sharegpt_row(("gpt", "hi"), ("human", "yes"))]
    assert len(to_examples(rows, sharegpt, tok)) == 1
    assert "1 of 2 rows of 'conversations' have ShareGPT roles out of order (first: row 1)" in caplog.text
    with pytest.raises(UserInputError, match="roles out of order"):
        to_examples(rows[1:], sharegpt, tok)


def test_auto_opt_refuses_data_without_answers_before_building(tiny_llama: Path, tmp_path: Path) -> None:
    import os

    import olive_ext

    plain = tmp_path / "plain.jsonl"
    plain.write_text("".join(json.dumps({"text": f"the cat {i}"}) + "\n" for i in range(4)))
    no_prompt = tmp_path / "qa.jsonl"
    no_prompt.write_text("".join(json.dumps({"answer": f"{i}"}) + "\n" for i in range(4)))
    with pytest.raises(UserInputError, match=r"exact_match needs eval examples.*plain text \(column 'text'\)"):
        olive_ext.auto_opt(str(tiny_llama), str(tmp_path / "o"), data_files=str(plain))
    with pytest.raises(UserInputError, match=r"no prompt before the answer"):
        olive_ext.auto_opt(str(tiny_llama), str(tmp_path / "o"), data_files=str(no_prompt), text_template="{answer}")
    assert not (tmp_path / "o").exists() and not Path(os.environ["OLIVE_EXT_CACHE"]).exists()  # nothing built


def test_a_template_that_rewrites_earlier_turns_trains_the_last_one(
    tiny_llama: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from transformers import AutoTokenizer

    from olive_ext.data import answer_problem

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    # like templates that drop earlier turns' reasoning: an answer renders shorter once another turn follows
    tok.chat_template = (
        "{% for m in messages %}{% set c = m['content'] if loop.last or m['role'] != 'assistant' else '...' %}"
        "{{ '<|im_start|>' + m['role'] + '\n' + c + '<|im_end|>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "bye"}, {"role": "assistant", "content": "ciao"}]  # fmt: skip
    spec = DatasetSpec(name="json", data_files="x", format="messages")
    ex = to_examples([{"messages": msgs}], spec, tok)[0]
    assert ex.prompt_turns == () and ex.response == "ciao<|im_end|>\n" and "assistant\n...<|im_end|>" in ex.prompt
    assert "1 multi-turn rows" in caplog.text and "last assistant turn only" in caplog.text
    assert answer_problem([{"messages": msgs}], spec) is None
    assert "does not end with an assistant turn" in str(answer_problem([{"messages": msgs[:3]}], spec))


@pytest.mark.parametrize(
    ("rows", "plain"),
    [
        ([{"q": f"q{i}", "a": str(i), "n": i, "ok": i % 2 == 0, "note": None} for i in range(30)], True),
        ([{"q": f"q{i}", "a": "2021-03-05"} for i in range(30)], True),  # date-like strings: kept as written
        ([{"q": f"q{i}", "x": i if i % 2 else i + 0.5} for i in range(30)], True),  # int/float: as written
        ([{"q": f"q{i}", **({"x": "y"} if i else {})} for i in range(30)], False),  # a key missing in a row
        ([{"q": f"q{i}", "m": [{"role": "user", "content": "hi"}]} for i in range(30)], False),  # nested
    ],
    ids=["scalars", "dates", "mixed-numbers", "missing-key", "nested"],
)
@pytest.mark.parametrize("split", ["train", "train[:10]", "train[20:]", "train[5:25]", "train[:50]", "train[:50%]"])
def test_rows_read_without_datasets_equal_the_datasets_rows(
    rows: list[dict[str, object]], plain: bool, split: str, tmp_path: Path
) -> None:
    """rows_for_reading skips the datasets import only where the rows come out exactly as load_rows gives them."""
    from olive_ext.data.load import rows_for_reading

    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = DatasetSpec(name="json", data_files=str(path), split=split, max_samples=12)
    fast, reference = rows_for_reading(spec), load_rows(spec)
    assert [dict(r) for r in fast] == [dict(r) for r in reference]
    within = split in ("train", "train[:10]", "train[20:]", "train[5:25]")
    assert isinstance(fast, list) == (plain and within)


def test_template_columns_holding_lists_or_objects_are_refused_numbers_and_gaps_are_text() -> None:
    """Their Python spelling ("{'label': 'sad'}") was trained on as the answer without a word."""
    spec = DatasetSpec(name="json", data_files="x", text_template="P: {phrase}\nT: {tone}")
    ok = to_examples([{"phrase": 12345, "tone": "sad"}, {"phrase": None, "tone": True}], spec)
    assert [(e.prompt, e.reference) for e in ok] == [("P: 12345\nT: ", "sad"), ("P: \nT: ", "True")]
    for bad, said in [({"label": "sad"}, "holds an object"), (["a", "b"], "holds a list")]:
        with pytest.raises(UserInputError, match=f"row 1: column 'tone' {said}"):
            to_examples([{"phrase": "a", "tone": "joyful"}, {"phrase": "b", "tone": bad}], spec)


def test_a_template_naming_no_column_is_refused() -> None:
    """It trained every row as the same constant text without a word (auto-opt refused it; finetune did not)."""
    spec = DatasetSpec(name="json", data_files="x", text_template="constant text")
    with pytest.raises(UserInputError, match="names no column: every row would be the same text"):
        to_examples([{"phrase": "a", "tone": "joyful"}], spec)


def test_data_files_globs_expand_and_a_comma_in_a_file_name_is_kept(tmp_path: Path) -> None:
    """`--data_files 'd/*.jsonl'` (the datasets library takes globs) was "does not exist"; a file named
    'tone,v2.jsonl' was split at the comma."""
    from olive_ext.data.spec import DataOptions

    for i in (2, 1):
        (tmp_path / f"part{i}.jsonl").write_text(json.dumps({"q": f"q{i}", "a": "x"}) + "\n")
    spec = DatasetSpec(name="json", data_files=str(tmp_path / "part*.jsonl"), text_template="{q} {a}")
    assert spec.data_files == [str(tmp_path / "part1.jsonl"), str(tmp_path / "part2.jsonl")]
    assert [r["q"] for r in load_rows(spec)] == ["q1", "q2"]
    nothing = DatasetSpec(name="json", data_files=str(tmp_path / "none*.jsonl"), text_template="{q} {a}")
    with pytest.raises(UserInputError, match="matches no file"):
        load_rows(nothing)
    comma = tmp_path / "tone,v2.jsonl"
    comma.write_text(json.dumps({"q": "q", "a": "x"}) + "\n")
    assert DataOptions(data_files=str(comma)).file_list() == [str(comma)]
    assert DataOptions(data_files=f"{tmp_path / 'part1.jsonl'},{tmp_path / 'part2.jsonl'}").file_list() == [
        str(tmp_path / "part1.jsonl"), str(tmp_path / "part2.jsonl")]


def test_a_utf16_or_parquet_file_read_as_text_gets_the_hint_that_fixes_it(tmp_path: Path) -> None:
    """Both got `iconv -f latin1`, which garbles them."""
    from olive_ext.data.load import check_data_file

    utf16 = tmp_path / "rows.jsonl"
    utf16.write_text(json.dumps({"q": "é", "a": "x"}) + "\n", encoding="utf-16")
    with pytest.raises(UserInputError) as info:
        check_data_file(utf16, "json")
    assert "iconv -f utf-16 -t utf-8" in (info.value.hint or "")
    parquet = tmp_path / "rows.parquet"
    parquet.write_bytes(b"PAR1\x15\x04\xff\xfe" + bytes(range(128, 256)) + b"PAR1")
    with pytest.raises(UserInputError, match="is a Parquet file, read here as json") as info:
        check_data_file(parquet, "json")
    assert info.value.hint == "pass -d parquet"


def test_csv_cells_are_read_as_the_text_the_file_holds(tmp_path: Path) -> None:
    """pandas read "02134" as 2134, "3.10" as 3.1, "NA"/"None"/"null" as missing, and a column with one empty cell
    as floats ("4" -> "4.0"): exact match then compared the model's answer with text the user never wrote."""
    data = tmp_path / "answers.csv"
    rows = 'q,a\n2+2,4\nzip,02134\npi,3.10\nsodium,NA\nnothing,None\nquoted,"x, y"\nblank,\n'
    data.write_text(rows, encoding="utf-8")
    spec = DatasetSpec(name="csv", data_files=str(data), text_template="Q: {q}\nA: {a}")
    assert [e.reference for e in load_examples(spec)] == ["4", "02134", "3.10", "NA", "None", "x, y", ""]


def test_a_text_field_with_a_response_field_is_a_prompt_and_its_answer() -> None:
    """`--text_field text --response_field label` dropped the label: a classifier's auto-opt failed after every
    candidate was built ("classification accuracy needs a label column")."""
    from olive_ext.data import answer_problem

    rows = [{"text": "a fine day", "label": "positive"}, {"text": "rain again", "label": "negative"}]
    spec = DatasetSpec(name="json", data_files="x.jsonl", text_field="text", response_field="label")
    examples = to_examples(rows, spec)
    assert [(e.prompt, e.reference) for e in examples] == [("a fine day", "positive"), ("rain again", "negative")]
    assert answer_problem(rows, spec) is None
    with pytest.raises(UserInputError, match="--response_field names column 'labels'"):
        to_examples(rows, spec.model_copy(update={"response_field": "labels"}))


def test_a_local_file_given_as_the_dataset_name_is_recorded_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`finetune -d data/rows.jsonl` wrote "name": "data/rows.jsonl" into model_config.json: auto-opt run from
    another folder scored that folder's data/rows.jsonl (or failed) without a word."""
    from olive_ext.workflows.finetune import portable_spec

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rows.jsonl").write_text('{"q": "a", "a": "b"}\n')
    monkeypatch.chdir(tmp_path)
    assert portable_spec(DatasetSpec(name="data/rows.jsonl"))["name"] == str(tmp_path / "data" / "rows.jsonl")
    assert portable_spec(DatasetSpec(name="data"))["name"] == str(tmp_path / "data")  # a folder of files
    assert portable_spec(DatasetSpec(name="org/hub-set"))["name"] == "org/hub-set"
    assert portable_spec(DatasetSpec(name="json", data_files="data/rows.jsonl"))["name"] == "json"


@pytest.mark.parametrize("shape", ["lines", "lines with a byte-order mark", "array"])
def test_json_values_are_read_as_the_file_writes_them(tmp_path: Path, shape: str) -> None:
    """pyarrow read 1 beside 2.5 as "1.0", true as "True", and (with a byte-order mark, or in a JSON array) a date
    as "2021-03-01 00:00:00": the model was trained, and exact match scored, on text the file does not hold."""
    rows = [{"q": "one", "a": 1}, {"q": "half", "a": 2.50}, {"q": "yes", "a": True}, {"q": "day", "a": "2021-03-01"},
            {"q": "tiny", "a": 1e-5}]  # fmt: skip
    text = json.dumps(rows) if shape == "array" else "".join(json.dumps(r) + "\n" for r in rows)
    text = text.replace("2.5", "2.50")  # as a person writes it
    path = tmp_path / ("d.json" if shape == "array" else "d.jsonl")
    path.write_text(("\ufeff" if "mark" in shape else "") + text, encoding="utf-8")
    spec = DatasetSpec(name="json", data_files=str(path), text_template="Q: {q}\nA: {a}")
    assert [e.reference for e in load_examples(spec)] == ["1", "2.50", "true", "2021-03-01", "1e-05"]


def test_a_chat_that_opens_with_the_assistant_trains_its_later_answers(tiny_llama: Path) -> None:
    """One such row ended the run: "ValueError: Cannot apply chat template to an empty conversation" (a traceback
    with --dry_run), naming no row. The opening turn answers nothing: it is context."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    msgs = [{"role": "assistant", "content": "hello"}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "yes"}]  # fmt: skip
    spec = DatasetSpec(name="json", data_files="x", format="messages")
    ex = to_examples([{"messages": msgs}], spec, tok)[0]
    assert ex.reference == "yes" and "hello" in ex.prompt and ex.response.startswith("yes")


def test_compressed_data_files_are_read_and_checked_inside(tmp_path: Path) -> None:
    """A .jsonl.gz, which the datasets library reads, was refused as "not UTF-8 text (byte 0x8b)" with a hint to
    run iconv on it."""
    import gzip

    from olive_ext.data.load import check_data_files, first_row_columns

    rows = gzip.compress(b'{"q": "one", "a": "1"}\n{"q": "two", "a": "2"}\n')
    (tmp_path / "d.jsonl.gz").write_bytes(rows)
    (tmp_path / "d.csv.gz").write_bytes(gzip.compress(b"q,a\none,01\n"))
    for name, builder in (("d.jsonl.gz", "json"), ("d.csv.gz", "csv")):
        spec = DatasetSpec(name=builder, data_files=str(tmp_path / name), text_template="Q: {q}\nA: {a}")
        check_data_files(spec)
        assert first_row_columns(spec) == ["q", "a"]
        assert load_examples(spec)[0].reference in {"1", "01"}
    (tmp_path / "cut.jsonl.gz").write_bytes(rows[:20])
    with pytest.raises(UserInputError, match="is cut short"):
        check_data_files(DatasetSpec(name="json", data_files=str(tmp_path / "cut.jsonl.gz")))


def test_prompts_are_encoded_alike_for_training_and_scoring_when_the_tokenizer_appends_eos(
    tiny_llama: Path, tmp_path: Path
) -> None:
    """A tokenizer whose post-processor adds BOS and EOS (`add_eos_token`, as some Llama fine-tunes ship): training
    encoded a prompt as BOS + text, the evaluator and parity check as BOS + text + EOS, so the model was scored on
    prompts that end the sequence before the answer."""
    import shutil

    from transformers import AutoTokenizer

    from olive_ext.data.formats import encode_prompt
    from olive_ext.train.features import PromptEncoder

    folder = tmp_path / "tok"
    shutil.copytree(tiny_llama, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    spec = json.loads((folder / "tokenizer.json").read_text())
    tok = AutoTokenizer.from_pretrained(folder)
    bos, eos = "<|endoftext|>", tok.eos_token
    ids = {t: tok.convert_tokens_to_ids(t) for t in (bos, eos)}
    spec["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": eos, "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {t: {"id": t, "ids": [i], "tokens": [t]} for t, i in ids.items()},
    }  # fmt: skip
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "bos_token": bos}))
    tok = AutoTokenizer.from_pretrained(folder)
    assert tok("hi there")["input_ids"][-1] == ids[eos]  # the tokenizer does append EOS
    prompt = "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n"
    trained = PromptEncoder(tok).prompt(prompt)
    assert trained[0] == ids[bos] and ids[eos] not in trained[-1:]
    assert encode_prompt(tok, prompt) == trained
    assert encode_prompt(tok, bos + prompt) == trained  # a prompt already holding its BOS gets no second one


@pytest.mark.parametrize("indent", [None, 2])
def test_rows_under_a_key_of_one_json_document_get_a_hint(tmp_path: Path, indent: int | None) -> None:
    """{"version": 1, "data": [...]} read as one row with columns version, data: the error listed those two and
    said only that a template's names must match the data's columns."""
    from olive_ext.data.formats import check_named_columns, require_answers

    data = tmp_path / "rows.json"
    rows = [{"prompt": "hi", "answer": "there"}, {"prompt": "yo", "answer": "man"}]
    data.write_text(json.dumps({"version": 1, "data": rows}, indent=indent))
    spec = DatasetSpec(name="json", data_files=str(data), text_template="{prompt} {answer}")
    checks = [lambda: require_answers(spec, "exact_match"), lambda: load_examples(spec)]
    if indent is None:  # a document over several lines has no first-row columns to check cheaply before work
        checks.append(lambda: check_named_columns(spec))
    for check in checks:
        with pytest.raises(UserInputError) as e:
            check()
        assert "which the data lacks" in e.value.message
        assert "the list under 'data' (2 rows, with columns 'prompt', 'answer')" in (e.value.hint or ""), e.value


def test_a_tools_column_that_is_not_in_the_prompt_is_said(tiny_llama: Path, caplog: pytest.LogCaptureFixture) -> None:
    """LLaMA-Factory's ShareGPT rows carry the tool descriptions in a `tools` column: dropped without a word."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    row = {"conversations": [{"from": "human", "value": "weather in Paris?"},
                             {"from": "gpt", "value": "sunny"}],
           "tools": json.dumps([{"name": "get_weather", "description": "the weather of a city"}])}  # fmt: skip
    spec = DatasetSpec(name="json", data_files="x", format="messages", messages_field="conversations")
    with caplog.at_level("WARNING", logger="olive_ext"):
        to_examples([row, {**row, "tools": ""}], spec, tok)
    assert "1 row holds a 'tools' column" in caplog.text


# Qwen2.5's way of putting tools into the system turn (shortened): a template that takes `tools`
_TOOLS_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\n# Tools\n<tools>{% for tool in tools %}\n{{ tool | tojson }}{% endfor %}"
    "\n</tools><|im_end|>\n{%- endif %}"
    "{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}"
)


def test_a_tools_column_is_rendered_by_a_template_that_takes_tools(
    tiny_llama: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The tools column was never put into the prompt, even for a model whose chat template renders tools (Qwen2.5,
    Llama 3.1): a function-calling fine-tune learnt calls to tools it was never shown."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    tok.chat_template = _TOOLS_TEMPLATE
    weather = {"name": "get_weather", "description": "the weather of a city",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}  # fmt: skip
    call = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
    row = {"conversations": [{"from": "human", "value": "weather in Paris?"}, {"from": "function_call", "value": call},
                             {"from": "observation", "value": "sunny"}, {"from": "gpt", "value": "It is sunny."}],
           "tools": json.dumps([weather])}  # fmt: skip
    spec = DatasetSpec(name="json", data_files="x", format="messages", messages_field="conversations")
    with caplog.at_level("WARNING", logger="olive_ext"):
        with_tools, without = to_examples([row, {**row, "tools": ""}], spec, tok)
    assert "tools" not in caplog.text
    schema = {"type": "function", "function": weather}  # transformers' form of a tool (get_json_schema's)
    expected = tok.apply_chat_template([{"role": "user", "content": "weather in Paris?"}], tools=[schema],
                                       tokenize=False)  # fmt: skip
    assert with_tools.prompt.startswith(expected) and '"name": "get_weather"' in with_tools.prompt
    assert "<tools>" not in without.prompt and with_tools.response == without.response
    assert with_tools.response.strip() == "It is sunny.<|im_end|>"
    with pytest.raises(UserInputError, match="row 0: column 'tools' is not JSON"):
        to_examples([{**row, "tools": "get_weather(city)"}], spec, tok)


def test_tool_calls_a_template_does_not_render_are_not_trained_as_empty_answers(
    tiny_llama: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """OpenAI-form rows whose assistant turn holds `tool_calls` (content "") on a template without tool calls: the
    call vanished and the empty turn was trained as the answer, without a word."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    call = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    calling = {"messages": [{"role": "user", "content": "weather in Paris?"},
                            {"role": "assistant", "content": "", "tool_calls": [call]},
                            {"role": "tool", "content": "sunny"}, {"role": "assistant", "content": "It is sunny."}]}
    plain = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}  # fmt: skip
    spec = DatasetSpec(name="json", data_files="x", format="messages", messages_field="messages")
    with caplog.at_level("WARNING", logger="olive_ext"):
        examples = to_examples([calling, plain], spec, tok)
    assert len(examples) == 1 and examples[0].response.startswith("hello")
    assert "1 of 2 rows of 'messages' hold assistant 'tool_calls' (first: row 0)" in caplog.text
    with pytest.raises(UserInputError, match="does not render") as e:
        to_examples([calling, calling], spec, tok)
    assert "Qwen2.5" in (e.value.hint or "")
    tok.chat_template = _TOOLS_TEMPLATE.replace(
        "{{ m.content }}", "{{ m.content }}{% if m.tool_calls %}{{ m.tool_calls | tojson }}{% endif %}")
    assert '"get_weather"' in to_examples([calling, plain], spec, tok)[0].text  # a template that renders them


def test_ready_text_rows_train_on_the_answer_after_the_response_template(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unsloth renders chat rows into a `text` column, then masks with train_on_responses_only (TRL's
    response_template): olive-ext trained such rows whole, the user's turns included, with no way to say where the
    answer starts."""
    from transformers import AutoTokenizer

    from olive_ext.cli import main
    from olive_ext.train.features import IGNORE, PromptEncoder, tokenize

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    turn = "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n{a}<|im_end|>\n"
    text = turn.format(q="hi", a="hello") + turn.format(q="capital of france?", a="paris")
    spec = DatasetSpec(name="json", data_files="x", format="text", text_field="text",
                       response_template="<|im_start|>assistant\n")  # fmt: skip
    ex = to_examples([{"text": text}, {"text": "no marker here"}], spec, tok)[0]
    assert ex.prompt == text[: text.rindex("paris")] and ex.reference == "paris" and ex.answer_end == "<|im_end|>"
    row = tokenize([ex], PromptEncoder(tok), 128).rows[0]
    trained = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != IGNORE]
    # every answer and its end of turn, nothing of the user's: Unsloth's train_on_responses_only trains each
    # assistant turn, and so do olive-ext's chat rows (only the last answer was trained)
    assert tok.decode(trained) == "hello<|im_end|>paris<|im_end|>"
    with pytest.raises(UserInputError, match="hold no --response_template"):
        to_examples([{"text": "no marker"}, {"text": "none"}], spec, tok)
    data = tmp_path / "text.jsonl"
    data.write_text("".join(json.dumps({"text": text}) + "\n" for _ in range(4)))
    assert main(["finetune", "-m", str(tiny_llama), "--data_files", str(data), "--text_field", "text",
                 "--response_template", "<|im_start|>assistant\\n", "-o", str(tmp_path / "o"), "--dry_run"]) == 0
    import yaml

    recorded = yaml.safe_load(capsys.readouterr().out)["data"]["train"]["response_template"]
    assert recorded == "<|im_start|>assistant\n"  # \n typed becomes a newline, and the recipe records it


def test_columns_are_those_of_the_first_rows_together(tmp_path: Path) -> None:
    """A first row without the answer column made the check before work say the data lacks it ("it has: text, q")
    though the other rows hold it; the same rows later in the file were read as empty answers."""
    import json

    from olive_ext.data.formats import check_named_columns
    from olive_ext.data.load import first_row_columns

    path = tmp_path / "rows.jsonl"
    rows = [{"q": "x"}] + [{"q": f"q{i}", "a": f"a{i}"} for i in range(4)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    spec = DatasetSpec(name="json", data_files=str(path), text_template="Q: {q}\nA: {a}")
    assert first_row_columns(spec) == ["q", "a"]
    check_named_columns(spec)  # no error: the rows hold 'a'
    with pytest.raises(UserInputError, match="'b'"):
        check_named_columns(spec.model_copy(update={"text_template": "Q: {q}\nA: {b}"}))


def test_eval_rows_left_unscored_are_recorded_and_said_again_from_the_cache(
    tiny_llama: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows with an empty answer (or too long for the context) were warned of during the evaluation only: the
    reports did not say the accuracy left them out, and a rerun with the figures from the cache said nothing."""
    import olive_ext

    data = tmp_path / "eval.jsonl"
    rows = [{"q": "one", "a": "two"}, {"q": "three", "a": ""}, {"q": "five", "a": "six"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def recipe(out: str) -> dict:
        return {"input_model": {"path": str(tiny_llama)}, "passes": {},
                "data": {"eval": {"name": "json", "data_files": str(data), "text_template": "Q: {q}\nA: {a}"}},
                "evaluate": {"metrics": ["exact_match"], "data": "eval", "max_new_tokens": 4},
                "output": {"path": str(tmp_path / out)}, "cache_dir": str(tmp_path / "cache")}  # fmt: skip

    said = "1 of 3 eval rows not scored (1 with an empty answer)"
    for out in ("first", "cached"):
        caplog.clear()
        with caplog.at_level("WARNING", logger="olive_ext"):
            result = olive_ext.run(recipe(out))
        assert f"exact_match: {said}" in result.notes
        assert f"Note: exact_match: {said}" in (tmp_path / out / "report.md").read_text()
        assert f"exact_match: {said}" in json.loads((tmp_path / out / "candidates.json").read_text())["notes"]
        assert said in caplog.text or "1 of 3 eval rows have an empty answer" in caplog.text, out
    assert result.results[0].eval_cache_hit and said in caplog.text


def test_trl_prompt_completion_rows_train_on_the_completion_and_unused_labels_are_said(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """TRL's prompt/completion rows were refused ("cannot tell how to turn rows into text"); a CSV of text,label
    trained on the text alone, the label never seen, without a word."""
    import logging

    from transformers import AutoTokenizer

    from olive_ext.cli import main
    from olive_ext.data.formats import _warn_unused_answers
    from olive_ext.train.features import IGNORE, PromptEncoder, tokenize

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    spec = DatasetSpec(name="json", data_files="x")
    labelled = [{"text": "great movie", "label": "positive"}, {"text": "awful film", "label": "negative"}]
    _warn_unused_answers.cache_clear()  # said once per process
    with caplog.at_level(logging.WARNING, logger="olive_ext"):
        whole = to_examples(labelled, spec, tok)
    assert [e.text for e in whole] == ["great movie", "awful film"]
    assert "column 'label' is not used: to train it as the answer, give --response_field label" in caplog.text
    ex = to_examples([{"prompt": "The capital of France is", "completion": " Paris."}], spec, tok)[0]
    assert ex.prompt == "The capital of France is" and ex.reference == " Paris."
    row = tokenize([ex], PromptEncoder(tok), 64).rows[0]
    trained = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != IGNORE]
    assert tok.decode(trained).startswith(" Paris.")
    data = tmp_path / "pc.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"q{i}", "completion": f" a{i}"}) + "\n" for i in range(4)))
    assert main(["finetune", "-m", str(tiny_llama), "--data_files", str(data), "--eval_split", "train[2:]",
                 "-o", str(tmp_path / "o"), "--dry_run"]) == 0  # fmt: skip


def test_mixed_formats_and_spaced_csv_headers_are_named(tmp_path: Path) -> None:
    """A CSV beside JSON lines in --data_files was "not JSON ... for CSV use -d csv" (which then broke the JSON
    file) or a KeyError in the CSV reader; a CSV header 'question, answer' listed "question,  answer"."""
    from olive_ext.data import load_rows
    from olive_ext.data.spec import DataOptions

    (tmp_path / "a.csv").write_text("q,a\n1,2\n")
    (tmp_path / "b.jsonl").write_text('{"q": "1", "a": "2"}\n')
    for files in (["a.csv", "b.jsonl"], ["b.jsonl", "a.csv"]):
        spec = DataOptions(data_files=[str(tmp_path / f) for f in files], text_template="{q}={a}").to_spec("train")
        with pytest.raises(UserInputError, match="--data_files mixes csv and json files"):
            load_rows(spec)
    (tmp_path / "spaced.csv").write_text("question, answer\nq1, a1\n")
    spec = DataOptions(data_files=str(tmp_path / "spaced.csv"), text_template="{question} {answer}").to_spec("train")
    with pytest.raises(UserInputError) as e:
        to_examples(load_rows(spec), spec)
    assert "it has: question, ' answer'" in e.value.message
    assert "column ' answer' has spaces around its name" in (e.value.hint or "")


def test_an_assistant_message_of_weight_0_is_not_trained_on(tiny_llama: Path, tmp_path: Path) -> None:
    """OpenAI's fine-tuning format: "weight": 0 on an assistant message means do not train on it; it was trained
    on (read from a file the weight is the text "0")."""
    from transformers import AutoTokenizer

    from olive_ext.data import load_rows
    from olive_ext.data.spec import DataOptions
    from olive_ext.train.features import IGNORE, PromptEncoder, tokenize

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    turns = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad", "weight": 0},
             {"role": "user", "content": "again"}, {"role": "assistant", "content": "mid", "weight": 1},
             {"role": "user", "content": "more"}, {"role": "assistant", "content": "good", "weight": 1}]  # fmt: skip
    data = tmp_path / "w.jsonl"
    data.write_text(json.dumps({"messages": turns}) + "\n")
    spec = DataOptions(data_files=str(data)).to_spec("train")
    for rows in ([{"messages": turns}], load_rows(spec)):
        row = tokenize(to_examples(rows, spec, tok), PromptEncoder(tok), 128).rows[0]
        trained = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != IGNORE]
        assert tok.decode(trained) == "mid<|im_end|>\ngood<|im_end|>\n", tok.decode(trained)


def test_sharegpt_roles_in_any_case_json_array_columns_and_a_folder_as_data_files(
    tiny_llama: Path, tmp_path: Path
) -> None:
    """ShareGPT rows from "Human"/"GPT" were refused (role/content rows took capitalised roles); a JSON array's
    missing template column was found only after the model loaded; a folder in --data_files said only "name the
    file itself"."""
    from transformers import AutoTokenizer

    from olive_ext.data.formats import check_named_columns
    from olive_ext.data.load import check_data_files
    from olive_ext.data.spec import DataOptions

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    rows = [{"conversations": [{"from": "Human", "value": "hi"}, {"from": "GPT", "value": "hello"}]}]
    ex = to_examples(rows, DatasetSpec(name="json", data_files="x"), tok)[0]
    assert ex.reference == "hello" and "hi" in ex.prompt
    array = tmp_path / "rows.json"
    array.write_text(json.dumps([{"instruction": "a", "output": "b"}, {"instruction": "c", "output": "d"}], indent=1))
    spec = DataOptions(data_files=str(array), text_template="{instruction} {outptu}").to_spec("train")
    with pytest.raises(UserInputError, match="column 'outptu', which the data lacks; it has: instruction, output"):
        check_named_columns(spec)
    (tmp_path / "parts").mkdir()
    with pytest.raises(UserInputError) as e:
        check_data_files(DataOptions(data_files=str(tmp_path / "parts"), text_field="t").to_spec("train"))
    assert f"--data_files '{tmp_path / 'parts'}/*.jsonl'" in (e.value.hint or "")


def test_a_folder_of_csv_files_keeps_na_as_written(tmp_path: Path) -> None:
    """`-d FOLDER` of CSV files read "NA" as missing (trained and scored as an empty answer); `--data_files` of the
    same file kept it, as the README says cells are read."""
    from olive_ext.data import load_rows
    from olive_ext.data.spec import DataOptions

    (tmp_path / "csvdir").mkdir()
    (tmp_path / "csvdir" / "train.csv").write_text("q,a,n\nmissing,NA,02134\nnone,None,3.10\nzip,02134,7\n")
    spec = DataOptions(data_name=str(tmp_path / "csvdir"), text_template="{q}={a}").to_spec("train")
    rows = list(load_rows(spec))
    assert [r["a"] for r in rows] == ["NA", "None", "02134"] and [r["n"] for r in rows] == ["02134", "3.10", "7"]
