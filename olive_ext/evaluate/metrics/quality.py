"""Task quality: exact match of greedy answers, label accuracy, perplexity of the expected answers."""

from __future__ import annotations

import math

from olive_ext.artifacts import LM_ROLES, eval_role
from olive_ext.evaluate.context import MetricInput
from olive_ext.evaluate.exact_match import exact_match as score_exact_match
from olive_ext.evaluate.registry import register_metric


def decoded_answers(inp: MetricInput) -> list[str]:
    assert inp.data is not None
    tok = inp.data.tokenizer
    return [tok.decode(ids, skip_special_tokens=True) for ids in inp.raw["generate"]["outputs"]]


@register_metric(
    "exact_match",
    "%",
    higher_is_better=True,
    kinds=LM_ROLES,
    needs={"generate"},
    needs_data=True,
    description="share of eval examples whose greedy answer equals the reference",
)
def exact_match(inp: MetricInput) -> dict[str, float]:
    """Percent of rows whose greedy answer equals the reference answer."""
    assert inp.data is not None
    answers = decoded_answers(inp)
    # racing may have stopped the candidate: then the rows seen are scored, and that is said
    refs = [r or "" for r in inp.data.references[: len(answers)]]
    ends = inp.data.answer_ends[: len(answers)] if inp.data.answer_ends else None
    out = {"exact_match": round(score_exact_match(answers, refs, ends), 2), "exact_match.n": len(refs)}
    gen = inp.raw["generate"]
    if gen.get("stopped_after") is not None:
        out["exact_match.stopped_after"] = gen["stopped_after"]
        out["exact_match.rows"] = len(inp.data.references)
    if "forced" in gen:
        out["exact_match.teacher_forced"] = gen["forced"]
    return out


@register_metric(
    "accuracy",
    "%",
    higher_is_better=True,
    kinds=LM_ROLES | {"onnx"},
    needs={"generate", "classify"},
    needs_data=True,
    description="LLMs: exact match of greedy answers; classifiers: label accuracy",
)
def accuracy(inp: MetricInput) -> dict[str, float]:
    """Percent of rows whose predicted label equals the reference label (classifiers)."""
    assert inp.data is not None
    if eval_role(inp.artifact) == "onnx":
        preds, labels = inp.raw["classify"]["predictions"], inp.data.labels
        hits = sum(p == y for p, y in zip(preds, labels, strict=True))
        return {"accuracy": round(100.0 * hits / len(labels), 2), "accuracy.n": len(labels)}
    scored = exact_match(inp)
    return {k.replace("exact_match", "accuracy", 1): v for k, v in scored.items()}


@register_metric(
    "perplexity",
    "",
    higher_is_better=False,
    kinds=LM_ROLES,
    needs={"nll"},
    needs_data=True,
    description="perplexity of the expected answers given their prompts",
)
def perplexity(inp: MetricInput) -> dict[str, float]:
    """exp of the mean negative log-likelihood per reference token."""
    nll, tokens = inp.raw["nll"]["nll"], inp.raw["nll"]["tokens"]
    if not sum(tokens):  # exp(0 / 1) = 1.0 was reported as a perfect score, over nothing
        raise ValueError("perplexity: no eval row has a prompt and a reference answer to score (plain text rows have "
                         "none): give rows with answers (a response field or a text template with the answer)")
    return {"perplexity": round(math.exp(sum(nll) / sum(tokens)), 4), "perplexity.tokens": sum(tokens)}
