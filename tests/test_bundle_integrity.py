"""verify on hostile bundles: links and special files, names that leave the bundle, broken manifests and zips.

Each case asserts the exit code, a message on one line, that nothing was written (the bundle is
unchanged and no extraction folder is left behind) and that no check hangs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_package import auto_opt_output, cli, line_with, snapshot  # noqa: F401  (auto_opt_output: a fixture)

from olive_ext.deploy.bundle import package

CapSys = pytest.CaptureFixture[str]


@pytest.fixture(scope="module")
def pristine(auto_opt_output: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """One bundle (and its zip), packaged once; tests change copies of it."""
    return package(auto_opt_output, tmp_path_factory.mktemp("pristine") / "bundle", make_zip=True)


@pytest.fixture
def bundle(pristine: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "bundle"))


@pytest.fixture(autouse=True)
def extraction_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """verify extracts zips under tempfile's folder: point it here, and require it empty afterwards."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    assert not any(folder.iterdir()), "verify left files behind"


@pytest.fixture(autouse=True)
def deadline() -> Iterator[None]:
    """A verify that reads /dev/zero or opens a FIFO would hang; fail after 60 s instead."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError("verify hung")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def verify_fails(capsys: CapSys, target: Path, fragment: str, *flags: str, code: int = 1) -> str:
    """Run `olive-ext verify`, check the exit code and that nothing changed; return the line holding fragment."""
    root = target if target.is_dir() else target.parent
    before = snapshot(root)
    got, text = cli(capsys, "verify", str(target), *flags)
    assert got == code, text
    assert snapshot(root) == before
    return line_with(text, fragment)


def edit_manifest(bundle: Path, change: object) -> None:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)  # type: ignore[operator]
    path.write_text(json.dumps(manifest))


# ---- links and special files in a bundle folder: named, never followed or read ----


def test_a_link_to_dev_zero_is_named_not_read(bundle: Path, capsys: CapSys) -> None:
    (bundle / "model" / "genai_config.json").unlink()
    os.symlink("/dev/zero", bundle / "model" / "genai_config.json")
    line = verify_fails(capsys, bundle, "genai_config.json")  # with the model run: nothing may read it
    assert line.startswith("FAIL regular files only") and "symbolic link to /dev/zero (a character device)" in line


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda b, out: os.symlink(b / "gone", b / "model" / "extra.bin"), "does not exist (dangling)"),
        (lambda b, out: os.symlink(out, b / "adapters"), "symbolic link to the folder"),
        (lambda b, out: os.symlink(out / "secret.txt", b / "notes.txt"), "a regular file"),
        (lambda b, out: os.mkfifo(b / "model" / "pipe"), "named pipe (FIFO)"),
        (lambda b, out: os.symlink("loop", b / "loop"), "cannot be resolved"),
    ],
    ids=["dangling", "folder-link", "file-link", "fifo", "loop"],
)
def test_links_and_special_files_fail_clearly(
    bundle: Path, tmp_path: Path, capsys: CapSys, make: object, message: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not part of the bundle")
    make(bundle, outside)  # type: ignore[operator]
    line = verify_fails(capsys, bundle, message)
    assert line.startswith("FAIL regular files only")
    assert (outside / "secret.txt").read_text() == "not part of the bundle"


def test_a_manifest_that_is_a_link_is_not_read(bundle: Path, tmp_path: Path, capsys: CapSys) -> None:
    real = tmp_path / "elsewhere.json"
    shutil.move(bundle / "manifest.json", real)
    os.symlink(real, bundle / "manifest.json")
    assert "manifest.json: a symbolic link" in verify_fails(capsys, bundle, "manifest.json")


# ---- names from the manifest are sanitised ----


def test_adapter_names_that_leave_the_bundle_are_refused(bundle: Path, tmp_path: Path, capsys: CapSys) -> None:
    (tmp_path / "evil.onnx_adapter").write_bytes(b"not an adapter")
    edit_manifest(bundle, lambda m: m.update(adapters=["../../evil"]))
    line = verify_fails(capsys, bundle, "'../../evil'")  # with the model run: it must stop before loading
    assert line.startswith("FAIL manifest") and "not a plain file name" in line and "not followed" in line


@pytest.mark.parametrize("path", ["../outside.txt", "/etc/passwd", "model/../run.py", "a\\b"])
def test_file_paths_that_leave_the_bundle_are_refused(bundle: Path, capsys: CapSys, path: str) -> None:
    edit_manifest(bundle, lambda m: m["files"].append({"path": path, "sha256": "0" * 64, "size": 1}))
    assert "it was not followed" in verify_fails(capsys, bundle, "FAIL manifest", "--no_run")


# ---- manifests that cannot be trusted: a failed check, never a traceback ----


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{ not json", "is not valid JSON"),
        (b"[1, 2, 3]", "must hold a JSON object, found a list"),
        (b"\xff\xfe{}", "is not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "manifest.json"),
        (b'{"files": {"a": 1}}', "'files' must be a list"),
        (b'{"files": [{"path": "run.py", "size": 3}]}', "'sha256' is missing"),
        (b'{"files": [{"path": "run.py", "sha256": "x", "size": -1}]}', "'size' is missing or not a non-negative"),
        # a newer bundle format, or none named, was verified by rules it may not follow
        (b'{"schema_version": 99, "files": []}', "schema_version 99 is newer than this olive-ext reads (1)"),
        (b'{"schema_version": "two", "files": []}', "'schema_version' must be a whole number (1 here), found string"),
        (b'{"files": []}', "'schema_version' must be a whole number (1 here), found null"),
    ],
    ids=["not-json", "list", "not-utf8", "deep", "files-not-list", "no-sha256", "bad-size", "newer", "text", "none"],
)
def test_broken_manifests_fail_the_manifest_check(bundle: Path, capsys: CapSys, content: bytes, message: str) -> None:
    (bundle / "manifest.json").write_bytes(content)
    assert verify_fails(capsys, bundle, message).startswith("FAIL manifest")


def test_a_manifest_that_lists_no_model_fails(tmp_path: Path, capsys: CapSys) -> None:
    """A folder holding only {"files": [], "schema_version": 1} verified as "bundle verified" (--no_run)."""
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "manifest.json").write_text('{"files": [], "schema_version": 1, "text_template": "{text}"}')
    assert "the manifest lists no model" in verify_fails(capsys, lonely, "lists no model")
    (lonely / "manifest.json").write_text('{"files": [], "schema_version": 1, "format": "gguf"}')
    assert "a .gguf file in model/" in verify_fails(capsys, lonely, "lists no model")


def test_file_names_cannot_write_to_the_terminal(bundle: Path, capsys: CapSys) -> None:
    """An extra file whose name held a newline and terminal escapes (erase line, conceal) replaced its FAIL line on
    a terminal with "ok checksums" and "bundle verified" lines of its own."""
    (bundle / "model" / "x\n\x1b[2K\x1b[1Gbundle verified\x1b[8m").write_text("")
    line = verify_fails(capsys, bundle, "is not in the manifest")
    assert "\x1b" not in line and "x\\n\\x1b[2K\\x1b[1Gbundle verified\\x1b[8m" in line
    from olive_ext.deploy.archive import unsafe_members

    archive = bundle.parent / "named.zip"  # a zip member's name is printed in the refusal too
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("b/../x\x1b[2K", b"")
    assert unsafe_members(archive) == ["b/../x\\x1b[2K: leaves the folder ('..' or backslash)"]


def test_a_folder_the_manifest_does_not_fill_fails(bundle: Path, capsys: CapSys) -> None:
    """An empty folder model/chat_template.jinja/ passed the file checks and was then read as the chat template
    (IsADirectoryError traceback in verify and chat)."""
    (bundle / "model" / "chat_template.jinja").unlink(missing_ok=True)
    edit_manifest(bundle, lambda m: m.update(files=[f for f in m["files"] if f["path"] != "model/chat_template.jinja"]))
    (bundle / "model" / "chat_template.jinja").mkdir()
    verify_fails(capsys, bundle, "model/chat_template.jinja/ is a folder holding no file of the manifest")


def test_deep_folders_are_named_not_a_recursion_error(bundle: Path, tmp_path: Path, capsys: CapSys) -> None:
    """1100 nested folders in a bundle were a RecursionError traceback (verify, chat), and in a zip "damaged"."""
    import subprocess

    deep = "model/" + "a/" * 1100
    subprocess.run(["mkdir", "-p", deep], cwd=bundle, check=True)  # pathlib and shutil recurse as deep
    subprocess.run(["touch", deep + "x"], cwd=bundle, check=True)
    try:
        code, text = cli(capsys, "verify", str(bundle), "--no_run")
    finally:  # pytest's own clean-up of tmp_path recurses as deep
        subprocess.run(["rm", "-rf", "model/a"], cwd=bundle, check=True)
    assert code == 1 and "a/a/x is not in the manifest" in text
    archive = tmp_path / "deep.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("b/manifest.json", (bundle / "manifest.json").read_bytes())
        z.writestr("b/" + "a/" * 1100, b"")
    assert "1101 folders deep" in verify_fails(capsys, archive, "has unsafe members", code=2)


def test_expect_is_checked_before_a_zip_is_unpacked(pristine: Path, tmp_path: Path, capsys: CapSys) -> None:
    """A 1 MB zip whose edited manifest listed a 1 GB member of zeros was unpacked to /tmp before --expect failed it."""
    import hashlib

    genuine = hashlib.sha256((pristine / "manifest.json").read_bytes()).hexdigest()
    manifest = json.loads((pristine / "manifest.json").read_text())
    manifest["files"].append({"path": "model/zeros.bin", "sha256": "0" * 64, "size": 50 << 20})
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("b/manifest.json", json.dumps(manifest))
        z.writestr("b/model/zeros.bin", bytes(50 << 20))
        member = z.getinfo("b/model/zeros.bin")
    # its compressed bytes broken half way: unpacking it fails ("damaged", exit 2), so a report on the digest says
    # that nothing was unpacked before the digest was compared
    data = bytearray(archive.read_bytes())
    middle = member.header_offset + 30 + len(member.filename) + member.compress_size // 2
    data[middle : middle + 64] = os.urandom(64)
    archive.write_bytes(bytes(data))
    line = verify_fails(capsys, archive, "manifest digest", "--expect", genuine, "--no_run")
    assert "the manifest was changed" in line


# ---- zips ----


def _zip_from(folder: Path, archive: Path, mode: int | None = None) -> None:
    """Zip with Python's defaults (writestr gives members mode 0o600 and no file-type bits)."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                z.writestr(f"bundle/{p.relative_to(folder).as_posix()}", p.read_bytes())
        if mode is not None:
            info = zipfile.ZipInfo("bundle/model/device")
            info.create_system = 3
            info.external_attr = mode << 16
            z.writestr(info, b"")


