"""finetune's data flags on real files and the tiny Llama: repeated flags, file kinds, row shapes, values checked
before work (through --dry_run, which reads and tokenizes a few rows)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from olive_ext.cli import main

QA = "Q:{question}A:{answer}"


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    """Exit code and stderr (one line) of `olive-ext ARGV`."""
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own refusals
        code = int(e.code or 0)
    return code, capsys.readouterr().err.replace("\n", " ")


def _qa(path: Path, rows: range) -> Path:
    """A JSON-lines file of question/answer rows numbered ``rows``."""
    path.write_text("\n".join(json.dumps({"question": f"q {i}", "answer": f"a {i}"}) for i in rows))
    return path


def _dry(model: Path, out: Path, *flags: str) -> list[str]:
    return ["finetune", "-m", str(model), *flags, "--dry_run", "-o", str(out / "x")]


def test_repeated_data_files_are_all_read_and_other_repeated_flags_are_refused(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p1, p2 = _qa(tmp_path / "p1.jsonl", range(8)), _qa(tmp_path / "p2.jsonl", range(8, 16))
    for files in (["--data_files", str(p1), "--data_files", str(p2)], ["--data_files", str(p1), str(p2)],
                  ["--data_files", f"{p1},{p2}"]):  # fmt: skip
        code, err = _run(capsys, _dry(tiny_llama, tmp_path, "-d", "json", *files, "--text_template", QA))
        assert code == 0 and "first 16 rows read as template" in err, (files, err)  # was 8: p2's alone
    code, err = _run(capsys, _dry(tiny_llama, tmp_path, "-d", "json", "--data_files", str(p1), "--text_template", QA,
                                  "--train_split", "train[:4]", "--train_split", "train[4:]"))  # fmt: skip
    assert code == 2 and "--train_split given twice ('train[:4]', then 'train[4:]')" in err, err
    code, err = _run(capsys, _dry(tiny_llama, tmp_path, "-d", "json", "--data_files", str(p1), "--text_template", QA,
                                  "--warmup_steps", "1", "--warmup_steps", "2"))  # fmt: skip
    assert code == 2 and "--warmup_steps given twice ('1', then '2')" in err, err


def test_use_chat_template_on_alpaca_rows_needs_a_chat_template(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    notpl = tmp_path / "tiny-notpl"
    shutil.copytree(tiny_llama, notpl)
    (notpl / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((notpl / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (notpl / "tokenizer_config.json").write_text(json.dumps(config))
    alpaca = tmp_path / "alpaca.json"
    alpaca.write_text(json.dumps([{"instruction": f"Say {i}", "input": "", "output": f"w{i}"} for i in range(8)]))
    flags = ["-d", "json", "--data_files", str(alpaca)]
    code, err = _run(capsys, _dry(notpl, tmp_path, *flags, "--use_chat_template"))
    assert code == 2 and "--use_chat_template needs a tokenizer with a chat template; this model has none" in err, err
    code, err = _run(capsys, _dry(notpl, tmp_path, *flags))  # without the flag: alpaca's own prompt, as before
    assert code == 0 and "read as alpaca" in err, err


def test_a_file_given_to_d_is_answered_with_the_builder_and_data_files_that_read_it(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("line one\nline two\nline three\n")
    code, err = _run(capsys, _dry(tiny_llama, tmp_path, "-d", str(plain), "--text_field", "text"))
    assert code == 2 and f"hint: pass -d text --data_files {plain}" in err, err  # was: "Couldn't find any data file"
    code, err = _run(capsys, _dry(tiny_llama, tmp_path, "-d", "text", "--data_files", str(plain), "--text_field",
                                  "text"))  # fmt: skip
    assert code == 0 and "first 3 rows read as text" in err, err


def _parts(*texts: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": t} for t in texts]


def test_openai_content_parts_are_joined_and_non_text_parts_refused(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from olive_ext.data import load_examples, to_examples
    from olive_ext.data.formats import chat_messages
    from olive_ext.recipe.schema import DatasetSpec

    chat = tmp_path / "chat.jsonl"
    rows = [{"messages": [{"role": "user", "content": _parts(f"say {i}", "please")},
                          {"role": "assistant", "content": _parts(f"w{i}")}]} for i in range(8)]  # fmt: skip
    chat.write_text("\n".join(json.dumps(r) for r in rows))
    code, err = _run(capsys, _dry(tiny_llama, tmp_path, "-d", "json", "--data_files", str(chat), "--use_chat_template"))
    assert code == 0 and "first 8 rows read as messages" in err, err  # was: TypeError: can only concatenate str
    assert chat_messages(rows[0], "messages", 0)[0]["content"] == "say 0\nplease"
    spec = DatasetSpec(name="json", data_files=str(chat), format="messages")
    assert load_examples(spec, _tokenizer(tiny_llama))[0].response.startswith("w0")
    image = {"messages": [{"role": "user", "content": [*_parts("what is it?"), {"type": "image_url",
                                                                               "image_url": {"url": "x.png"}}]},
                          {"role": "assistant", "content": "a cat"}]}  # fmt: skip
    with pytest.raises(Exception, match=r"row 0, field 'messages', message 0: content part 1 is of type 'image_url'"):
        to_examples([image], spec, _tokenizer(tiny_llama))


def _tokenizer(model: Path) -> object:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model)


def test_enum_valued_training_arguments_are_checked_before_work(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _dry(tiny_llama, tmp_path, "-d", "json", "--data_files", str(_qa(tmp_path / "p.jsonl", range(8))),
                "--text_template", QA)  # fmt: skip
    code, err = _run(capsys, [*base, "--lr_scheduler_type", "cosin"])
    assert code == 2 and "--lr_scheduler_type 'cosin' is not one of its values; did you mean 'cosine'?" in err, err
    assert "valid: linear, cosine," in err
    code, err = _run(capsys, [*base, "--optim", "adamw_trch", "--save_strategy", "step"])
    assert code == 2 and "--optim 'adamw_trch'" in err and "--save_strategy 'step'" in err, err
    code, err = _run(capsys, [*base, "--lr_scheduler_type", "cosine", "--optim", "adamw_torch"])
    assert code == 0, err


def test_a_dataset_saved_with_save_to_disk_loads_as_split_train(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import datasets

    saved = tmp_path / "saved_ds"
    datasets.Dataset.from_list([{"question": f"q {i}", "answer": f"a {i}"} for i in range(8)]).save_to_disk(saved)
    code, err = _run(capsys, _dry(tiny_llama, tmp_path, "-d", str(saved), "--train_split", "train[:4]",
                                  "--text_template", QA))  # fmt: skip
    assert code == 0 and "training data (train[:4]): first 4 rows read as template" in err, err  # was: load_from_disk
    state = json.loads((saved / "state.json").read_text())
    state["_data_files"] = [{"filename": "../elsewhere.arrow"}]
    (saved / "state.json").write_text(json.dumps(state))
    code, err = _run(capsys, _dry(tiny_llama, tmp_path, "-d", str(saved), "--text_template", QA))
    assert code == 2 and "names data files outside the folder" in err, err


def test_a_data_file_named_twice_is_refused_not_read_twice(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--data_files a.jsonl a.jsonl` (or the file and a glob that holds it) read every row twice without a word."""
    p1 = _qa(tmp_path / "p1.jsonl", range(8))
    monkeypatch.chdir(tmp_path)
    for files in ([str(p1), str(p1)], [str(p1), "p1.jsonl"], [f"{p1},{p1}"]):
        code, err = _run(
            capsys, _dry(tiny_llama, tmp_path, "-d", "json", "--data_files", *files, "--text_template", QA)
        )
        assert (
            code == 2
            and "names p1.jsonl twice" in err.replace(str(tmp_path) + "/", "")
            and "rows would be read twice" in err
        ), (files, err)


