"""The parity check with one model in memory at a time gives the numbers of both models side by side."""

from __future__ import annotations

import weakref
from pathlib import Path

from convert_helpers import build

from olive_ext.onnx.parity import GenAICandidate, TorchReference, compare_llm, compare_llm_in_turn


def test_one_model_at_a_time_gives_the_same_numbers_and_releases_pytorch_first(tiny_llama: Path) -> None:
    art = build(tiny_llama, {"build": {"type": "model_builder"}, "quantize": {"type": "int8_dynamic"}})
    prompts = [[5, 9, 12, 40, 7], [3, 8], [11, 2, 33, 4, 19, 21, 6, 30]]
    both = compare_llm(TorchReference(str(tiny_llama), None, True), GenAICandidate(art.path, None), prompts, 6)

    loaded: list[weakref.ref[TorchReference]] = []
    reference_alive_at_candidate_load: list[bool] = []

    def load_reference() -> TorchReference:
        reference = TorchReference(str(tiny_llama), None, True)
        loaded.append(weakref.ref(reference))
        return reference

    def load_candidate() -> GenAICandidate:
        reference_alive_at_candidate_load.append(loaded[0]() is not None)
        return GenAICandidate(art.path, None)

    in_turn = compare_llm_in_turn(load_reference, load_candidate, prompts, 6)
    assert in_turn == both  # the same statistics to the last bit, so the same verdicts
    assert both["positions"] == 15 and both["max_abs_delta"] > 0  # int8 moved the logits: not a trivial match
    assert set(both) == {"max_abs_delta", "top1_agreement", "positions", "kl", "greedy_prefix_match"}
    assert reference_alive_at_candidate_load == [False]  # PyTorch released before the candidate loaded


def test_alternating_sources_are_each_recorded_once_per_run(tiny_llama: Path, tmp_path: Path) -> None:
    """A run's candidates may alternate between sources (the fine-tune, its merged copy): none is loaded twice."""
    import shutil

    import numpy as np

    from olive_ext.passes.parity_check import MAX_RECORDED, forget_recorded, recorded_reference

    other = shutil.copytree(tiny_llama, tmp_path / "copy")
    ids = [5, 9, 12, 40, 7]
    forget_recorded()
    try:
        first = [recorded_reference(str(p), None).logits(ids) for p in (tiny_llama, other, tiny_llama, other)]
        assert [recorded_reference(str(p), None).loads for p in (tiny_llama, other)] == [1, 1]
        assert np.array_equal(first[0], first[2]) and np.array_equal(first[0], first[1])  # same weights, same logits
        for i in range(MAX_RECORDED):  # more sources than are kept: the oldest goes, and is recorded again
            recorded_reference(str(shutil.copytree(tiny_llama, tmp_path / f"more{i}")), None).logits(ids)
        assert recorded_reference(str(tiny_llama), None).loads == 0  # a fresh entry: nothing recorded yet
    finally:
        forget_recorded()


def test_one_prefill_for_logits_and_greedy_equals_the_two_calls(tiny_llama: Path) -> None:
    """The parity check reads a genai candidate's prompt logits and greedy tokens from one generator."""
    import numpy as np

    art = build(tiny_llama, {"build": {"type": "model_builder"}, "quantize": {"type": "int8_dynamic"}})
    candidate = GenAICandidate(art.path, None)
    for ids in ([5, 9, 12, 40, 7], [3, 8], [11, 2, 33, 4, 19, 21, 6, 30]):
        logits, tokens = candidate.logits_and_greedy(ids, 6)
        separate = candidate.logits(ids)
        assert logits.shape == separate.shape == (len(ids), separate.shape[-1])
        assert np.array_equal(logits, separate)  # read before decoding moved the generator on
        # the greedy tokens a separate generator decodes, step by step from the argmax of each position
        gen = candidate._generator(len(ids) + 6)
        gen.append_tokens(np.asarray(ids, dtype=np.int32))
        expected: list[int] = []
        while not gen.is_done() and len(expected) < 6:
            gen.generate_next_token()
            expected.append(int(gen.get_next_tokens()[0]))
        assert tokens == [t for t in expected[: next((i for i, t in enumerate(expected) if t in candidate.eos), 6)]]
        assert tokens and tokens[0] == int(separate[-1].argmax())  # the first greedy token is the prompt's argmax


def test_an_fp32_build_that_breaks_parity_fails_the_run_when_asked(tiny_llama: Path, tmp_path: Path) -> None:
    """auto-opt's fp32 candidate failed parity (a wrongly merged adapter) and the run went on to choose an int4 build
    of the same conversion, exit 0. With fail_run, the fp32 failure ends the run; without, the search goes on."""
    import pytest

    from olive_ext.errors import PassError
    from olive_ext.recipe import parse_recipe
    from olive_ext.workflows.run import run_recipe

    def recipe(fail_run: bool) -> object:
        strict = {"type": "parity_check", "max_abs_delta": 1e-12, "fail_run": fail_run}  # no build meets 1e-12
        return parse_recipe({"input_model": {"path": str(tiny_llama)}, "cache_dir": str(tmp_path / "c"),
                             "pipelines": [{"b": {"type": "model_builder", "precision": "fp32"}, "p": strict},
                                           {"b": {"type": "model_builder", "precision": "int4"}}]})  # fmt: skip

    with pytest.raises(PassError, match="fp32 candidate breaks parity"):
        run_recipe(recipe(True), write_output=False)
    result = run_recipe(recipe(False), write_output=False)
    assert result.chosen is not None and result.chosen.artifact is not None
    assert result.chosen.artifact.meta["precision"] == "int4"