def test_zip_members_with_permission_bits_only_are_regular_files(pristine: Path, tmp_path: Path) -> None:
    from olive_ext.deploy.verify import verify

    archive = tmp_path / "plain.zip"
    _zip_from(pristine, archive)
    with zipfile.ZipFile(archive) as z:
        assert {i.external_attr >> 16 for i in z.infolist()} == {0o600}
    report = verify(archive, run_model=False)
    assert report.ok, report.checks


def test_zip_device_members_are_refused_before_extraction(pristine: Path, tmp_path: Path, capsys: CapSys) -> None:
    archive = tmp_path / "device.zip"
    _zip_from(pristine, archive, mode=stat.S_IFCHR | 0o600)
    line = verify_fails(capsys, archive, "bundle/model/device", code=2)
    assert line.startswith("error:") and "a character device" in line and "nothing was extracted" in line


@pytest.mark.parametrize("trick", ["beos-link", "unicode-path"])
def test_zip_members_unzip_would_make_otherwise_are_refused(
    pristine: Path, tmp_path: Path, capsys: CapSys, trick: str
) -> None:
    """Both passed verify (even with --expect and a signature) and unzip then made something else: a link member
    marked as made on BeOS (the type bits were read for Unix members only), and two members whose Info-ZIP Unicode
    Path fields swapped their names (Python's zipfile ignores the field; unzip names files by it)."""
    source = zipfile.ZipFile(pristine.with_suffix(".zip"))
    archive = tmp_path / f"{trick}.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("/README.md"):
                if trick == "beos-link":
                    info.external_attr, info.create_system, data = (stat.S_IFLNK | 0o777) << 16, 16, b"/etc/hostname"
                else:
                    field = b"\x01" + zlib.crc32(info.filename.encode()).to_bytes(4, "little") + b"bundle/run.py"
                    info.extra = (0x7075).to_bytes(2, "little") + len(field).to_bytes(2, "little") + field
            z.writestr(info, data)
    line = verify_fails(capsys, archive, "bundle/README.md", "--no_run", code=2)
    assert "nothing was extracted" in line
    assert ("a symbolic link" if trick == "beos-link" else "Unicode Path") in line, line


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: b"PK\x03\x04 garbage " * 50, "is not a readable zip archive"),
        (lambda data: data[: len(data) // 2], "is not a readable zip archive"),
        (lambda data: b"", "is not a readable zip archive"),
        (lambda data: data[:200] + bytes(b ^ 0x5A for b in data[200:400]) + data[400:], "is damaged"),
    ],
    ids=["garbage", "truncated", "empty", "corrupt-member"],
)
def test_broken_zips_are_refused_with_a_message(
    pristine: Path, tmp_path: Path, capsys: CapSys, damage: object, message: str
) -> None:
    archive = tmp_path / "broken.zip"
    archive.write_bytes(damage(pristine.with_name("bundle.zip").read_bytes()))  # type: ignore[operator]
    assert verify_fails(capsys, archive, message, "--no_run", code=2).startswith("error:")


