"""package and verify on the tiny model's auto-opt output: checksums, digest, signatures, tampering, determinism.

Hostile bundles (links, devices, bad manifests, broken zips) are in test_bundle_integrity.py, which
imports the fixture and helpers below.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import socket
import sys
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
    # one cache for every module that uses this fixture: the second build is a cache hit
    cache = tmp_path_factory.getbasetemp() / "package-auto-opt-cache"
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
    # readable by all, as in the zip (onnxruntime's quantizer writes model.onnx.data 0600)
    assert {oct(p.stat().st_mode & 0o777) for p in bundle.rglob("*") if p.is_file()} == {"0o644"}
    # no eval data: the smoke prompt is a user turn in the model's chat template, as transformers renders it
    # (it was sent bare, and a chat model that answered well ran on and failed verify)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bundle / "model")
    asked = [{"role": "user", "content": "Hello! Who are you?"}]
    assert manifest["smoke_prompts"] == [tok.apply_chat_template(asked, tokenize=False, add_generation_prompt=True)]


def test_tampered_missing_and_extra_files_are_named(auto_opt_output: Path, tmp_path: Path) -> None:
    bundle = package(auto_opt_output, tmp_path / "b")
    config = bundle / "model" / "genai_config.json"
    data = bytearray(config.read_bytes())
    data[10] ^= 1  # one flipped bit
    config.write_bytes(bytes(data))
    report = verify(bundle, run_model=False)
    assert not report.ok and not report  # `assert verify(bundle)` fails on a tampered bundle
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
    ends = [c for c in report.checks if c.name.startswith("end of turn (model")]  # no adapters: "model", not "base"
    assert ends and not any(c.ok for c in ends) and len({c.name for c in ends}) == len(ends)
    assert "without an end-of-turn token" in ends[0].detail


def test_package_refuses_to_overwrite_and_cli(auto_opt_output: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    assert main(["package", "-m", str(auto_opt_output), "-o", str(out), "--zip"]) == 0
    with pytest.raises(OutputExistsError):
        package(auto_opt_output, out)
    assert main(["verify", str(out.with_suffix(".zip")), "--no-run"]) == 0
    (out / "run.py").write_text("print('changed')\n")
    assert main(["verify", str(out), "--no-run"]) == 1
    assert main(["package", "-m", str(tmp_path), "-o", str(tmp_path / "c")]) == 2


def test_package_overwrite_keeps_a_bundle_holding_a_users_files_in_its_folders(
    auto_opt_output: Path, tmp_path: Path
) -> None:
    """--overwrite compared only a bundle's top-level names with its manifest: results a user saved in model/ were
    deleted without a word, where a file beside manifest.json was refused."""
    out = tmp_path / "b"
    assert main(["package", "-m", str(auto_opt_output), "-o", str(out)]) == 0
    (out / "model" / "my_eval").mkdir()
    (out / "model" / "my_eval" / "results.csv").write_text("row,score\n")
    with pytest.raises(UserInputError, match=r"model/my_eval/results\.csv"):
        package(auto_opt_output, out, overwrite=True)
    assert (out / "model" / "my_eval" / "results.csv").is_file()
    (out / "model" / "my_eval" / "results.csv").unlink()
    (out / "model" / "my_eval").rmdir()
    package(auto_opt_output, out, overwrite=True)  # only what package wrote: replaced


# ---- helpers shared with test_bundle_integrity.py ----


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run olive-ext; return (exit code, stdout + stderr). No command may end in a traceback."""
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text
    return code, text


