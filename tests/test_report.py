"""report.html as a person reads it: a real auto-opt report, its DOM facts, and a headless Chromium rendering."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from olive_ext.recipe.schema import DatasetSpec
from olive_ext.workflows.auto_opt import AutoOptOptions, run_auto_opt

FAST = {"warmup": 0, "repeats": 2, "new_tokens": 8, "prompt_tokens": 16, "max_new_tokens": 4}


@pytest.fixture(scope="module")
def report(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output folder of a tiny auto-opt: two int4 builds measured, exact match included, a size limit."""
    root = tmp_path_factory.mktemp("report")
    data = root / "eval.jsonl"
    data.write_text("\n".join(json.dumps({"q": f"what is {i} plus {i}?", "a": str(2 * i)}) for i in range(6)))
    spec = DatasetSpec(name="json", data_files=str(data), text_template="Q: {q}\nA: {a}")
    opts = AutoOptOptions(model_name_or_path=str(tiny_llama), output_path=str(root / "out"), data=spec,
                          precision="int4", max_candidates=2, max_size_mb=10000, cache_dir=str(root / "cache"),
                          **FAST)  # type: ignore[arg-type]  # fmt: skip
    run_auto_opt(opts)
    return root / "out"


def test_axes_have_room_and_stay_in_the_measurements_range() -> None:
    from olive_ext.report.html import make_axis

    flat = make_axis("exact_match", [0.0, 0.0, 0.0])  # every candidate equal: the axis once ran from -1.16
    assert flat.low == 0 and flat.high > 0 and len(flat.ticks) >= 3
    top = make_axis("exact_match", [100.0, 100.0])
    assert top.high == 100 and top.low < 100
    spread = make_axis("latency", [0.031, 0.05])
    assert spread.low <= 0.031 and spread.high >= 0.05 and spread.low >= 0 and 4 <= len(spread.ticks) <= 8
    # a 2.5 step: ticks 0, 2.5, 5, 7.5 were labelled 0, 2, 5, 8 (and 0.075, 0.1, 0.125 as 0.07, 0.10, 0.12)
    for values in ([2.0, 11.0], [0.083, 0.178], [120.0, 340.0], [0.031, 0.05]):
        axis = make_axis("latency", values)
        assert [float(axis.tick_text(t).replace(",", "")) for t in axis.ticks] == list(axis.ticks), axis


def test_the_report_names_reads_and_explains(report: Path) -> None:
    page = (report / "report.html").read_text()
    candidates = json.loads((report / "candidates.json").read_text())["candidates"]
    # one self-contained file: nothing fetched, nothing run
    assert "<script" not in page and "<link" not in page
    assert not [u for u in re.findall(r"https?://[^\"' ]+", page) if u != "http://www.w3.org/2000/svg"]
    # the chart: a legend, axis titles, and tick values a measurement can have
    legend = re.search(r'<g class="legend".*?</g>', page, re.S)
    assert legend and all(w in legend.group(0) for w in ("on the Pareto front", "chosen", "dot area: model size"))
    assert "exact match (%), higher is better" in page and "decode latency (ms/token), lower is better" in page
    for axis in ("x", "y"):
        ticks = [float(v) for v in re.findall(rf'class="tick {axis}-tick" data-value="([^"]+)"', page)]
        assert len(ticks) >= 3 and min(ticks) >= 0, (axis, ticks)
    y_ticks = [float(v) for v in re.findall(r'class="tick y-tick" data-value="([^"]+)"', page)]
    assert max(y_ticks) <= 100
    assert page.count('class="point chosen"') == 1
    # constraints in words, targets as a person says them, short names with the full pipeline a click away
    assert "exact match drop ≤ 1.0 points against the reference" in page and "size ≤ 10000 MB" in page
    assert "max_accuracy_drop':" not in page and "cpu-cpu" not in page
    for c in candidates:
        assert c["id"] in page
        block = f"block {c['pipeline'][0]['params']['block_size']}"
        assert re.search(rf"<td class='cand'[^>]*><b>[^<]*{block}[^<]*</b>", page), block
        assert f"<code>{c['label']}</code>" in page.replace("&gt;", ">")
    # what it was made from: a report sent to a colleague named neither the model nor the data
    assert "model " in page and "evaluated on " in page and "eval.jsonl (split train)" in page
    report_md = (report / "report.md").read_text()
    assert "eval.jsonl (split train)" in report_md
    assert "exact match drop ≤ 1.0 points" in report_md and "cpu-cpu" not in report_md


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (make install adds it)")
def test_the_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    from PIL import Image

    png = tmp_path / "report.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={png}",
                    "--window-size=1280,1600", (report / "report.html").as_uri()],
                   check=True, capture_output=True, timeout=180)  # fmt: skip
    import numpy as np

    image = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert image.shape == (1600, 1280, 3)
    inked = float((image.sum(axis=2) < 720).mean())
    assert inked > 0.03, f"the page is nearly blank ({inked:.1%} of pixels drawn)"

    def near(color: tuple[int, int, int]) -> int:
        return int((np.abs(image - np.array(color)).max(axis=2) <= 24).sum())

    assert near((214, 39, 40)) > 50, "the chosen candidate's red ring is not drawn"
    assert near((27, 158, 99)) + near((142, 205, 176)) > 50, "no Pareto-front dot is drawn"
    assert (image[800:].sum(axis=2) < 600).sum() > 500, "the candidates table below the chart is not drawn"
    # a phone's width: the chart (a fixed 860 px) and the table ran off the right edge (scrollWidth 884 at 500)
    probe = tmp_path / "narrow.html"
    measure = ("<script>addEventListener('load',()=>{const p=document.createElement('pre');p.id='W';p.textContent="
               "document.documentElement.scrollWidth+' '+innerWidth;document.body.appendChild(p)})</script></body>")
    probe.write_text((report / "report.html").read_text().replace("</body>", measure))
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=390,900",
                          "--virtual-time-budget=3000", "--dump-dom", probe.as_uri()],
                         check=True, capture_output=True, text=True, timeout=180).stdout  # fmt: skip
    found = re.search(r"<pre id=\"W\">(\d+) (\d+)</pre>", dom)
    assert found and int(found.group(1)) <= int(found.group(2)), found and found.group(0)