def test_a_zip_without_one_top_folder_is_refused(tmp_path: Path, capsys: CapSys) -> None:
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a/manifest.json", "{}")
        z.writestr("b/manifest.json", "{}")
    assert verify_fails(capsys, archive, "must hold one top folder", code=2).startswith("error:")


def test_a_path_that_is_neither_folder_nor_file_is_refused(tmp_path: Path, capsys: CapSys) -> None:
    """A path that does not exist is said to be missing (it was "neither a bundle folder nor a zip")."""
    line = verify_fails(capsys, tmp_path / "missing", f"{tmp_path / 'missing'} does not exist", code=2)
    assert line.startswith("error:")
    os.mkfifo(tmp_path / "pipe")
    assert verify_fails(capsys, tmp_path / "pipe", "neither a bundle folder nor a zip", code=2).startswith("error:")


def test_a_folder_without_a_manifest_is_refused_without_listing_it(tmp_path: Path, capsys: CapSys) -> None:
    """verify on a folder that is not a bundle (a home folder, say) names the missing manifest at once; it used to
    list and type-check every file below it first (all of /tmp took seconds and reported each link there). Not a
    bundle is bad input (exit 2), as a zip with two top folders is; a bundle that fails a check is exit 1."""
    from olive_ext.deploy.verify import verify
    from olive_ext.errors import UserInputError

    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "f").write_text("x")
    os.symlink("/etc/hostname", tmp_path / "a" / "link")
    with pytest.raises(UserInputError, match="not a bundle"):
        verify(tmp_path, run_model=False)
    line = verify_fails(capsys, tmp_path, "manifest.json", "--no_run", code=2)
    assert line.startswith("error:") and "not a bundle" in line, line