def line_with(text: str, fragment: str) -> str:
    """The one output line holding ``fragment`` (the message is not wrapped over several lines)."""
    lines = [line for line in text.splitlines() if fragment in line]
    assert len(lines) == 1, f"{fragment!r} should be on exactly one line of:\n{text}"
    return lines[0]


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every path under root with its size and content hash (links and special files by their type)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink() or not (p.is_file() or p.is_dir()):
            out[rel] = (0, "special")
        elif p.is_file():
            out[rel] = (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
        else:
            out[rel] = (0, "dir")
    return out


def make_keys(folder: Path, name: str = "key") -> tuple[Path, Path]:
    """A fresh P-256 key pair as PEM files: (private, public)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / f"{name}.pem", folder / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def alter_with_manifest(bundle: Path, rel: str = "run.py") -> None:
    """Change a file and rewrite its sha256 and size in manifest.json: the checksums alone then pass."""
    target = bundle / rel
    target.write_bytes(target.read_bytes() + b"\n# changed\n")
    manifest = json.loads((bundle / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["path"] == rel:
            entry["sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
            entry["size"] = target.stat().st_size
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection or name lookup fails the test: signing and checking use the local key only."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network use: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ---- the manifest digest ----


def test_package_prints_the_digest_and_verify_expect_checks_it(
    auto_opt_output: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "my pk"  # the command it prints is copied into a shell: a space split the path
    code, text = cli(capsys, "package", "-m", str(auto_opt_output), "-o", str(out), "--zip")
    assert code == 0
    digest = hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    assert f"manifest digest: sha256:{digest}" in line_with(text, "manifest digest")
    printed = shlex.split(" ".join(text.split("check it with:", 1)[1].split()))
    assert printed[:3] == ["olive-ext", "verify", str(out.with_name("my pk.zip"))], printed
    out = out.rename(tmp_path / "pk")
    (tmp_path / "my pk.zip").rename(tmp_path / "pk.zip")
    code, text = cli(capsys, "verify", str(out.with_name("pk.zip")), "--no_run", "--expect", f"sha256:{digest}")
    assert code == 0 and "sha256" in line_with(text, "manifest digest")
    # a file changed together with its manifest line passes the checksums but not the digest
    alter_with_manifest(out)
    assert cli(capsys, "verify", str(out), "--no-run")[0] == 0
    code, text = cli(capsys, "verify", str(out), "--no-run", "--expect", digest.upper())
    assert code == 1
    assert "FAIL manifest digest" in line_with(text, "the manifest was changed")


def test_verify_names_ten_failures_of_a_kind_and_counts_the_rest(
    auto_opt_output: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = package(auto_opt_output, tmp_path / "b")
    for i in range(300):  # a folder of checkpoints copied in by mistake: it printed 300 FAIL lines
        (bundle / f"stray-{i:03d}.bin").write_bytes(b"x")
    code, text = cli(capsys, "verify", str(bundle), "--no-run")
    assert code == 1
    fails = [line for line in text.splitlines() if line.startswith("FAIL no extra files")]
    assert len(fails) == 11 and "290 more like these (300 in all)" in fails[-1], fails


def test_verify_refuses_a_malformed_expect_before_work(
    auto_opt_output: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = package(auto_opt_output, tmp_path / "b")
    before = snapshot(tmp_path)
    code, text = cli(capsys, "verify", str(bundle), "--expect", "abc123")
    assert code == 2 and "error:" in line_with(text, "is not a sha256 digest")
    assert snapshot(tmp_path) == before


def test_verify_takes_keywords_named_like_its_flags_and_package_takes_an_archive_name(
    auto_opt_output: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README promises keywords named like the flags: `olive_ext.verify(b, no_run=True)` was a TypeError (only
    run_model existed), and a misspelt keyword a TypeError without a "did you mean". `package -o tone.zip --zip`
    wrote a folder tone.zip and an archive tone.zip.zip."""
    import olive_ext

    code, _ = cli(capsys, "package", "-m", str(auto_opt_output), "-o", str(tmp_path / "tone.zip"), "--zip")
    assert code == 0 and (tmp_path / "tone").is_dir() and zipfile.is_zipfile(tmp_path / "tone.zip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tone", "tone.zip"]
    assert olive_ext.verify(tmp_path / "tone.zip", no_run=True).ok
    assert olive_ext.verify(tmp_path / "tone", run_model=False).ok
    with pytest.raises(olive_ext.RecipeError, match="did you mean 'no_run'"):
        olive_ext.verify(tmp_path / "tone", noRun=True)
    with pytest.raises(olive_ext.RecipeError, match="not both"):
        olive_ext.verify(tmp_path / "tone", run_model=False, no_run=True)


def test_a_text_template_model_without_a_chat_template_verifies(auto_opt_output: Path, tmp_path: Path) -> None:
    """A fine-tune on a --text_template of a base model with no chat template failed verify's "chat template" check
    whatever was done (the model ships none and never used one); the manifest's text_template says how it is
    prompted, and the check passes on it. A model with neither still fails it."""
    import shutil

    source = shutil.copytree(auto_opt_output, tmp_path / "src")
    (source / "model" / "chat_template.jinja").unlink(missing_ok=True)
    tok_config = source / "model" / "tokenizer_config.json"
    tok_config.write_text(json.dumps({k: v for k, v in json.loads(tok_config.read_text()).items()
                                      if k != "chat_template"}))  # fmt: skip
    bare = package(source, tmp_path / "bare")
    assert [c.ok for c in verify(bare, run_model=False).checks if c.name == "chat template"] == [False]
    info = json.loads((source / "model_config.json").read_text())
    (source / "model_config.json").write_text(json.dumps({**info, "text_template": "Phrase: {phrase}\nTone: {tone}"}))
    bundle = package(source, tmp_path / "b")
    report = verify(bundle, run_model=False)
    assert report.ok and any(c.name == "chat template" and "text_template" in c.detail for c in report.checks)


# ---- --zip never replaces an existing archive unasked ----


def test_package_zip_keeps_an_existing_archive_without_overwrite(
    auto_opt_output: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pk.zip").write_bytes(b"someone else's archive")
    before = snapshot(tmp_path)
    code, text = cli(capsys, "package", "-m", str(auto_opt_output), "-o", str(tmp_path / "pk"), "--zip")
    assert code == 2
    assert "nothing was written" in line_with(text, "pk.zip already exists")
    assert snapshot(tmp_path) == before  # no bundle folder, no staging folder, the zip untouched
    code, _ = cli(capsys, "package", "-m", str(auto_opt_output), "-o", str(tmp_path / "pk"), "--zip", "--overwrite")
    assert code == 0 and zipfile.is_zipfile(tmp_path / "pk.zip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pk", "pk.zip"]
    # replaced without --zip: the archive of the bundle replaced stays, and verified as if current; said now
    code, text = cli(capsys, "package", "-m", str(auto_opt_output), "-o", str(tmp_path / "pk"), "--overwrite")
    assert code == 0 and "pk.zip, beside the bundle, was left as it was" in " ".join(text.split())


def test_zip_is_named_after_the_whole_folder_name(auto_opt_output: Path, tmp_path: Path) -> None:
    bundle = package(auto_opt_output, tmp_path / "tone-1.0", make_zip=True)
    assert (tmp_path / "tone-1.0.zip").is_file() and not (tmp_path / "tone-1.zip").exists()
    assert verify(tmp_path / "tone-1.0.zip", run_model=False).ok and bundle.is_dir()


# ---- signatures (OpenSSF model-signing, local key, no network) ----


def test_signed_bundle_verifies_and_an_altered_one_fails_digest_and_signature(
    auto_opt_output: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_network: None
) -> None:
    key, pub = make_keys(tmp_path)
    out = tmp_path / "signed"
    code, text = cli(capsys, "package", "-m", str(auto_opt_output), "-o", str(out), "--zip", "--sign_key", str(key))
    assert code == 0 and (out / "bundle.sig").is_file()
    assert "bundle.sig" in line_with(text, "signed:")
    digest = hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    for target in (out, out.with_name("signed.zip")):
        code, text = cli(capsys, "verify", str(target), "--no_run", "--expect", digest, "--public_key", str(pub))
        assert code == 0, text
        assert "ok" in line_with(text, "verified with key.pub.pem")
    # an empty key was taken as no key: "bundle verified", exit 0, the signature never checked
    for empty in ("", " "):
        code, text = cli(capsys, "verify", str(out), "--no_run", "--public_key", empty)
        assert code == 2 and "--public_key is empty" in text and "verified" not in text, text
    # someone else's key does not verify it
    _, other_pub = make_keys(tmp_path, "other")
    code, text = cli(capsys, "verify", str(out), "--no_run", "--public_key", str(other_pub))
    assert code == 1 and "FAIL signature" in line_with(text, "signed with a different key")
    # a file and its manifest line changed together: the digest and the signature both fail
    alter_with_manifest(out)
    code, text = cli(capsys, "verify", str(out), "--no_run", "--expect", digest, "--public_key", str(pub))
    assert code == 1
    assert "FAIL manifest digest" in line_with(text, "the manifest was changed")
    assert "FAIL signature" in line_with(text, "signed content changed")
    assert "run.py" in line_with(text, "signed content changed")
    # a signature file replaced by garbage said "JSONDecodeError: Expecting value: line 1 column 1"
    (out / "bundle.sig").write_text("garbage\n")
    code, text = cli(capsys, "verify", str(out), "--no_run", "--public_key", str(pub))
    assert code == 1 and "FAIL signature" in line_with(text, "bundle.sig is not a model-signing signature"), text


def test_a_signed_bundle_is_hashed_once_and_its_signed_digests_meet_the_manifest(
    auto_opt_output: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import olive_ext.deploy.verify as verify_module
    from olive_ext.deploy.signature import sign_bundle

    key, pub = make_keys(tmp_path)
    bundle = package(auto_opt_output, tmp_path / "signed", sign_key=key)
    hashed: list[str] = []
    real = verify_module.hash_regular

    def counting(path: Path) -> tuple[str, int]:
        hashed.append(path.name)
        return real(path)

    monkeypatch.setattr(verify_module, "hash_regular", counting)
    report = verify(bundle, run_model=False, public_key=pub)
    assert report.ok, report.checks
    assert hashed == []  # model-signing's pass is the only one: its signed digests are compared with the manifest
    # a signer's manifest that lies about a file is caught by those signed digests
    manifest = json.loads((bundle / "manifest.json").read_text())
    entry = next(e for e in manifest["files"] if e["path"] == "run.py")
    entry["sha256"] = "0" * 64
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    sign_bundle(bundle, key)
    report = verify(bundle, run_model=False, public_key=pub)
    failed = {c.name: c.detail for c in report.checks if not c.ok}
    assert "signature" not in failed and "run.py" in failed["checksum"]
    assert verify(bundle, run_model=False).ok is False and hashed  # unsigned check: our own hashing


def test_signature_is_not_checked_silently(auto_opt_output: Path, tmp_path: Path) -> None:
    key, pub = make_keys(tmp_path)
    unsigned = package(auto_opt_output, tmp_path / "unsigned")
    report = verify(unsigned, run_model=False, public_key=pub)
    assert not report.ok and any("not signed" in c.detail for c in report.checks if not c.ok)
    signed = package(auto_opt_output, tmp_path / "signed", sign_key=key)
    notes = [c for c in verify(signed, run_model=False).checks if c.name == "signature"]
    assert len(notes) == 1 and "not checked" in notes[0].detail


def test_bad_keys_are_refused_before_any_work(
    auto_opt_output: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    ed = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "ed.pem").write_bytes(
        ed.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (tmp_path / "junk.pem").write_text("not a key\n")
    before = snapshot(tmp_path)
    for key, message in (
        ("missing.pem", "does not exist"),
        ("junk.pem", "is not a PEM private key"),
        ("ed.pem", "model-signing signs with elliptic-curve keys"),
    ):
        argv = ["package", "-m", str(auto_opt_output), "-o", str(tmp_path / "b"), "--sign_key", str(tmp_path / key)]
        code, text = cli(capsys, *argv)
        assert code == 2 and "error:" in line_with(text, message)
        assert snapshot(tmp_path) == before
    bundle = package(auto_opt_output, tmp_path / "b")
    before = snapshot(tmp_path)
    code, text = cli(capsys, "verify", str(bundle), "--public_key", str(tmp_path / "junk.pem"))
    assert code == 2 and "error:" in line_with(text, "is not a PEM public key")
    assert snapshot(tmp_path) == before


def test_missing_model_signing_names_the_pip_command(
    auto_opt_output: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key, pub = make_keys(tmp_path)
    monkeypatch.setitem(sys.modules, "model_signing", None)  # as if the extra were not installed
    before = snapshot(tmp_path)
    code, text = cli(capsys, "package", "-m", str(auto_opt_output), "-o", str(tmp_path / "b"), "--sign_key", str(key))
    assert code == 1 and "model-signing" in line_with(text, "needs the Python package")
    assert "pip install 'olive-ext[sign]'" in line_with(text, "hint:")
    assert snapshot(tmp_path) == before
    bundle = package(auto_opt_output, tmp_path / "b")
    before = snapshot(tmp_path)
    code, text = cli(capsys, "verify", str(bundle), "--public_key", str(pub))
    assert code == 1 and "--public_key" in line_with(text, "needs the Python package 'model-signing'")
    assert snapshot(tmp_path) == before


def test_an_encrypted_key_reads_its_password_from_the_environment(
    auto_opt_output: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())
    encrypted = tmp_path / "enc.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    pub = tmp_path / "enc.pub.pem"
    pub.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    monkeypatch.delenv("OLIVE_EXT_SIGN_KEY_PASSWORD", raising=False)
    with pytest.raises(UserInputError, match="OLIVE_EXT_SIGN_KEY_PASSWORD"):
        package(auto_opt_output, tmp_path / "b", sign_key=encrypted)
    assert not (tmp_path / "b").exists()
    monkeypatch.setenv("OLIVE_EXT_SIGN_KEY_PASSWORD", "wrong")  # its hint was to make a new key
    with pytest.raises(UserInputError, match="password") as wrong:
        package(auto_opt_output, tmp_path / "b", sign_key=encrypted)
    assert wrong.value.hint == "set OLIVE_EXT_SIGN_KEY_PASSWORD to this key's password"
    monkeypatch.setenv("OLIVE_EXT_SIGN_KEY_PASSWORD", "s3cret")
    bundle = package(auto_opt_output, tmp_path / "b", sign_key=encrypted)
    assert verify(bundle, run_model=False, public_key=pub).ok
    # a file removed: its signature said "bundle.sig is not a model-signing signature ... (damaged or replaced"
    (bundle / "README.md").unlink()
    signature = {c.name: c for c in verify(bundle, run_model=False, public_key=pub).checks}["signature"]
    assert not signature.ok and signature.detail == "files removed after signing: README.md", signature.detail


def test_adapters_are_bundled_checked_and_their_names_sanitised(tiny_llama: Path, tmp_path: Path) -> None:
    from tiny_models import make_random_adapter

    from olive_ext.workflows.generate_adapter import GenerateAdapterOptions, generate_adapters

    adapters = [make_random_adapter(tiny_llama, tmp_path / "adapters" / "tone", seed=1, r=4)]
    source = tmp_path / "ga"
    generate_adapters(
        GenerateAdapterOptions(
            model_name_or_path=str(tiny_llama),
            adapter_path=[str(a) for a in adapters],
            output_path=str(source),
            cache_dir=str(tmp_path / "cache"),
        )
    )
    bundle = package(source, tmp_path / "b")
    assert (bundle / "adapters" / "tone.onnx_adapter").is_file()
    checks = {c.name: c for c in verify(bundle).checks}
    assert checks["checksums"].ok and checks["load"].ok
    assert any(n.startswith("end of turn (adapter tone") for n in checks)
    # a source whose model_config.json sends an adapter outside the folder is refused before any work
    config = json.loads((source / "model_config.json").read_text())
    (source / "model_config.json").write_text(json.dumps({**config, "adapters": {"tone": "../../etc/passwd"}}))
    with pytest.raises(UserInputError, match="not a file inside"):
        package(source, tmp_path / "c")
    (source / "model_config.json").write_text(
        json.dumps({**config, "adapters": {"../tone": "adapters/tone.onnx_adapter"}})
    )
    with pytest.raises(UserInputError, match="not a plain file name"):
        package(source, tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_bundle_names_and_versions_are_what_ollama_and_file_names_take(tmp_path: Path) -> None:
    """'../../evil' and 'my model' went into the bundle's `ollama create` line unquoted; an empty version into the
    manifest. The default name comes from the source folder, its other characters as '-'."""
    import olive_ext
    from olive_ext.deploy.bundle import default_bundle_name

    for bad in ({"name": "../../evil"}, {"name": "my model"}, {"version": ""}, {"version": "1.0/../x"}):
        with pytest.raises(olive_ext.RecipeError, match=f"{next(iter(bad))}: String should match pattern"):
            olive_ext.package(tmp_path, tmp_path / "out", **bad)
    (tmp_path / "my tone model (v2)").mkdir()
    assert default_bundle_name(tmp_path / "my tone model (v2)") == "my-tone-model-v2"


def test_a_version_given_as_a_number_is_its_text() -> None:
    """`package(..., version=2)` from Python (or YAML's `version: 1.0`) was refused as no string."""
    from olive_ext.workflows.package import PackageOptions

    assert PackageOptions(model_name_or_path="a", output_path="b", version=2).version == "2"  # type: ignore[arg-type]
    assert PackageOptions(model_name_or_path="a", output_path="b", version=1.5).version == "1.5"  # type: ignore[arg-type]


def test_bundle_run_py_names_an_unknown_adapter_and_a_long_prompt_in_one_line(
    auto_opt_output: Path, tmp_path: Path
) -> None:
    """`python run.py --adapter nope` in a bundle ended in a ValueError traceback."""
    import subprocess

    from olive_ext.deploy.bundle import package

    bundle = package(auto_opt_output, tmp_path / "b")
    proc = subprocess.run([sys.executable, str(bundle / "run.py"), "--adapter", "nope", "--prompt", "hi"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and "unknown adapter 'nope'; adapters: none" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    # a prompt longer than the context, or more new tokens than it holds: onnxruntime-genai's RuntimeError
    # "max_length (1218) cannot be greater than model context_length (512)" ended the script (and a chat session)
    long_prompt = "hello world " * 600
    run_py = [sys.executable, str(bundle / "run.py")]
    proc = subprocess.run([*run_py, "--prompt", long_prompt], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "this model's context holds 512; shorten it" in proc.stderr, proc.stderr
    proc = subprocess.run([*run_py, "--prompt", "hi", "--max_new_tokens", "100000"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr
    proc = subprocess.run(run_py, input=f"{long_prompt}\nhi\n\n", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr.count("shorten it") == 1 and proc.stdout.count("> ") == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    # a line that is not UTF-8 ended the session in onnxruntime-genai's "invalid string: surrogate" traceback
    done = subprocess.run(run_py, input=b"hi\n\xff\nhi\n\n", capture_output=True, timeout=120)
    assert done.returncode == 0 and b"not UTF-8 text; skipped" in done.stderr and b"Traceback" not in done.stderr
    assert done.stdout.count(b"> ") == 4, done.stderr


def test_a_model_changed_after_it_was_measured_is_not_packaged_with_its_metrics(
    auto_opt_output: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """auto-opt records the digest of every file it wrote; package compared nothing, and a model.onnx.data replaced
    after the measurement was bundled with the measured metrics and its new checksums. Changed weights are refused
    (nothing written), a changed config file is said, an added file (a chat template copied in) is fine."""
    import shutil

    source = shutil.copytree(auto_opt_output, tmp_path / "src")
    recorded = json.loads((source / "model_config.json").read_text())["file_sha256"]
    weights = next(rel for rel in recorded if rel.endswith((".onnx", ".data")))
    assert recorded[weights] == hashlib.sha256((source / weights).read_bytes()).hexdigest()
    (source / "model" / "extra.txt").write_text("added by the user\n")
    package(source, tmp_path / "added")  # an added file is no change to what was measured

    config = source / "model" / "genai_config.json"
    config.write_text(config.read_text().replace("{", "{ ", 1))
    with caplog.at_level("WARNING", logger="olive_ext"):
        package(source, tmp_path / "config")
    assert "model/genai_config.json changed after the model was measured" in caplog.text
    # another model's graph added beside the measured one (genai_config.json can point at it): not what was measured
    (source / "model" / "other.onnx").write_bytes((source / weights).read_bytes())
    with pytest.raises(UserInputError, match=r"model/other\.onnx \(added\)"):
        package(source, tmp_path / "other")
    (source / "model" / "other.onnx").unlink()

    data = bytearray((source / weights).read_bytes())
    data[-1] ^= 0xFF
    (source / weights).write_bytes(bytes(data))
    with pytest.raises(UserInputError, match=rf"changed after it was measured: {weights} \(changed\)") as err:
        package(source, tmp_path / "b")
    assert "again" in (err.value.hint or "") and not (tmp_path / "b").exists()
    (source / weights).unlink()
    with pytest.raises(UserInputError, match=rf"{weights} \(missing\)"):
        package(source, tmp_path / "b")


def test_a_chat_template_changed_after_fine_tuning_is_not_packaged(auto_opt_output: Path, tmp_path: Path) -> None:
    """package wrote a bundle whose chat template was edited after the fine-tune (a warning only), and the bundle's
    own verify then failed "differs from the one used in fine-tuning". Refused before anything is written."""
    import shutil

    source = shutil.copytree(auto_opt_output, tmp_path / "src")
    info = json.loads((source / "model_config.json").read_text())
    template = source / "model" / "chat_template.jinja"
    original = template.read_text() if template.exists() else "{{ messages[0]['content'] }}"
    template.write_text(original)
    marked = {**info, "finetune_chat_template_sha256": hashlib.sha256(original.encode()).hexdigest()}
    (source / "model_config.json").write_text(json.dumps(marked))
    assert verify(package(source, tmp_path / "same"), run_model=False).ok
    template.write_text(original + "{# x #}")
    with pytest.raises(UserInputError, match="not the one the model was fine-tuned and measured with"):
        package(source, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_package_refuses_links_and_special_files_in_the_model_folder(
    auto_opt_output: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A link in model/ was copied as what it points to: /dev/zero filled the disk without end, a private file
    outside the output went into the bundle readable by all; a FIFO was a shutil traceback."""
    import os
    import shutil

    source = tmp_path / "src"
    shutil.copytree(auto_opt_output, source)
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    for made in (lambda p: p.symlink_to("/dev/zero"), lambda p: p.symlink_to(secret), lambda p: os.mkfifo(p)):
        made(link := source / "model" / "extra.bin")
        code, text = cli(capsys, "package", "-m", str(source), "-o", str(tmp_path / "b"))
        assert code == 2 and "holds what a bundle does not carry: extra.bin" in text, text
        assert not (tmp_path / "b").exists()
        link.unlink()
    assert main(["package", "-m", str(source), "-o", str(tmp_path / "b")]) == 0
