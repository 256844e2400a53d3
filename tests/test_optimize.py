"""`olive-ext optimize` (Olive's optimize flags and defaults): the candidates of one precision, narrowed by Olive's
knobs, built and measured on the tiny Llama; what olive-ext does not build is refused before work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import olive_ext
from olive_ext.cli import main

FAST = ["--warmup", "0", "--repeats", "1", "--new_tokens", "8", "--prompt_tokens", "16", "--log_level", "3"]


def dry_run(capsys: pytest.CaptureFixture[str], model: Path, *flags: str) -> list[dict]:
    """optimize --dry_run's recipe pipelines (one recipe: one device)."""
    capsys.readouterr()
    assert main(["optimize", "-m", str(model), "-o", "unused-out", "--dry_run", *flags]) == 0
    (recipe,) = list(yaml.safe_load_all(capsys.readouterr().out))
    return recipe["pipelines"]


def builds(pipelines: list[dict]) -> list[dict]:
    return [step for p in pipelines for step in p.values() if step["type"] == "model_builder"]


def test_olive_defaults_build_fp32_for_the_cpu(tiny_llama: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pipelines = dry_run(capsys, tiny_llama)
    assert [b["precision"] for b in builds(pipelines)] == ["fp32"]  # Olive's default precision, one candidate
    assert not any("gguf" in json.dumps(p) for p in pipelines)  # Olive's optimize writes ONNX


def test_block_size_and_extra_mb_options_reach_every_int4_build(
    tiny_llama: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = builds(dry_run(capsys, tiny_llama, "--precision", "int4"))
    assert {b["block_size"] for b in plain} == {32, 128}  # auto-opt's int4 block sizes, before narrowing
    narrowed = dry_run(capsys, tiny_llama, "--precision", "int4", "--block_size", "64",
                       "--extra_mb_options", "int4_is_symmetric=false,int4_accuracy_level=4")  # fmt: skip
    steps = builds(narrowed)
    assert steps and {b["block_size"] for b in steps} == {64} and {b["symmetric"] for b in steps} == {False}
    assert {b["accuracy_level"] for b in steps} == {4}
    # candidates that became the same build are tried once (block 32 and 128 at level 4 were two)
    assert len(narrowed) == len({json.dumps(p, sort_keys=True) for p in narrowed}) < len(plain)
    # olive-ai's RTN quantizes in groups of the same size
    assert all(s["config"]["group_size"] == 64 for p in narrowed for s in p.values() if s["type"] == "olive")


def test_qdq_keeps_the_candidates_that_can_be_qdq_and_builder_options_reach_olive_ai(
    tiny_llama: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--use_qdq_format on int4 failed on the tool's own k-quant candidate (int8 layers beside QDQ are not built),
    and olive-ai's RTN quantized asymmetrically under --extra_mb_options int4_is_symmetric=true."""
    qdq = builds(dry_run(capsys, tiny_llama, "--precision", "int4", "--use_qdq_format"))
    assert qdq and all(b["use_qdq"] for b in qdq)
    assert not any(b.get("mixed_layers_int8") or b.get("lm_head") == "int8" for b in qdq)
    options = "int4_is_symmetric=true,int4_op_types_to_quantize=MatMul/Gather"
    pipelines = dry_run(capsys, tiny_llama, "--precision", "int4", "--extra_mb_options", options)
    rtn = [s["config"] for p in pipelines for s in p.values() if s["type"] == "olive"]
    assert rtn and all(c["sym"] is True for c in rtn)
    # Olive's spelling of the builder's op_types_to_quantize reaches the builder under the name it reads
    assert {b["extra_options"]["op_types_to_quantize"] for b in builds(pipelines)} == {"MatMul/Gather"}


def test_the_provider_gives_the_device(tiny_llama: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["optimize", "-m", str(tiny_llama), "-o", "x", "--dry_run", "--provider", "CUDAExecutionProvider",
                 "--precision", "int4"]) == 0  # fmt: skip
    (recipe,) = list(yaml.safe_load_all(capsys.readouterr().out))
    assert recipe["targets"] == [{"device": "gpu", "provider": "CUDAExecutionProvider"}]


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--precision", "bf16"], "precision: olive-ext does not build bf16; ask for fp16"),
        (["--precision", "uint4"], "ask for int4"),
        (["--precision", "int4", "--block_size", "48"], "Olive rounds 48 to the closest"),
        (["--precision", "int4", "--block_size", "-1"], "per-channel (-1) is not built"),
        (["--block_size", "32"], "give --precision int4 or int8 (not fp32)"),
        (["--precision", "int4", "--extra_mb_options", "int4_block_size=48"], "extra_mb_options: block_size"),
        (["--extra_mb_options", "exclude_lm_head=true"], "exclude_lm_head: not supported: the model would have no"),
        (["--extra_mb_options", "no_equals_sign"], "'no_equals_sign' is not key=value"),
        (["--exporter", "dynamo_exporter"], "builds language models with the onnxruntime-genai model builder"),
        (["--exporter", "optimum_exporter"], "optimum is not used"),
        (["--act_precision", "uint16"], "--act_precision: not supported"),
        (["--num_split", "2"], "--num_split: not supported"),
        (["--enable_aot"], "--enable_aot: not supported: ahead-of-time compilation needs the QNN SDK"),
        # found off the path: each ran (or passed --dry_run) doing less than asked, or said it in recipe words
        (["--precision", "int8", "--use_qdq_format"], "use_qdq_format: QDQ weights are built for int4"),
        (["--use_qdq_format"], "give --precision int4 (here fp32)"),
        (
            ["--precision", "int4", "--extra_mb_options", "int4_is_symetric=false"],
            "int4_is_symetric: the model builder reads no such option (it would be ignored without a word); did you "
            "mean int4_is_symmetric?",
        ),
        (
            ["--precision", "int4", "--block_size", "32", "--extra_mb_options", "int4_block_size=128"],
            "a block size of 128 here and --block_size 32: give one",
        ),
        (["--extra_mb_options", "int4_is_symmetric=false"], "symmetric sets quantization, and --precision is fp32"),
        (["--extra_mb_options", "use_qdq=true,use_qdq=false"], "use_qdq given twice"),
        (["--gguf", "true"], "llama.cpp candidates are int4 and int8"),
        (["--provider", "NvTensorRTRTXExecutionProvider"], "provider: TensorRT-RTX builds need NVIDIA's SDK"),
        (["--provider", "bogus"], "provider: not an execution provider olive-ext builds for"),
        (["--provider", "OpenVINOExecutionProvider"], "OpenVINO builds are a recipe step here"),
    ],
)
def test_what_is_not_built_is_refused_before_work(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], said: str
) -> None:
    out = tmp_path / "out"
    assert main(["optimize", "-m", str(tiny_llama), "-o", str(out), *flags]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert said in err and "Traceback" not in err
    assert not out.exists()


def test_an_encoder_takes_the_torch_exporters_not_the_model_builder(
    tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["optimize", "-m", str(tiny_bert), "-o", str(tmp_path / "o"), "--exporter", "model_builder"]) == 2
    assert "--exporter model_builder builds language models" in " ".join(capsys.readouterr().err.split())
    # builder knobs on an encoder were ignored without a word
    assert main(["optimize", "-m", str(tiny_bert), "-o", str(tmp_path / "o"), "--precision", "int8",
                 "--block_size", "32"]) == 2  # fmt: skip
    assert "--block_size: model-builder options" in " ".join(capsys.readouterr().err.split())
    pipelines = dry_run(capsys, tiny_bert, "--exporter", "torchscript_exporter")
    exports = [s for p in pipelines for s in p.values() if s["type"] == "onnx_export"]
    assert exports and {s["exporter"] for s in exports} == {"torchscript"}


def test_olives_quickstart_command_is_understood(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Olive's getting-started command, as written there: every flag is taken; only the hub model is missing here."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.chdir(tmp_path)
    code = main(["optimize", "--model_name_or_path", "Qwen/Qwen2.5-0.5B-Instruct", "--precision", "int4",
                 "--output_path", "models/qwen"])  # fmt: skip
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "Qwen/Qwen2.5-0.5B-Instruct" in err and "hf download" in err, err
    assert "unknown flag" not in err


def test_optimize_builds_measures_and_keeps_the_asked_block_size(
    tiny_llama: Path, eval_file: Path, tmp_path: Path
) -> None:
    """A real run through the Python API: every candidate is an int4 build at block size 64, measured."""
    out = tmp_path / "out"
    result = olive_ext.optimize(tiny_llama, out, precision="int4", block_size=64, max_candidates=2, olive_int4=False,
                                data_files=str(eval_file), text_template="Q: {q}\nA: {a}", warmup=0, repeats=1,
                                new_tokens=8, prompt_tokens=16, cache_dir=str(tmp_path / "cache"))  # fmt: skip
    candidates = json.loads((out / "candidates.json").read_text())["candidates"]
    assert len(candidates) == 2 and not any(c["error"] for c in candidates)
    for c in candidates:
        assert "exact_match" in c["metrics"] and c["metrics"]["throughput"] > 0
    recipe = yaml.safe_load((out / "recipe.yaml").read_text())
    assert {b["block_size"] for b in builds(recipe["pipelines"])} == {64}
    assert result.model_path == out / "model" and (out / "model" / "genai_config.json").exists()