def test_a_zip_whose_one_top_folder_has_no_manifest_is_not_a_bundle(tmp_path: Path, capsys: CapSys) -> None:
    """A zip of one folder without manifest.json exited 1 ("FAIL manifest") while a zip of two folders exited 2: both
    are not a bundle, bad input, exit 2 with one error line; nothing is unpacked."""
    archive = tmp_path / "notes.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("notes/readme.txt", "not a bundle")
    line = verify_fails(capsys, archive, "manifest.json", "--no_run", code=2)
    assert line.startswith("error:") and "not a bundle" in line and "notes/" in line, line


def test_zip_members_the_manifest_does_not_vouch_for_are_not_unpacked(
    pristine: Path, tmp_path: Path, capsys: CapSys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 300 kB zip with a 200 MB member of zeros the manifest does not list was unpacked to /tmp before verify
    found it unlisted (a 50 MB zip could write 50 GB): members are now checked against the zip's manifest first."""
    extracted: list[Path] = []
    real = zipfile.ZipFile.extractall

    def spy(self: zipfile.ZipFile, path: object = None, *args: object, **kwargs: object) -> None:
        extracted.append(Path(str(path)))
        real(self, path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(zipfile.ZipFile, "extractall", spy)
    source = pristine.with_name("bundle.zip")
    extra, bigger, renamed = tmp_path / "extra.zip", tmp_path / "bigger.zip", tmp_path / "renamed.zip"
    with zipfile.ZipFile(source) as zi:
        for archive, change in ((extra, "add"), (bigger, "grow"), (renamed, "rename")):
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zo:
                for info in zi.infolist():
                    data = zi.read(info)
                    if change == "grow" and info.filename.endswith("genai_config.json"):
                        data += b" " * (8 << 20)
                    name = info.filename
                    if change == "rename" and name.endswith("/README.md"):
                        name = name[: -len(".md")] + ".txt"
                    zo.writestr(name, data)
                if change == "add":
                    zo.writestr("bundle/model/zeros.bin", b"\0" * (20 << 20))
    assert "model/zeros.bin is not in the manifest (not unpacked)" in verify_fails(capsys, extra, "zeros.bin")
    # a renamed member was named as an extra file only; the file the manifest lists is missing too
    assert "README.md is missing" in verify_fails(capsys, renamed, "README.md")
    line = verify_fails(capsys, bigger, "genai_config.json")
    assert "unpacks to" in line and "the manifest says" in line
    assert extracted == []


def test_chat_and_serve_say_when_a_bundle_is_not_what_was_packaged(
    bundle: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """chat and serve ran a bundle whose weights were changed after packaging without a word, and a FIFO in it
    hung chat for ever (verify said FAIL for both)."""
    import logging

    from olive_ext.errors import UserInputError
    from olive_ext.serve.backend import built_model_path

    hint = "give a bundle"
    with caplog.at_level(logging.WARNING, logger="olive_ext"):
        assert built_model_path(str(bundle), hint) == bundle
    assert not caplog.records  # as packaged: nothing said
    weights = next(p for p in (bundle / "model").iterdir() if p.name.endswith(".data"))
    data = bytearray(weights.read_bytes())
    data[100] ^= 1
    weights.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="olive_ext"):
        built_model_path(str(bundle), hint)
    assert "does not match its manifest (checksum: model/" in caplog.text
    caplog.clear()  # the bundle's model folder is the bundle's: it was run without a word
    with caplog.at_level(logging.WARNING, logger="olive_ext"):
        assert built_model_path(str(bundle / "model"), hint) == bundle / "model"
    assert "does not match its manifest (checksum: model/" in caplog.text
    caplog.clear()  # serve said it twice (its files hashed twice): the model path was checked again for its names
    from olive_ext.serve import ServeOptions, build_app

    with caplog.at_level(logging.WARNING, logger="olive_ext"):
        build_app(ServeOptions(model_name_or_path=str(bundle)))
    assert caplog.text.count("does not match its manifest") == 1, caplog.text
    template = bundle / "model" / "chat_template.jinja"
    template.unlink()
    os.mkfifo(template)
    with pytest.raises(UserInputError, match="holds a link or a special file"):
        built_model_path(str(bundle), hint)



@pytest.mark.parametrize("command", ["chat", "serve"])
def test_a_bundle_whose_genai_config_was_edited_names_the_changed_file(
    bundle: Path, capsys: CapSys, command: str
) -> None:
    """chat and serve warned that the bundle's checksums did not match, then failed with onnxruntime-genai's raw
    JSON parse error (serve: json's traceback): the error names the changed file and what to do, on one line."""
    config = bundle / "model" / "genai_config.json"
    config.write_text(config.read_text().replace('"model": {', '"model": {,', 1))
    extra = ["--prompt", "hi"] if command == "chat" else ["--port", "0"]  # invalid JSON: serve never listens
    code, text = cli(capsys, command, "-m", str(bundle), *extra)
    assert code == 2, text
    line = line_with(text, "model/genai_config.json changed since the bundle was packaged")
    assert line.startswith("error:") and "line " in line and "column " in line, line
    assert f"olive-ext verify {bundle}" in text and "package" in text, text


def test_an_output_folder_whose_genai_config_is_not_json_names_the_file_and_place(
    auto_opt_output: Path, tmp_path: Path, capsys: CapSys  # noqa: F811
) -> None:
    """A plain auto-opt output (no manifest) with a broken genai_config.json: our message names the file and where
    the JSON breaks (chat said onnxruntime-genai's parse error; serve ended in json's traceback)."""
    out = Path(shutil.copytree(auto_opt_output, tmp_path / "out"))
    config = next(out.rglob("genai_config.json"))
    config.write_text(config.read_text().replace('"model": {', '"model": {,', 1))
    for command, extra in (("chat", ["--prompt", "hi"]), ("serve", ["--port", "0"])):
        code, text = cli(capsys, command, "-m", str(out), *extra)
        assert code == 2, text
        line = line_with(text, f"{config} is not valid JSON")
        assert line.startswith("error:") and "line " in line and "column " in line, line