def test_an_empty_or_huge_data_folder_is_refused_before_a_walk(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-d "" was an IndexError inside the datasets library; -d / walked into /proc to a PermissionError traceback
    and -d /tmp ran past 100 s: a folder of more than 10,000 entries is no dataset folder."""
    code, err = _run(capsys, ["auto-opt", "-m", str(tiny_llama), "-d", "", "--text_field", "x", "-o",
                              str(tmp_path / "out")])  # fmt: skip
    assert code == 2 and "is empty: give json/csv/parquet" in err, err
    big = tmp_path / "big"
    for i in range(101):
        sub = big / f"d{i}"
        sub.mkdir(parents=True)
        for j in range(100):
            (sub / f"{j}.csv").touch()
    code, err = _run(capsys, _dry(tiny_llama, tmp_path, "-d", str(big), "--text_field", "text"))
    assert code == 2 and "holds more than 10000 files and folders: it is no dataset folder" in err, err


def test_bf16_with_another_torch_dtype_is_refused(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--bf16 --torch_dtype float32 trained in bfloat16 without a word."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"q": f"q{i}", "a": f"a{i}"}) + "\n" for i in range(4)))
    base = ["finetune", "-m", str(tiny_llama), "-d", "json", "--data_files", str(rows), "--text_template",
            "Q: {q} A: {a}", "-o", str(tmp_path / "out"), "--dry_run"]  # fmt: skip
    code, err = _run(capsys, [*base, "--bf16", "--torch_dtype", "float32"])
    assert code == 2 and "--bf16 asks for bfloat16 and --torch_dtype for float32" in err, err
    code, err = _run(capsys, [*base, "--bf16", "--torch_dtype", "bfloat16"])
    assert "asks for" not in err, err  # agreeing flags are one ask


def test_finetune_adapter_and_checkpoint_paths_are_checked_before_work(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file, an empty or a missing --adapter_path, or a missing --resume_from_checkpoint folder, passed --dry_run
    and failed the run after the model loaded ("NotADirectoryError: .../file.txt/adapter_config.json")."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"q": f"q{i}", "a": f"a{i}"}) + "\n" for i in range(4)))
    (tmp_path / "empty").mkdir()
    base = ["finetune", "-m", str(tiny_llama), "-d", "json", "--data_files", str(rows), "--text_template",
            "Q: {q} A: {a}", "-o", str(tmp_path / "out"), "--dry_run"]  # fmt: skip
    for flag, value, said in (("--adapter_path", rows, "is not a peft adapter folder"),
                              ("--adapter_path", tmp_path / "empty", "is not a peft adapter folder"),
                              ("--adapter_path", tmp_path / "nope", "does not exist"),
                              ("--resume_from_checkpoint", tmp_path / "nope", "does not exist")):  # fmt: skip
        code, err = _run(capsys, [*base, flag, str(value)])
        assert code == 2 and f"{flag} {value} {said}" in err, err
