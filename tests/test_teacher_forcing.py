"""Exact match by teacher forcing gives the greedy outputs generation gives, on every candidate kind.

The tiny Llama is random, so its answers are noise; the references are made from its own greedy
answers (some kept, some cut or changed), so teacher forcing has rows to settle and rows to hand
back to decoding, and the two must agree on every row.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from convert_helpers import build

from olive_ext.artifacts import Artifact, fingerprint_input
from olive_ext.cache import Cache
from olive_ext.data.spec import DatasetSpec
from olive_ext.evaluate.backends import open_backend
from olive_ext.evaluate.context import EvalContext
from olive_ext.evaluate.evaluator import evaluate, load_tokenizer, prepare_data
from olive_ext.evaluate.spec import EvaluateSpec
from olive_ext.evaluate.teacher_forcing import greedy_rows

KINDS: dict[str, dict[str, Any]] = {
    "fp32": {},
    "int4": {"precision": "int4", "block_size": 32, "accuracy_level": 4},
    "int8": {"precision": "int8"},
}
WORDS = [
    "the",
    "cat",
    "is",
    "happy",
    "and",
    "the",
    "dog",
    "is",
    "sad",
    "paris",
    "is",
    "a",
    "city",
    "tokyo",
    "is",
    "the",
    "capital",
    "of",
    "a",
    "country",
]
TEMPLATE = "Q: {q}\nA: {a}"


@pytest.fixture(scope="session")
def tiny_builds(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Artifact]:
    """The tiny Llama in PyTorch and as genai fp32, int4 and int8 builds."""
    cache = tmp_path_factory.mktemp("tf-cache")
    out = {"pytorch": fingerprint_input(Artifact("hf", str(tiny_llama)))}
    for name, params in KINDS.items():
        out[name] = build(tiny_llama, {"build": {"type": "model_builder", **params}}, cache_dir=cache)
    return out


def questions(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(3, 12))) for _ in range(n)]


def greedy_eval_file(model: Path, path: Path, n: int, max_new_tokens: int) -> Path:
    """An eval file whose answers are the PyTorch model's own greedy answers (exact match 100% there)."""
    rows = [{"q": q, "a": "x"} for q in questions(n)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    spec = DatasetSpec(name="json", data_files=str(path), text_template=TEMPLATE)
    art = Artifact("hf", str(model))
    data = prepare_data(art, EvalContext(EvaluateSpec(metrics=["exact_match"]), dataset=spec), {"generate"})
    backend: Any = open_backend("hf", str(model), None, "CPUExecutionProvider", 1)
    for row, prompt in zip(rows, data.prompts, strict=True):
        row["a"] = data.tokenizer.decode(backend.generate(prompt, max_new_tokens).tokens, skip_special_tokens=True)
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def _answers(generated: list[list[int]]) -> list[list[int]]:
    """References built from the greedy outputs: a third kept, a third with the last token changed
    (teacher forcing must decode those), a third cut short (the end token is then not the argmax)."""
    out = []
    for i, tokens in enumerate(generated):
        answer = list(tokens)
        if i % 3 == 1 and answer:
            answer[-1] = (answer[-1] + 1) % 512
        if i % 3 == 2 and len(answer) > 1:
            answer = answer[:-1]
        out.append(answer)
    return out


@pytest.mark.parametrize("kind", ["pytorch", *KINDS])
def test_teacher_forced_outputs_are_the_greedy_outputs(kind: str, tiny_builds: dict[str, Artifact]) -> None:
    art = tiny_builds[kind]
    tok = load_tokenizer(art)
    prompts = [list(tok(q)["input_ids"]) for q in questions(24)]
    backend: Any = open_backend("hf" if kind == "pytorch" else "genai", art.path, None, "CPUExecutionProvider", 1)
    generated = [backend.generate(p, 6).tokens for p in prompts]
    rows = greedy_rows(backend, prompts, _answers(generated), 6)
    assert rows.outputs == generated
    assert rows.forced > 0, "some kept answers must be settled without decoding"
    assert rows.forced + rows.decoded == len(prompts) and rows.decoded >= 16  # the changed and cut ones


INSTRUCTION = "Answer the question below in a few words, as the cat and the dog would.\nQ: "


@pytest.mark.parametrize("kind", ["pytorch", *KINDS])
def test_a_shared_prefix_runs_once_and_predicts_the_same(
    kind: str, tiny_builds: dict[str, Artifact], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows that repeat an instruction: the backend runs it once (a KV cache it rewinds to) and predicts what it
    predicts running each row whole; greedy_rows still gives the generated outputs."""
    from olive_ext.evaluate.backends import base

    art = tiny_builds[kind]
    tok = load_tokenizer(art)
    prompts = [list(tok(INSTRUCTION + q)["input_ids"]) for q in questions(24, seed=1)]
    backend: Any = open_backend("hf" if kind == "pytorch" else "genai", art.path, None, "CPUExecutionProvider", 1)
    generated = [backend.generate(p, 6).tokens for p in prompts]
    answers = _answers(generated)
    rows = [(p, a) for p, a in zip(prompts, answers, strict=True) if a]
    assert base.shared_prefix(rows) >= base.MIN_SHARED_PREFIX
    shared = backend.forced_predictions(rows)
    assert greedy_rows(backend, prompts, answers, 6).outputs == generated
    monkeypatch.setattr(base, "MIN_SHARED_PREFIX", 10**6)  # each row whole
    assert base.shared_prefix(rows) == 0
    whole = backend.forced_predictions(rows)
    assert [f.tokens for f in shared] == [f.tokens for f in whole]
    for a, b in zip(shared, whole, strict=True):
        assert a.margins == pytest.approx(b.margins, abs=1e-3)


def test_end_token_decides_where_the_answer_stops(tiny_builds: dict[str, Artifact]) -> None:
    """PyTorch with a frequent answer token as its end token: answers stop early, and teacher forcing
    must see the end token as the argmax after the answer, not just the answer tokens."""
    art = tiny_builds["pytorch"]
    tok = load_tokenizer(art)
    prompts = [list(tok(q)["input_ids"]) for q in questions(24, seed=1)]
    backend: Any = open_backend("hf", art.path, None, "CPUExecutionProvider", 1)
    full = [backend.generate(p, 6).tokens for p in prompts]
    counts: dict[int, int] = {}
    for tokens in full:
        for t in tokens[1:]:
            counts[t] = counts.get(t, 0) + 1
    backend.eos_ids = {max(counts, key=lambda t: counts[t])}
    generated = [backend.generate(p, 6).tokens for p in prompts]
    assert any(len(g) < 6 for g in generated), "the chosen end token must end some answers"
    kept = greedy_rows(backend, prompts, generated, 6)
    assert kept.outputs == generated and kept.forced > 0
    # the answers without their last token: greedy goes on past them, so none may be settled
    cut = [g[:-1] for g in generated]
    rows = greedy_rows(backend, prompts, cut, 6)
    assert rows.outputs == generated and rows.forced == 0


@pytest.mark.parametrize("kind", ["pytorch", "int4"])
def test_exact_match_same_with_and_without_teacher_forcing(
    kind: str, tiny_llama: Path, tiny_builds: dict[str, Artifact], tmp_path: Path
) -> None:
    data = greedy_eval_file(tiny_llama, tmp_path / "eval.jsonl", 18, 4)
    spec = DatasetSpec(name="json", data_files=str(data), text_template=TEMPLATE)
    values = {}
    for forcing in (True, False):
        settings = EvaluateSpec(metrics=["exact_match"], max_new_tokens=4, teacher_forcing=forcing)
        ectx = EvalContext(settings, dataset=spec)
        values[forcing], hit = evaluate(tiny_builds[kind], ectx, Cache(tmp_path / "cache"))
        assert not hit
    assert values[True]["exact_match"] == values[False]["exact_match"]
    assert values[True]["exact_match.n"] == 18
    if kind == "pytorch":
        assert values[True]["exact_match"] == 100.0
    assert values[True]["exact_match.teacher_forced"] > 0
    assert values[False]["exact_match.teacher_forced"] == 0


@pytest.mark.integration
def test_tone_rows_teacher_forced_like_generation_on_every_kind(tone_finetuned: Path, integration_cache: Path) -> None:
    """SmolLM2 fine-tuned on the tone task, the held-out rows: every row's greedy answer is the same by
    teacher forcing as by decoding, in PyTorch and in the genai fp32, int4 and int8 builds.

    The first 45 of the 90 rows, as the pipeline test's auto-opt scores (decoding every row of four models is
    this test's cost: 175 s for 90 rows on 2 cores)."""
    from conftest import eval_spec

    from olive_ext.evaluate.evaluator import build_jobs, run_worker
    from olive_ext.models.folder import resolve_model_arg

    cache = Cache(integration_cache)
    source = resolve_model_arg(str(tone_finetuned), None, None, None)
    kinds = {"pytorch": fingerprint_input(source, cache.memo)}
    for name, params in KINDS.items():
        kinds[name] = build(tone_finetuned, {"build": {"type": "model_builder", **params}}, cache_dir=integration_cache)
    for name, art in kinds.items():
        outputs = {}
        for forcing in (True, False):
            ectx = EvalContext(
                EvaluateSpec(metrics=["exact_match"], teacher_forcing=forcing, max_samples=45),
                dataset=eval_spec("tone"),
            )
            data = prepare_data(art, ectx, {"generate"})
            raw, _ = run_worker(art, ectx, build_jobs({"generate"}, data, ectx))
            outputs[forcing] = raw["generate"]
        assert outputs[True]["outputs"] == outputs[False]["outputs"], name
        assert len(outputs[True]["outputs"]) == 45
        # a fine-tuned model answers most rows right: those need no decoding
        assert outputs[True]["forced"] >= 30, (name, outputs[True]["forced"])


def test_an_unset_generation_limit_fits_the_longest_answer(caplog: pytest.LogCaptureFixture) -> None:
    """The default 16 tokens cut a 20-token answer, so no such row could match: unset, the limit is raised to
    the longest answer and its end token; set by the user, it stays and a warning says what to raise it to.
    auto-opt leaves it unset unless asked."""
    from olive_ext.evaluate.context import EvalData
    from olive_ext.evaluate.evaluator import answer_limit
    from olive_ext.workflows.auto_opt import AutoOptOptions, auto_opt_recipe

    data = EvalData(answers=[[1, 2, 3], list(range(20))])
    assert answer_limit(EvaluateSpec(), data) == 21
    assert answer_limit(EvaluateSpec(), EvalData(answers=[[1, 2, 3]])) == 16
    assert answer_limit(EvaluateSpec(max_new_tokens=8), data) == 8
    said = "1 eval answer is longer than max_new_tokens 8 when tokenized alone (the longest has 20 tokens)"
    assert said in caplog.text
    for asked in ({}, {"max_new_tokens": 30}):
        opts = AutoOptOptions(model_name_or_path="pypi:smollm2-135m-instruct", output_path="out", **asked)
        spec = auto_opt_recipe(opts, "cpu", "out").evaluate
        assert spec.max_new_tokens == asked.get("max_new_tokens")


def test_eval_rows_longer_than_the_context_are_left_out(tiny_llama: Path, tmp_path: Path) -> None:
    """One 800-token row ended the run ("input_ids size (807) ... exceeds max length (512)"), naming a cache path."""
    from olive_ext.errors import OliveExtError

    rows = tmp_path / "rows.jsonl"
    long_row = {"q": "red apple " * 300, "a": "yes"}
    rows.write_text("\n".join(json.dumps(r) for r in [{"q": "red apple", "a": "yes"}, long_row]) + "\n")
    spec = DatasetSpec(name="json", data_files=str(rows), text_template="Q: {q}\nA: {a}")
    ectx = EvalContext(EvaluateSpec(metrics=["exact_match"]), dataset=spec)
    data = prepare_data(Artifact("hf", str(tiny_llama)), ectx, {"generate"})
    assert len(data.prompts) == 1 and data.references == ["yes"]
    rows.write_text(json.dumps(long_row) + "\n")
    with pytest.raises(OliveExtError, match="no eval row fits the model's context of 512 tokens"):
        prepare_data(Artifact("hf", str(tiny_llama)), ectx, {"generate"})


def test_eval_rows_with_an_empty_answer_are_not_scored(tiny_llama: Path, tmp_path: Path) -> None:
    """Rows whose answer cell was missing, null or blank were scored: a model that answered nothing matched them."""
    from olive_ext.errors import OliveExtError

    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"q": "a", "a": "yes"}\n{"q": "b", "a": null}\n{"q": "c", "a": "  "}\n{"q": "d"}\n')
    spec = DatasetSpec(name="json", data_files=str(rows), text_template="Q: {q}\nA: {a}")
    ectx = EvalContext(EvaluateSpec(metrics=["exact_match"]), dataset=spec)
    assert prepare_data(Artifact("hf", str(tiny_llama)), ectx, {"generate"}).references == ["yes"]
    rows.write_text('{"q": "b", "a": ""}\n')
    with pytest.raises(OliveExtError, match="every eval row's expected answer is empty"):
        prepare_data(Artifact("hf", str(tiny_llama)), ectx, {"generate"})


def test_every_backend_of_a_model_stops_on_the_tokenizers_eos(tiny_llama: Path, tmp_path: Path) -> None:
    """A model whose tokenizer's eos (<|im_end|>, what training ends every answer with) is not its config's eos:
    the genai build stopped on both, the PyTorch reference only on the config's, so a fine-tune answered right by
    every candidate (100%) scored its reference 0% ("negative\\nnegative\\n..."), and the accuracy-drop
    constraint then passed any candidate. The reference stops where the builds and the training stop."""
    import shutil

    model = shutil.copytree(tiny_llama, tmp_path / "m")
    tokenizer_eos = json.loads((model / "tokenizer_config.json").read_text())["eos_token"]
    tok = load_tokenizer(Artifact("hf", str(model)))
    eos_id = tok.convert_tokens_to_ids(tokenizer_eos)
    other = next(i for i in range(5) if i != eos_id)
    for name in ("config.json", "generation_config.json"):
        data = json.loads((model / name).read_text())
        (model / name).write_text(json.dumps({**data, "eos_token_id": other}))
    built = build(model, {"build": {"type": "model_builder"}}, cache_dir=tmp_path / "cache")
    stops = {kind: open_backend(kind, path, None, "CPUExecutionProvider", 1).eos_ids  # type: ignore[attr-defined]
             for kind, path in (("hf", str(model)), ("genai", built.path))}  # fmt: skip
    assert eos_id in stops["genai"] and stops["hf"] == stops["genai"], stops
