"""Reliability on tiny models: identical work gives identical fingerprints, a resumed fine-tune equals an
uninterrupted one, processes sharing a cache build a step once, and bad input is refused before any work
with one message, exit code 2 and nothing written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from olive_ext.recipe.schema import DatasetSpec

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = "Phrase: {phrase}\nTone: {tone}"


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLIVE_EXT_THREADS", "1")  # the tiny model's ops are too small to share between threads


@pytest.fixture(scope="module")
def tone_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 rows of a two-label task, phrases of different lengths (so length grouping has work to do)."""
    import random

    rng = random.Random(0)
    words = {"positive": ["great", "love", "happy", "fine"], "negative": ["terrible", "hate", "sad", "angry"]}
    path = tmp_path_factory.mktemp("data") / "tone.jsonl"
    with open(path, "w") as f:
        for _ in range(24):
            tone = rng.choice(sorted(words))
            phrase = " ".join(rng.choice(["the", "a", "cat", "dog"]) for _ in range(rng.randint(1, 6)))
            f.write(json.dumps({"phrase": f"{phrase} {rng.choice(words[tone])}", "tone": tone}) + "\n")
    return path


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}", "HF_HUB_OFFLINE": "1", **extra}


# ----------------------------------------------------------------------------------------------- determinism


def _adapter_weights(adapter_dir: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    return load_file(str(adapter_dir / "adapter_model.safetensors"))


@pytest.mark.parametrize("group_by_length", [True, False])
def test_a_fine_tune_resumed_in_its_second_epoch_equals_the_uninterrupted_run(
    group_by_length: bool, tiny_llama: Path, tone_file: Path, tmp_path: Path
) -> None:
    """Exact equality: same data order, same RNG state (dropout), same optimizer state, one thread."""
    import torch
    from transformers import TrainerCallback

    from olive_ext.train.options import FinetuneOptions
    from olive_ext.train.run import TrainingInterrupted, finetune

    class CtrlCInEpoch2(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            if state.global_step == 8:  # 6 steps an epoch: step 9, in flight, finishes and is checkpointed
                os.kill(os.getpid(), signal.SIGINT)

    # 24 rows, 4 a step: 6 steps an epoch, 3 epochs; lora_dropout on, so the RNG state matters too
    opts = FinetuneOptions(max_steps=18, learning_rate=3e-3, lora_dropout=0.1, torch_dtype="float32",
                           group_by_length=group_by_length)  # fmt: skip
    spec = DatasetSpec(name="json", data_files=str(tone_file), split="train", text_template=TEMPLATE)
    whole = finetune(str(tiny_llama), spec, None, opts, tmp_path / "whole", checkpoint_dir=tmp_path / "ck1",
                     cache_root=tmp_path)  # fmt: skip
    with pytest.raises(TrainingInterrupted):
        finetune(str(tiny_llama), spec, None, opts, tmp_path / "a", checkpoint_dir=tmp_path / "ck2",
                 cache_root=tmp_path, callbacks=[CtrlCInEpoch2()])  # fmt: skip
    assert (tmp_path / "ck2" / "checkpoint-9").is_dir()  # in the second epoch
    resumed = finetune(str(tiny_llama), spec, None, opts.model_copy(update={"resume_from_checkpoint": "true"}),
                       tmp_path / "b", checkpoint_dir=tmp_path / "ck2", cache_root=tmp_path)  # fmt: skip
    assert resumed.metrics["steps_this_run"] == 9
    a, b = _adapter_weights(whole.adapter_dir), _adapter_weights(resumed.adapter_dir)
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)  # type: ignore[operator]
    assert worst == 0.0, f"resumed weights differ from the uninterrupted run by up to {worst}"
    assert all(torch.equal(a[k], b[k]) for k in a)  # type: ignore[arg-type]


def test_identical_fine_tunes_give_identical_fingerprints_at_every_step(
    tiny_llama: Path, tone_file: Path, tmp_path: Path
) -> None:
    """Two processes with different hash seeds (peft writes target_modules from a set) and separate caches."""
    procs = {}
    for run in ("1", "2"):  # side by side: each process spends most of its time importing torch
        out, cache = tmp_path / f"out{run}", tmp_path / f"cache{run}"
        argv = ["finetune", "-m", str(tiny_llama), "-d", "json", "--data_files", str(tone_file),
                "--text_template", TEMPLATE, "--max_steps", "2", "--torch_dtype", "float32", "--merge",
                "-o", str(out), "--cache_dir", str(cache), "--log_level", "3"]  # fmt: skip
        procs[out] = subprocess.Popen([sys.executable, "-m", "olive_ext", *argv], env=_env(PYTHONHASHSEED=run),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    lineages = []
    for out, proc in procs.items():
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-2000:]
        lineages.append(json.loads((out / "lineage.json").read_text()))
        config = json.loads((out / "adapter" / "adapter_config.json").read_text())
        assert config["target_modules"] == sorted(config["target_modules"])
    first, second = ([(r["step"], r["cache_key"], r["output"]) for r in lin] for lin in lineages)
    assert [s for s, _, _ in first] == ["finetune", "merge"]
    assert first == second  # every step's key and output fingerprint


# ----------------------------------------------------------------------------------------------- concurrency


def test_two_processes_building_the_same_step_build_it_once_and_agree(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"tiny model")
    cache, marker, go = tmp_path / "cache", tmp_path / "runs.txt", tmp_path / "go"
    recipe = {
        "input_model": {"path": str(model)},
        "passes": {"t": {"type": "toy_transform", "label": "same", "marker": str(marker), "wait_for": str(go)}},
        "cache_dir": str(cache),
    }
    script = (
        "import json, sys, toy_passes\n"
        "from olive_ext.engine.run import execute\n"
        "from olive_ext.recipe import parse_recipe\n"
        "result = execute(parse_recipe(json.loads(sys.argv[1])))\n"
        "rec = result.chosen.records[0]\n"
        "print(json.dumps({'output': rec.output, 'hit': rec.cache_hit, 'path': rec.output_path}))\n"
    )
    procs = []
    for _ in range(2):
        procs.append(subprocess.Popen([sys.executable, "-c", script, json.dumps(recipe)], env=_env(),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))  # fmt: skip
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:  # the first one is inside the pass
            time.sleep(0.05)
    time.sleep(1.0)  # the second has reached the step (it waits on the lock, or, unfixed, runs the pass too)
    go.write_text("")
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr[-2000:]
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    assert marker.read_text().splitlines() == ["same"], "the pass ran more than once"
    assert results[0]["output"] == results[1]["output"] and results[0]["path"] == results[1]["path"]
    assert sorted(r["hit"] for r in results) == [False, True]
    assert len(list((cache / "entries").iterdir())) == 1
    assert not list((cache / "tmp").iterdir())


# ----------------------------------------------------------------------------------------------- bad input


def _cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    """Run the CLI in this process (the checks come before any heavy import); the cache is the test's own."""
    from olive_ext.cli import main

    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err


def _one_message(err: str) -> str:
    """The error line (a hint line may follow); no traceback, no log lines before it."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error: "), err
    assert len(lines) <= 2 and all(line.startswith("  hint: ") for line in lines[1:]), err
    return " ".join(lines)


def _snapshot(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[Path]:
    """A folder this process cannot create anything in (chmod for users; the immutable flag for root)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
    elif subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root where `chattr +i` is not allowed: no folder is unwritable to this process")
    try:
        yield folder
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
        folder.chmod(0o755)


@pytest.fixture
def bad_data(tmp_path: Path) -> dict[str, Path]:
    files = {"empty": b"", "blank": b"\n  \n", "latin1": '{"phrase": "café", "tone": "x"}\n'.encode("latin-1"),
             "binary": bytes(range(256)) * 4, "notjson": b"phrase,tone\nhello,x\n",
             "badline": b'{"phrase": "a", "tone": "x"}\n{"phrase": "b", tone: "y"}\n',
             "columns": b'{"question": "a", "answer": "x"}\n'}  # fmt: skip
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / f"{name}.jsonl"
        paths[name].write_bytes(data)
    paths["missing"] = tmp_path / "missing.jsonl"
    return paths


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("empty", "is empty"),
        ("blank", "is empty"),
        ("latin1", "is not UTF-8"),
        ("binary", "is not UTF-8"),
        ("notjson", "not JSON"),
        ("missing", "does not exist"),
        ("badline", "line 2 is not valid JSON"),
        ("columns", "text template names columns 'phrase', 'tone', which the data lacks"),
    ],
)
@pytest.mark.parametrize("command", ["finetune", "auto-opt"])
def test_bad_data_files_are_refused_before_any_work(
    command: str,
    case: str,
    expected: str,
    bad_data: dict[str, Path],
    tiny_llama: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = bad_data[case]
    split = "--train_split" if command == "finetune" else "--eval_split"
    argv = [command, "-m", str(tiny_llama), "-d", "json", "--data_files", str(data), split, "train",
            "--text_template", TEMPLATE, "-o", str(tmp_path / "out")]  # fmt: skip
    before = _snapshot(tmp_path)
    started = time.monotonic()
    code, err = _cli(capsys, argv)
    message = _one_message(err)
    assert code == 2, err
    assert str(data) in message and expected in message, message
    assert err.count(expected) == 1, err  # said once, not once per candidate
    assert _snapshot(tmp_path) == before  # no output, no cache
    assert time.monotonic() - started < 60


def test_training_rows_with_empty_answers_and_an_empty_slice_say_what_to_do(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every answer empty: refused (the loss would teach the model to say nothing; it trained silently). A slice
    past the end of the data: the error gives the split's row count."""
    data = tmp_path / "rows.jsonl"
    data.write_text('{"phrase": "a", "tone": ""}\n{"phrase": "b", "tone": " "}\n')
    argv = ["finetune", "-m", str(tiny_llama), "--data_files", str(data), "--text_template", TEMPLATE,
            "--max_steps", "1", "-o", str(tmp_path / "out")]  # fmt: skip
    code, err = _cli(capsys, argv)  # found when the step reads its rows, before the model loads
    assert code == 2 and "Traceback" not in err and err.count("every row's answer is empty") == 1, err
    assert not (tmp_path / "out").exists()
    code, err = _cli(capsys, [*argv, "--train_split", "train[5:10]"])
    assert code == 2 and "split 'train[5:10]' of dataset 'json' is empty" in err, err
    assert "split 'train' has 2 rows" in err, err
    # eval rows with an empty answer are not scored, as auto-opt leaves them out (finetune said "of 5", auto-opt 3)
    data.write_text("".join(f'{{"phrase": "{p}", "tone": "{t}"}}\n' for p, t in
                            [("a", "joyful"), ("b", ""), ("c", "sad"), ("d", " "), ("e", "sad")]))  # fmt: skip
    code, err = _cli(capsys, [*argv, "--eval_split", "train[1:]", "--overwrite"])
    assert code == 0 and "(2 eval examples," in err, err


def test_infinite_and_nan_numbers_are_refused_before_any_work(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--learning_rate inf` passed the "greater than 0" check and trained an adapter of NaNs (exit 0); a recipe's
    `.inf` constraint validated. Both are refused, naming the key."""
    data = tmp_path / "rows.jsonl"
    data.write_text('{"phrase": "a", "tone": "joyful"}\n')
    before = _snapshot(tmp_path)
    for flag, value in [("--learning_rate", "inf"), ("--learning_rate", "nan"), ("--lora_dropout", "nan")]:
        code, err = _cli(capsys, ["finetune", "-m", str(tiny_llama), "--data_files", str(data), "--text_template",
                                  TEMPLATE, "--max_steps", "1", flag, value, "-o", str(tmp_path / "out")])  # fmt: skip
        assert code == 2 and f"{flag.lstrip('-')}: Input should be a finite number" in err, (flag, value, err)
    assert _snapshot(tmp_path) == before
    # a finite learning rate far too high: NaN weights were saved and reported as a fine-tune (exit 0)
    argv = ["finetune", "-m", str(tiny_llama), "--data_files", str(data), "--text_template", TEMPLATE,
            "--max_steps", "3", "--learning_rate", "1e30", "-o", str(tmp_path / "out")]  # fmt: skip
    code, err = _cli(capsys, argv)
    assert code == 1 and "training diverged" in err and "lower --learning_rate (it was 1e+30)" in err, err
    assert not (tmp_path / "out" / "adapter").exists()
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"input_model: {{path: {tiny_llama}}}\npasses: {{b: {{type: model_builder}}}}\n"
                      "evaluate: {constraints: {max_size_mb: .inf}}\n")  # fmt: skip
    from olive_ext.cli import main

    code = main(["validate", str(recipe)])
    said = "".join(capsys.readouterr())
    assert code == 2 and "evaluate.constraints.max_size_mb: Input should be a finite number" in said, said


def test_training_rows_are_held_to_the_models_positions(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The tiny Llama has 512 positions and --max_seq_len defaults to 1024: rows of ~700 tokens trained past the
    positions the model has, without a word, and auto-opt then refused the same rows as longer than the context."""
    import json

    data = tmp_path / "long.jsonl"
    data.write_text("".join(json.dumps({"phrase": " ".join(["word"] * 700), "tone": "joyful"}) + "\n"
                            for _ in range(2)) + json.dumps({"phrase": "short", "tone": "sad"}) + "\n")  # fmt: skip
    out = tmp_path / "out"
    code, err = _cli(capsys, ["finetune", "-m", str(tiny_llama), "--data_files", str(data), "--text_template",
                              TEMPLATE, "--max_steps", "1", "-o", str(out)])  # fmt: skip
    assert code == 0, err
    assert "the model has 512 positions: --max_seq_len 1024 is cut to 512" in " ".join(err.split()), err
    metrics = json.loads((out / "adapter" / "train_metrics.json").read_text())
    assert metrics["options"]["max_seq_len"] == 512


def test_a_dry_run_finetune_says_what_the_run_would_fail_on(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`finetune --dry_run` passed, then the run failed after loading: a seed outside 0..2**32-1 ("Seed must be
    between 0 and 2**32 - 1"), a config.json whose model_type transformers does not know, or none. Said before any
    work, the model folder's path printed as written (rich turned "hf:m:" into an emoji)."""
    import json
    import shutil

    data = tmp_path / "rows.jsonl"
    data.write_text('{"phrase": "a", "tone": "joyful"}\n')
    bad = {"m": {"model_type": "superllama", "architectures": ["SuperLlamaForCausalLM"]}, "none": {"model_type": None}}
    for name, change in bad.items():
        model = shutil.copytree(tiny_llama, tmp_path / name)
        config = json.loads((model / "config.json").read_text())
        config.update(change)
        (model / "config.json").write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
    cases = [(str(tiny_llama), ["--seed", "-1"], "seed: Input should be greater than or equal to 0"),
             (str(tmp_path / "m"), [], f"hf:{tmp_path / 'm'}: its config.json's model_type 'superllama' is not one"),
             (str(tmp_path / "none"), [], "its config.json has no model_type")]  # fmt: skip
    for model_path, flags, said in cases:
        code, err = _cli(capsys, ["finetune", "-m", model_path, "--data_files", str(data), "--text_template", TEMPLATE,
                                  "--max_steps", "1", *flags, "-o", str(tmp_path / "out"), "--dry_run"])  # fmt: skip
        assert code == 2 and said in " ".join(err.split()), (model_path, flags, err)


def test_unwritable_output_and_cache_folders_are_refused_before_any_work(
    tiny_llama: Path, unwritable: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(tmp_path)
    argv = ["quantize", "-m", str(tiny_llama), "-o", str(unwritable / "q")]
    code, err = _cli(capsys, argv)
    assert code == 2 and "cannot be written" in _one_message(err) and str(unwritable / "q") in err, err
    code, err = _cli(capsys, ["quantize", "-m", str(tiny_llama), "-o", str(tmp_path / "q"), "--cache_dir",
                      str(unwritable / "cache")])  # fmt: skip
    assert code == 2 and "cache folder" in _one_message(err) and "--cache_dir" in err, err
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    code, err = _cli(capsys, ["quantize", "-m", str(tiny_llama), "-o", str(a_file / "q")])
    assert code == 2 and "not a folder" in _one_message(err), err
    assert _snapshot(tmp_path) == before | {"file.txt"}


@pytest.mark.parametrize("command", ["quantize", "auto-opt", "finetune", "generate-adapter", "run"])
def test_every_command_checks_output_cache_and_model_before_work(
    command: str,
    tiny_llama: Path,
    tone_file: Path,
    unwritable: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = ["-d", "json", "--data_files", str(tone_file), "--text_template", TEMPLATE]
    not_a_model = tmp_path / "notes"
    not_a_model.mkdir()
    (not_a_model / "readme.txt").write_text("not a model")
    argv = {
        "quantize": ["quantize", "-m", "{model}"],
        "auto-opt": ["auto-opt", "-m", "{model}", *data, "--precision", "int4"],
        "finetune": ["finetune", "-m", "{model}", *data, "--max_steps", "1"],
        "generate-adapter": ["generate-adapter", "-m", "{model}", "--adapter_path", str(tmp_path / "adapter")],
        "run": ["run", "--config", str(tmp_path / "recipe.yaml")],
    }[command]
    if command == "generate-adapter":
        from tiny_models import make_random_adapter

        make_random_adapter(tiny_llama, tmp_path / "adapter")

    def args(model: Path, output: Path, cache: Path | None = None) -> list[str]:
        recipe = {"input_model": {"path": str(model)}, "passes": {"q": {"type": "model_builder", "precision": "int4"}},
                  "output": {"path": str(output)}}  # fmt: skip
        (tmp_path / "recipe.yaml").write_text(json.dumps(recipe))
        extra = ["--cache_dir", str(cache)] if cache else []
        return [a.replace("{model}", str(model)) for a in argv] + ["-o", str(output), *extra]

    before = _snapshot(tmp_path)
    code, err = _cli(capsys, args(tiny_llama, unwritable / "out"))
    assert code == 2 and "cannot be written" in _one_message(err), err
    code, err = _cli(capsys, args(tiny_llama, tmp_path / "out", unwritable / "cache"))
    assert code == 2 and "cache folder" in _one_message(err), err
    code, err = _cli(capsys, args(not_a_model, tmp_path / "out"))
    message = _one_message(err)
    assert code == 2 and str(not_a_model) in message and "no model" in message and "block" not in message, err
    # an output inside the input model's folder changes the input; one holding it, replaced, deletes it
    import shutil

    model = shutil.copytree(tiny_llama, tmp_path / "work" / "m")
    before = _snapshot(tmp_path)
    code, err = _cli(capsys, args(model, model / "out"))
    assert code == 2 and "is inside the input model's folder" in _one_message(err), err
    code, err = _cli(capsys, [*args(model, tmp_path / "work"), "--overwrite"])
    assert code == 2 and "replacing it would delete the input" in _one_message(err), err
    assert _snapshot(tmp_path) == before | {"recipe.yaml"}


@pytest.fixture
def broken_models(tiny_llama: Path, tmp_path: Path) -> dict[str, tuple[Path, Path, str]]:
    """Models whose files are not what they claim: the -m value, the file its refusal must name and the words."""
    import shutil

    from gguf_families import write_family_gguf

    out: dict[str, tuple[Path, Path, str]] = {}
    whole = write_family_gguf(tiny_llama, "llama", tmp_path / "whole.gguf")
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("a text file named .gguf")
    out["not-gguf"] = (not_gguf, not_gguf, "GGUF magic bytes")
    half = tmp_path / "half.gguf"
    half.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    out["half-gguf"] = (half, half, "not a complete GGUF file")
    cut = tmp_path / "cut-weights"
    shutil.copytree(tiny_llama, cut)
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    out["cut-safetensors"] = (cut, weights, "not a readable safetensors file")
    out["weights-file"] = (tiny_llama / "model.safetensors", tiny_llama / "model.safetensors", "is a file")
    no_tok = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_llama, no_tok)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        (no_tok / name).unlink(missing_ok=True)
    out["no-tokenizer"] = (no_tok, no_tok, "no tokenizer")
    no_weights = tmp_path / "config-only"
    no_weights.mkdir()
    shutil.copy(tiny_llama / "config.json", no_weights / "config.json")
    out["no-weights"] = (no_weights, no_weights, "no weights")
    shards = tmp_path / "missing-shard"
    shutil.copytree(tiny_llama, shards)
    (shards / "model.safetensors").rename(shards / "model-00001-of-00002.safetensors")
    index = {"metadata": {}, "weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors",
                                            "model.norm.weight": "model-00001-of-00002.safetensors"}}  # fmt: skip
    (shards / "model.safetensors.index.json").write_text(json.dumps(index))
    out["missing-shard"] = (shards, shards / "model.safetensors.index.json", "model-00002-of-00002.safetensors")
    return out


@pytest.mark.parametrize(
    "case", ["not-gguf", "half-gguf", "cut-safetensors", "weights-file", "no-tokenizer", "no-weights", "missing-shard"]
)
def test_models_whose_files_are_broken_are_refused_before_any_work(
    case: str,
    broken_models: dict[str, tuple[Path, Path, str]],
    tone_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A GGUF that is not one or is cut short, weights cut short or given as -m, a causal LM without its tokenizer,
    a config.json without weights, a sharded model missing a shard its index names: one message naming the file
    before any candidate is built (it was one failure per candidate, each with the library's words, and for a folder
    without a tokenizer or weights the builder's note to install sentencepiece)."""
    model, named, words = broken_models[case]
    data = ["-d", "json", "--data_files", str(tone_file), "--text_template", TEMPLATE]
    for argv in (["quantize", "-m", str(model)], ["auto-opt", "-m", str(model), *data],
                 ["finetune", "-m", str(model), *data, "--max_steps", "1"]):  # fmt: skip
        if argv[0] == "finetune" and model.suffix == ".gguf":
            continue  # fine-tuning a GGUF is refused for its kind, before its files are read
        before = _snapshot(tmp_path)
        code, err = _cli(capsys, [*argv, "-o", str(tmp_path / "out")])
        message = _one_message(err)
        assert code == 2 and str(named) in message and words in message, (argv[0], err)
        assert _snapshot(tmp_path) == before, argv[0]


def test_a_config_json_that_contradicts_its_weights_is_said_before_any_work(
    tiny_llama: Path, tone_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """config.json's hidden_size edited (64 -> 32): every command ended in transformers' "size mismatch ... You may
    consider adding `ignore_mismatched_sizes=True`"; now one message names the folder, the weight, the shape in the
    checkpoint and the one config.json implies, before anything is written."""
    import shutil

    model = shutil.copytree(tiny_llama, tmp_path / "edited")
    config = json.loads((model / "config.json").read_text())
    vocab = config["vocab_size"]
    config["hidden_size"] = 32
    (model / "config.json").write_text(json.dumps(config))
    data = ["-d", "json", "--data_files", str(tone_file), "--text_template", TEMPLATE]
    for argv in (["auto-opt", "-m", str(model), *data], ["finetune", "-m", str(model), *data, "--max_steps", "1"],
                 ["export", "-m", str(model), "--quant", "Q8_0"]):  # fmt: skip
        before = _snapshot(tmp_path)
        code, err = _cli(capsys, [*argv, "-o", str(tmp_path / "out")])
        message = _one_message(err)
        assert code == 2 and str(model) in message and "ignore_mismatched_sizes" not in message, (argv[0], err)
        assert f"model.embed_tokens.weight is [{vocab}, 64] in model.safetensors" in message, (argv[0], err)
        assert f"config.json implies [{vocab}, 32]" in message, (argv[0], err)
        assert "does not belong to these weights" in message, (argv[0], err)
        assert _snapshot(tmp_path) == before, argv[0]


def test_a_split_gguf_is_refused_not_converted_with_random_layers(
    tiny_llama: Path, tone_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first shard of a split GGUF (gguf-split's -00001-of-00002) read alone: transformers loaded the layers in
    the other shard as random weights ("newly initialized"), and finetune trained on them and exited 0."""
    from gguf_families import write_family_gguf

    first = write_family_gguf(tiny_llama, "llama", tmp_path / "split.gguf", split_max_tensors=10)
    assert first.name == "split-00001-of-00002.gguf"
    data = ["-d", "json", "--data_files", str(tone_file), "--text_template", TEMPLATE]
    for argv in (["quantize", "-m", str(first)], ["auto-opt", "-m", str(first), *data, "--gguf", "false"]):
        code, err = _cli(capsys, [*argv, "-o", str(tmp_path / "out"), "--cache_dir", str(tmp_path / "cache")])
        assert code == 2 and "one of 2 shards of a split GGUF" in err and "llama-gguf-split --merge" in err, err
        assert not (tmp_path / "out").exists()


def test_a_model_path_that_is_not_there_is_refused_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A path that is not on this machine and is no hub id: one error, before the warning about missing eval data
    and without probing the hub for it (both came first)."""
    for model in (tmp_path / "no-such-model", "./no-such-model", "models/a/b"):
        code, err = _cli(capsys, ["auto-opt", "-m", str(model), "-o", str(tmp_path / "out")])
        assert code == 2 and f"input model path '{model}' does not exist" in _one_message(err), err
        assert "no eval data" not in err and "hub cannot be reached" not in err, err


def test_a_model_with_tokenizer_json_alone_fine_tunes(
    tiny_llama: Path, tone_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """tokenizer.json without tokenizer_config.json gives a tokenizer that knows no special token's role: the pad
    token now comes from config.json (it was a TypeError in the collator: "fill_value must be Number, not
    NoneType"); with no token id anywhere, an error says which file is missing."""
    import shutil

    model = shutil.copytree(tiny_llama, tmp_path / "tok-json-only")
    for name in ("tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        (model / name).unlink(missing_ok=True)
    argv = ["finetune", "-m", str(model), "-d", "json", "--data_files", str(tone_file), "--text_template", TEMPLATE,
            "--max_steps", "1", "--log_level", "3"]  # fmt: skip
    code, err = _cli(capsys, [*argv, "-o", str(tmp_path / "ft")])
    assert code == 0, err
    config = json.loads((model / "config.json").read_text())
    for key in ("pad_token_id", "eos_token_id", "bos_token_id"):
        config.pop(key, None)
    (model / "config.json").write_text(json.dumps(config))
    code, err = _cli(capsys, [*argv, "-o", str(tmp_path / "ft2")])
    assert code == 2 and "names no pad, end-of-sequence or unknown token" in err and "Traceback" not in err, err


def test_a_full_disk_is_said_not_a_traceback(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real full disk (a 100 KB tmpfs): the output copy raised shutil.Error with a traceback, and a build that
    ran out of space said "OSError: [Errno 28]" with nothing on what to do. Needs root to mount (skipped else)."""
    small = tmp_path / "small"
    small.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100K", "tmpfs", str(small)],
                                           capture_output=True).returncode != 0:  # fmt: skip
        pytest.skip("mounting a small tmpfs needs root")
    try:
        args = ["quantize", "-m", str(tiny_llama), "--log_level", "3"]
        code, err = _cli(capsys, [*args, "-o", str(small / "out"), "--cache_dir", str(tmp_path / "cache")])
        assert code == 1 and "no space left on the device" in err and "--output_path" in err, err
        assert "Traceback" not in err and not [p for p in small.iterdir() if p.name.startswith(".")]  # no partial
        code, err = _cli(capsys, [*args, "--precision", "int8", "-o", str(tmp_path / "o2"), "--cache_dir",
                                  str(small / "cache")])  # fmt: skip
        assert code != 0 and "No space left on device" in err and "--cache_dir or OLIVE_EXT_CACHE" in err, err
    finally:  # lazily when busy: a plain umount failed while a worker still held the folder, leaking one mount a run
        if subprocess.run(["umount", str(small)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(small)], capture_output=True)


def test_chat_on_a_truncated_model_names_the_file(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    code, err = _cli(capsys, ["quantize", "-m", str(tiny_llama), "-o", str(tmp_path / "q"), "--log_level", "3"])
    assert code == 0, err
    shutil.copytree(tmp_path / "q", tmp_path / "q2")
    model = tmp_path / "q" / "model" / "model.onnx"
    model.write_bytes(model.read_bytes()[:1000])
    code, err = _cli(capsys, ["chat", "-m", str(tmp_path / "q"), "--prompt", "hi"])
    message = _one_message(err)
    assert code == 2 and str(model) in message and "truncated or corrupt" in message, err
    weights = tmp_path / "q2" / "model" / "model.onnx.data"
    weights.write_bytes(weights.read_bytes()[:5000])
    code, err = _cli(capsys, ["chat", "-m", str(tmp_path / "q2"), "--prompt", "hi"])
    message = _one_message(err)
    assert code == 2 and f"{weights} is truncated" in message, err


def test_input_fingerprint_ignores_run_records(tmp_path: Path) -> None:
    """Two identical fine-tune outputs differ only in train_metrics.json (timings): same fingerprint."""
    from olive_ext.artifacts import Artifact, fingerprint_input

    prints = []
    for run, seconds in (("a", 1.5), ("b", 2.5)):
        model, adapter = tmp_path / run / "model", tmp_path / run / "adapter"
        model.mkdir(parents=True)
        adapter.mkdir()
        (model / "config.json").write_text('{"model_type": "llama"}')
        (adapter / "adapter_model.safetensors").write_bytes(b"weights")
        (adapter / "train_metrics.json").write_text(f'{{"train_seconds": {seconds}}}')
        prints.append(fingerprint_input(Artifact("hf", str(model), str(adapter))).fingerprint)
    assert prints[0] == prints[1]
    (tmp_path / "b" / "adapter" / "adapter_model.safetensors").write_bytes(b"other weights")
    assert (
        fingerprint_input(Artifact("hf", str(tmp_path / "b" / "model"), str(tmp_path / "b" / "adapter"))).fingerprint
        != prints[0]
    )


def test_outputs_that_would_delete_the_users_files_are_refused_before_any_work(
    tiny_llama: Path,
    tone_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`-o . --overwrite` emptied the folder the user was in (the output is replaced whole), and an output holding
    the training data deleted it; a file given as the output was 'not empty' however --overwrite was set."""
    import shutil

    work = tmp_path / "work"
    work.mkdir()
    data = Path(shutil.copy(tone_file, work / "data.jsonl"))
    (work / "notes.txt").write_text("mine")
    (tmp_path / "afile").write_text("")
    monkeypatch.chdir(work)
    def finetune(data_file: Path) -> list[str]:
        return ["finetune", "-m", str(tiny_llama), "-d", "json", "--data_files", str(data_file),
                "--text_template", TEMPLATE, "--max_steps", "1"]  # fmt: skip

    before = _snapshot(tmp_path)
    for output, said in [
        (".", "is the current folder"),
        ("..", "is above the current one"),
        (str(tmp_path / "afile"), "is a file, and the output is a folder"),
    ]:
        code, err = _cli(capsys, [*finetune(tone_file), "-o", output, "--overwrite"])
        assert code == 2 and said in _one_message(err), (output, err)
    monkeypatch.chdir(tmp_path)
    code, err = _cli(capsys, [*finetune(data), "-o", str(work), "--overwrite"])
    assert code == 2 and "holds the data file" in _one_message(err), err
    assert _snapshot(tmp_path) == before and data.exists()
    # an input adapter inside the output: `auto-opt -m base -a ft/adapter -o ft --overwrite` deleted it (exit 0)
    from tiny_models import make_random_adapter

    adapter = make_random_adapter(tiny_llama, work / "ft" / "adapter")
    (work / "ft" / "model_config.json").write_text("{}")  # a fine-tune's output: --overwrite may replace it
    before = _snapshot(tmp_path)
    for argv in (["auto-opt", "-m", str(tiny_llama), "-a", str(adapter), "--gguf", "false"],
                 [*finetune(tone_file), "--adapter_path", str(adapter)],
                 ["generate-adapter", "-m", str(tiny_llama), "--adapter_path", str(adapter)]):  # fmt: skip
        code, err = _cli(capsys, [*argv, "-o", str(work / "ft"), "--overwrite"])
        assert code == 2 and "the adapter" in _one_message(err), (argv[0], err)
    assert _snapshot(tmp_path) == before


def test_a_killed_writers_staging_copy_is_swept_and_a_replace_raced_by_another_run_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL during an output's final write left '.<out>.partial-<pid>' (a whole copy of the output) and package's
    '.<out>.zip.partial-<pid>' beside it for good; two --overwrite runs finishing at once raised a raw OSError
    ('Directory not empty') from the final rename."""
    import errno

    from olive_ext.engine.output import staged_output
    from olive_ext.errors import UserInputError

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = dead.stdout.strip()
    dest = tmp_path / "out"
    (tmp_path / f".out.partial-{pid}" / "model").mkdir(parents=True)
    (tmp_path / f".out.zip.partial-{pid}").write_bytes(b"PK")
    live = tmp_path / f".out.partial-{os.getppid()}"  # a writer that still runs
    live.mkdir()
    other = tmp_path / f".outer.partial-{pid}"  # another output's
    other.mkdir()
    with staged_output(dest, overwrite=False) as stage:
        (stage / "x.txt").write_text("1")
    assert (dest / "x.txt").is_file()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([".outer.partial-" + pid, live.name, "out"]), left
    real_rename = os.rename

    def raced(src: object, dst: object) -> None:  # another run's output lands between the checks and the rename
        if str(src).endswith(f".partial-{os.getpid()}"):
            raise OSError(errno.ENOTEMPTY, "Directory not empty", str(src))
        real_rename(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", raced)
    with (pytest.raises(UserInputError, match="written by another run at the same moment"),
          staged_output(dest, overwrite=True) as stage):  # fmt: skip
        (stage / "y.txt").write_text("2")
    monkeypatch.undo()
    assert (dest / "x.txt").is_file()  # the previous output is back in place, not lost with the failed rename
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.") and str(os.getpid()) in p.name]