def test_build_label_names_what_makes_a_candidate() -> None:
    from olive_ext.report.labels import build_label

    olive = ("merge_adapter -> olive(config={'bits': 4}, data=train, olive_type=Gptq) -> "
             "model_builder(precision=int4) -> parity_check(data=eval, fail=False)")  # fmt: skip
    assert build_label(olive) == "Olive Gptq -> model_builder(precision=int4)"
    assert build_label("gguf_export(quant=Q8_0)") == "gguf_export(quant=Q8_0)"
    assert build_label("merge_adapter") == "merge_adapter"  # nothing else to say: the label as it is


def test_short_names_leave_out_the_parity_checks_settings() -> None:
    """A quantized candidate's parity check only records (fail=False): the table named candidates "fail True" and
    "int4 · block 32 · fail False", as if failing were a choice the user made."""
    from olive_ext.engine.results import CandidateResult
    from olive_ext.engine.search import Candidate
    from olive_ext.engine.steps import Step
    from olive_ext.report.labels import short_names
    from olive_ext.targets.base import CPU, Target

    def candidate(precision: str) -> CandidateResult:
        build = Step("build", "model_builder", {"precision": precision})
        parity = Step("parity", "parity_check", {"fail": precision == "fp32", "data": "eval"})
        return CandidateResult(Candidate(Target(CPU), (build, parity)))

    results = [candidate("fp32"), candidate("int4")]
    assert list(short_names(results).values()) == ["fp32", "int4"]


def test_a_constraint_badge_is_green_only_when_the_chosen_candidate_meets_it() -> None:
    """With no candidate chosen, "met by 0 of 2 candidates" wore the green "met" badge."""
    from olive_ext.report.html import _state_class

    assert _state_class("met") == "met" and _state_class("broken") == "broken"
    assert _state_class("met by 0 of 2 candidates") == "broken" and _state_class("met by 0 of 0 candidates") == "broken"
    assert _state_class("met by 1 of 2 candidates") == "not"
    assert _state_class("NOT checked: accuracy was not measured") == "not"


