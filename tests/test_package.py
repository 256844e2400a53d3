"""package and verify on the tiny model's auto-opt output: checksums, tampering, unsafe zips, determinism."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from olive_ext.cli import main
from olive_ext.deploy.bundle import package
from olive_ext.deploy.verify import verify
from olive_ext.errors import OutputExistsError, UserInputError
from olive_ext.workflows.auto_opt import AutoOptOptions, run_auto_opt


@pytest.fixture(scope="module")
def auto_opt_output(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ao") / "out"
    cache = tmp_path_factory.mktemp("ao-cache")
    run_auto_opt(
        AutoOptOptions(
            model_name_or_path=str(tiny_llama),
            output_path=str(out),
            precision="int4",
            max_candidates=1,
            cache_dir=str(cache),
            warmup=0,
            repeats=1,
            new_tokens=4,
            prompt_tokens=8,
        )
    )
    return out


def test_bundle_has_everything_and_verifies_files(auto_opt_output: Path, tmp_path: Path) -> None:
    bundle = package(auto_opt_output, tmp_path / "b", name="tiny", version="1.2.3")
    names = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert {
        "manifest.json",
        "run.py",
        "README.md",
        "model/genai_config.json",
        "model/model.onnx",
        "model/chat_template.jinja",
        "model/tokenizer.json",
    } <= names
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["name"] == "tiny" and manifest["version"] == "1.2.3"
    assert manifest["target"]["provider"] == "CPUExecutionProvider"
    assert manifest["precision"] == "int4" and manifest["metrics"]["size"] > 0
    assert manifest["recipe_sha256"] and manifest["libraries"]["onnxruntime-genai"]
    assert {f["path"] for f in manifest["files"]} == names - {"manifest.json"}
    report = verify(bundle, run_model=False)
    assert report.ok, report.checks


def test_tampered_missing_and_extra_files_are_named(auto_opt_output: Path, tmp_path: Path) -> None:
    bundle = package(auto_opt_output, tmp_path / "b")
    config = bundle / "model" / "genai_config.json"
    data = bytearray(config.read_bytes())
    data[10] ^= 1  # one flipped bit
    config.write_bytes(bytes(data))
    report = verify(bundle, run_model=False)
    assert not report.ok
    assert any("model/genai_config.json" in c.detail and not c.ok for c in report.checks)
    (bundle / "README.md").unlink()
    (bundle / "extra.bin").write_bytes(b"x")
    details = " ".join(c.detail for c in verify(bundle, run_model=False).checks if not c.ok)
    assert "README.md is missing" in details and "extra.bin is not in the manifest" in details


def test_zip_is_deterministic_and_verifies(auto_opt_output: Path, tmp_path: Path) -> None:
    a = package(auto_opt_output, tmp_path / "one" / "bundle", make_zip=True)
    b = package(auto_opt_output, tmp_path / "two" / "bundle", make_zip=True)
    assert a.with_suffix(".zip").read_bytes() == b.with_suffix(".zip").read_bytes()
    assert verify(a.with_suffix(".zip"), run_model=False).ok


def test_unsafe_zip_members_are_refused_before_extraction(tmp_path: Path) -> None:
    for member in ("../evil.txt", "/abs.txt", "bundle/../../x"):
        archive = tmp_path / "bad.zip"
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr("bundle/manifest.json", "{}")
            z.writestr(member, "pwned")
        with pytest.raises(UserInputError, match="unsafe members"):
            verify(archive)
        assert not (tmp_path / "evil.txt").exists()
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as z:
        info = zipfile.ZipInfo("bundle/model")
        info.external_attr = (0o120777) << 16  # a symbolic link
        z.writestr(info, "/etc")
    with pytest.raises(UserInputError, match="link"):
        verify(link)


def test_smoke_generation_reports_a_model_that_never_ends_its_turn(auto_opt_output: Path, tmp_path: Path) -> None:
    # The tiny model has random weights: it loads and generates, but never emits <|im_end|>.
    bundle = package(auto_opt_output, tmp_path / "b")
    report = verify(bundle)
    by_name = {c.name: c for c in report.checks}
    assert by_name["load"].ok and by_name["checksums"].ok
    assert not by_name["end of turn (base model)"].ok
    assert "without an end-of-turn token" in by_name["end of turn (base model)"].detail


def test_package_refuses_to_overwrite_and_cli(auto_opt_output: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    assert main(["package", "-m", str(auto_opt_output), "-o", str(out), "--zip"]) == 0
    with pytest.raises(OutputExistsError):
        package(auto_opt_output, out)
    assert main(["verify", str(out.with_suffix(".zip")), "--no-run"]) == 0
    (out / "run.py").write_text("print('changed')\n")
    assert main(["verify", str(out), "--no-run"]) == 1
    assert main(["package", "-m", str(tmp_path), "-o", str(tmp_path / "c")]) == 2