def test_olive_ai_candidates_are_named_by_their_olive_pass_first() -> None:
    """'merge_adapter · olive · config {'bits': 4, 'group_size': 32} · data calib · olive type Gptq ...': the table
    cut both olive-ai rows before GPTQ and RTN could be told apart."""
    from olive_ext.engine.results import CandidateResult
    from olive_ext.engine.search import Candidate
    from olive_ext.engine.steps import Step
    from olive_ext.report.labels import short_names
    from olive_ext.targets.base import CPU

    def olive(kind: str, config: dict) -> CandidateResult:
        step = Step("q", "olive", {"olive_type": kind, "config": config, "data": "calib", "samples": 64})
        return CandidateResult(Candidate(CPU, (step,)))

    gptq, rtn = olive("Gptq", {"bits": 4, "group_size": 32}), olive("Rtn", {"bits": 4, "group_size": 128})
    names = short_names([gptq, rtn])
    assert names[gptq.candidate.id] == "Olive Gptq · group size 32", names
    assert names[rtn.candidate.id] == "Olive Rtn · group size 128", names


def test_list_and_dict_parameters_are_named_as_a_recipe_writes_them() -> None:
    """Report names and pipelines printed Python reprs: "nodes to exclude ['/lm_head/MatMul']", "{'bits': 4}",
    "fail=False": not what the user wrote in the recipe."""
    from olive_ext.engine.results import CandidateResult
    from olive_ext.engine.search import Candidate
    from olive_ext.engine.steps import Step
    from olive_ext.report.labels import common_settings, short_names
    from olive_ext.targets.base import CPU

    def candidate(exclude: list[str]) -> CandidateResult:
        config = {"nodes_to_exclude": exclude, "extra_options": {"fast": True, "x": None}}
        step = Step("q", "olive", {"olive_type": "OnnxDynamicQuantization", "config": config})
        return CandidateResult(Candidate(CPU, (step,)))

    a, b = candidate(["/lm_head/MatMul"]), candidate([])
    names = short_names([a, b])
    assert names[a.candidate.id] == "nodes to exclude [/lm_head/MatMul]", names
    assert names[b.candidate.id] == "nodes to exclude []", names
    assert a.candidate.describe() == ("olive(config={nodes_to_exclude: [/lm_head/MatMul], extra_options: {fast: true, "
                                      "x: null}}, olive_type=OnnxDynamicQuantization)")  # fmt: skip
    assert common_settings([a, b]) == "olive(olive_type=OnnxDynamicQuantization)"


def test_several_olive_steps_each_keep_their_pass_in_names_and_settings() -> None:
    """Olive's QNN chain: four olive steps were one key, the last one's settings standing for all of them
    ("olive → model_builder → olive → olive(olive_type=ComposeOnnxModels)", named "olive · model_builder")."""
    from olive_ext.engine.results import CandidateResult
    from olive_ext.engine.search import Candidate
    from olive_ext.engine.steps import Step
    from olive_ext.report.labels import common_settings, short_names
    from olive_ext.targets.base import CPU

    steps = (Step("s", "olive", {"olive_type": "CaptureSplitInfo"}),
             Step("mb", "model_builder", {"precision": "fp32"}),
             Step("sm", "olive", {"olive_type": "SplitModel"}),
             Step("co", "olive", {"olive_type": "ComposeOnnxModels"}))
    one = CandidateResult(Candidate(CPU, steps))
    assert short_names([one])[one.candidate.id] == (
        "Olive CaptureSplitInfo · model_builder · Olive SplitModel · Olive ComposeOnnxModels")
    assert common_settings([one]) == ("olive(olive_type=CaptureSplitInfo) → model_builder(precision=fp32) → "
                                      "olive(olive_type=SplitModel) → olive(olive_type=ComposeOnnxModels)")


def test_a_long_error_is_not_cut_without_a_word(tmp_path: Path) -> None:
    """A failed candidate's error was cut at 120 characters mid-word ("...Check python-core-worker-*.log files for
    more i") in both reports; report.md had nowhere the rest."""
    from toy_passes import toy_weights

    from olive_ext.recipe import parse_recipe
    from olive_ext.workflows.run import run_recipe

    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    toy_weights(model)
    label = "x" * 150 + " the end"
    raw = {"input_model": {"path": str(model)},
           "passes": {"t": {"type": "toy_transform", "fail": [False, True], "label": label}},
           "evaluate": {"metrics": ["size"]}, "output": {"path": str(tmp_path / "o")}}  # fmt: skip
    run_recipe(parse_recipe(raw))
    md = (tmp_path / "o" / "report.md").read_text()
    assert "…" in md and f"toy failure in {label}" in md.split("Errors in full:")[1]
    assert f"RuntimeError: toy failure in {label}</span>" in (tmp_path / "o" / "report.html").read_text()
