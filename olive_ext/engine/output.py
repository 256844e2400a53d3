"""Writing a run's output folder without ever clobbering one by accident.

Everything is written to a hidden staging folder beside the destination and moved
into place at the end; an existing non-empty destination is replaced only with
``overwrite``, and only when it is an olive-ext output: ``overwrite`` once deleted a
home folder handed to it as the output.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from olive_ext.cache import pid_alive, writable_problem
from olive_ext.errors import OutputExistsError, UserInputError, disk_full

# what an olive-ext output folder holds at its top: model_config.json (finetune, auto-opt with a choice, quantize,
# export, generate-adapter), candidates.json (every recipe run), manifest.json (package's bundles). recipe.yaml is no
# marker: users name their own recipes so, and a project folder holding one was replaced whole.
OUTPUT_MARKERS = ("model_config.json", "candidates.json", "manifest.json")
# the names an output lists as its own (every top-level entry olive-ext wrote there); a bundle lists its files in
# manifest.json instead (verify refuses a file the manifest does not list, so none is added to a bundle)
WRITTEN = ".olive-ext-output.json"
# what olive-ext wrote at an output's top before outputs listed their names (a folder written by an older release)
_EARLIER_NAMES = frozenset({"model", "adapter", "adapters", "model_config.json", "candidates.json", "lineage.json",
                            "recipe.yaml", "report.md", "report.html", "adapter_report.json", "README.md", "run.py",
                            "manifest.json", "bundle.sig", "Modelfile", "train_metrics.json"})  # fmt: skip


def _manifest_paths(p: Path) -> set[str] | None:
    """The file paths a bundle's manifest.json in ``p`` lists; None when there is none or it cannot be read."""
    try:
        files = json.loads((p / "manifest.json").read_text(encoding="utf-8")).get("files") or []
        return {str(f["path"]) for f in files if isinstance(f, dict) and "path" in f}
    except (OSError, ValueError, AttributeError, TypeError):
        return None


def _written_names(p: Path, listed: set[str] | None) -> set[str] | None:
    """The top-level names olive-ext wrote in the output folder ``p`` (``listed``: its manifest's paths, for a
    bundle), or None when it is no olive-ext output."""
    try:
        written = json.loads((p / WRITTEN).read_text(encoding="utf-8"))
        if isinstance(written, list) and all(isinstance(n, str) for n in written):  # + what a workflow adds after
            return {*written, WRITTEN, *_EARLIER_NAMES}  # (finetune's train_metrics.json and adapter/)
    except (OSError, ValueError):
        pass
    if listed is not None:
        return {*(n.split("/", 1)[0] for n in listed), "manifest.json", "bundle.sig"}
    if (p / "manifest.json").is_file():  # a manifest that cannot be read
        return None
    if any((p / name).is_file() for name in OUTPUT_MARKERS):
        return set(_EARLIER_NAMES)
    return None


def _unlisted_in_bundle(p: Path, listed: set[str]) -> list[str]:
    """Files inside a bundle's folders that its manifest does not list (a user's results saved in model/): the
    top-level names alone passed them, and --overwrite deleted them."""
    found: list[str] = []
    for top in sorted({n.split("/", 1)[0] for n in listed if "/" in n}):
        if (p / top).is_dir() and not (p / top).is_symlink():
            for folder, dirs, names in os.walk(p / top):  # links are not followed: a linked folder is one entry
                names += [d for d in dirs if Path(folder, d).is_symlink()]
                found += [Path(folder, n).relative_to(p).as_posix() for n in names]
    return sorted(rel for rel in found if rel not in listed)


def _replace_problem(p: Path) -> str | None:
    """Why the existing non-empty folder ``p`` must not be replaced by --overwrite, or None when it may be: only an
    olive-ext output holding nothing but what olive-ext wrote is replaced."""
    real = p.resolve()
    if real == Path.home().resolve() or real.parent == real:  # even with a marker file in it
        return "it is your home folder" if real == Path.home().resolve() else "it is the file system's root"
    listed = _manifest_paths(p)  # read once: the top-level names and the files inside a bundle's folders
    written = _written_names(p, listed)
    if written is None:
        sample = ", ".join(sorted(e.name for e in p.iterdir())[:3])
        return f"it holds files olive-ext did not write ({sample}; no {' / '.join(OUTPUT_MARKERS[:2])})"
    others = sorted(e.name for e in p.iterdir() if e.name not in written) or _unlisted_in_bundle(p, listed or set())
    if others:
        more = f" and {len(others) - 3} more" if len(others) > 3 else ""
        return f"it holds files olive-ext did not write there ({', '.join(others[:3])}{more}), which would be lost"
    return None


def ensure_output_free(path: str | Path, overwrite: bool) -> Path:
    """Fail before any work when ``path`` exists, is not empty, and overwrite is off (or is empty text)."""
    if not str(path).strip():  # `-o ""` (an unset variable): it was read as the current folder
        raise UserInputError("the output folder is empty text (-o \"\")", hint="give the output a folder: -o out")
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise UserInputError(
            f"{p} is a file, and the output is a folder; nothing was written",
            hint="choose a folder's name with -o/--output_path (the file is never replaced)",
        )
    if p.is_dir():
        here = Path.cwd().resolve()
        if p.resolve() == here or p.resolve() in here.parents:  # the output is replaced whole when written
            raise UserInputError(
                f"the output folder {p} is {'the current folder' if p.resolve() == here else 'above the current one'}"
                f" ({here}): writing it would delete it; nothing was written",
                hint="give the output a folder of its own: -o out",
            )
    if p.is_dir() and any(p.iterdir()):
        if not overwrite:
            raise OutputExistsError(str(p))
        problem = _replace_problem(p)
        if problem:
            raise UserInputError(
                f"output folder {p} is not replaced although overwrite was asked: {problem}; nothing was written",
                hint="overwrite replaces only a folder olive-ext wrote: choose a new or empty folder with "
                "-o/--output_path (or remove what is in it yourself)",
            )
    return p


def check_output(path: str | Path, overwrite: bool) -> Path:
    """Before any work: ``path`` is free (or may be replaced) and its folder can be written; nothing is created."""
    p = ensure_output_free(path, overwrite)
    # the output is staged beside the destination and renamed into place, so its parent must take new entries
    for folder in (p.parent, p) if p.is_dir() else (p.parent,):
        problem = writable_problem(folder)
        if problem:
            raise UserInputError(
                f"output folder {p} cannot be written ({problem}); nothing was written",
                hint="choose an output folder you can write with -o/--output_path",
            )
    return p


def check_model_given(model: str, what: str = "input model") -> None:
    """An empty path is no input ("" read as a path is the current folder, which it was taken for)."""
    if not model.strip():
        raise UserInputError(f"the {what} path is empty", hint="give a model folder, .gguf file, hub id or pypi: name "
                             "with -m" if what == "input model" else None)  # fmt: skip


def check_apart(source: str | Path, output: str | Path, what: str = "input model") -> None:
    """The output folder must be neither an input's folder, nor inside it, nor hold it: writing there would
    change the input, and replacing the output (--overwrite) would delete it. Hub ids and pypi: names pass;
    ``what`` names the input (the input model, a data file)."""
    check_model_given(str(source), what)
    model, out = Path(source).expanduser(), Path(output).expanduser()
    if not model.exists():
        return
    model, out = model.resolve(), out.resolve()
    if model.is_dir() and (out == model or model in out.parents):  # a .gguf/.onnx file's folder may take outputs
        where = "is" if out == model else "is inside"
        raise UserInputError(
            f"the output folder {out} {where} the {what}'s folder {model}; nothing was written",
            hint="choose an output folder outside the input (-o/--output_path)",
        )
    if out in model.parents:
        raise UserInputError(
            f"the output folder {out} holds the {what} {model}: replacing it would delete the input; "
            "nothing was written",
            hint="choose an output folder that does not hold the input (-o/--output_path)",
        )


def failed_run_output(dest: Path, overwrite: bool) -> Path:
    """Where a run that chose nothing writes its candidates and report: ``dest``, except when ``overwrite`` would
    replace the model or adapter a previous run left there (a failed rerun once deleted the model that worked):
    then ``<dest>-failed`` beside it (``-failed-<time>`` when that name holds something olive-ext may not replace)."""
    if not overwrite or not any((dest / name).exists() for name in ("model", "adapter")):
        return dest
    beside = dest.with_name(dest.name + "-failed")
    if beside.is_dir() and any(beside.iterdir()) and _replace_problem(beside):
        beside = dest.with_name(f"{dest.name}-failed-{time.strftime('%Y%m%d-%H%M%S')}")
    return beside


@contextlib.contextmanager
def output_claim(path: str | Path) -> Iterator[None]:
    """Held while a run works towards ``path``: a second run into the same output (the same command twice) is
    refused before its work, not after it ("another run wrote it while this one ran" came when it had trained or
    built everything). An exclusive flock on ``.<name>.claim`` beside it, released when the process ends however
    it ends; the file is removed on the way out. Where flock is missing (Windows) nothing is held."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    dest = Path(path).expanduser().absolute()
    dest.parent.mkdir(parents=True, exist_ok=True)
    claim = dest.parent / f".{dest.name}.claim"
    fd = os.open(claim, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise UserInputError(f"another olive-ext run is writing {dest} now (the same command twice?)",
                             hint="wait for it to finish, or give this one another -o") from None  # fmt: skip
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            claim.unlink()
        os.close(fd)


@contextlib.contextmanager
def staged_output(path: str | Path, overwrite: bool) -> Iterator[Path]:
    """Yield a staging folder; on success it replaces ``path`` (checked again at the end)."""
    dest = ensure_output_free(path, overwrite)
    was_free = not dest.exists() or not any(dest.iterdir())
    dest.parent.mkdir(parents=True, exist_ok=True)
    _sweep_killed_stages(dest)
    stage = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    _as_umask_allows(stage)
    if not (stage / "manifest.json").is_file():  # a bundle's manifest lists its files
        names = sorted(e.name for e in stage.iterdir())
        (stage / WRITTEN).write_text(json.dumps(names) + "\n", encoding="utf-8")
    try:
        ensure_output_free(dest, overwrite)
    except UserInputError as e:
        shutil.rmtree(stage, ignore_errors=True)  # the staged output was left behind, a hidden folder beside it
        if not was_free:
            raise
        # free when the run started: another run (the same command twice) wrote it meanwhile; this one trained
        # or built everything, then said only "exists and is not empty"
        raise UserInputError(f"{e.message}: another run wrote it while this one ran (the same command twice?)",
                             hint="this run's steps are cached: run it again with --overwrite to replace it in "
                             "seconds, or with another -o") from e  # fmt: skip
    old = dest.parent / f".{dest.name}.replaced-{os.getpid()}"
    try:
        if dest.exists():  # moved aside first: a removal that fails half-way leaves the new output whole in place
            shutil.rmtree(old, ignore_errors=True)
            os.rename(dest, old)
        os.rename(stage, dest)
    except OSError as e:  # another run replaced it at the same moment (ENOTEMPTY, ENOENT): a traceback before
        shutil.rmtree(stage, ignore_errors=True)
        if old.exists() and not dest.exists():  # the previous output back in place: never no output at all
            os.rename(old, dest)
        if disk_full(e):
            raise
        raise UserInputError(f"output folder {dest} was written by another run at the same moment as this one's "
                             f"({e.strerror}); this run's output was not kept",
                             hint="this run's steps are cached: run it again (with --overwrite) to write it in "
                             "seconds, or give another -o") from e  # fmt: skip
    finally:
        shutil.rmtree(old, ignore_errors=True)


_STAGE_NAME = re.compile(r"\.(?:partial|replaced)-(\d+)$")


def _sweep_killed_stages(dest: Path) -> None:
    """Remove the staging and moved-aside folders of killed writers of ``dest`` (``.<name>.partial-<pid>``, a whole
    copy of an output, stayed beside it for good after a SIGKILL; package's ``.<name>.zip.partial-<pid>`` too)."""
    with contextlib.suppress(OSError):
        for p in dest.parent.glob(f".{glob.escape(dest.name)}.*"):
            match = _STAGE_NAME.search(p.name)
            if match and not pid_alive(int(match.group(1))):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)


def _as_umask_allows(stage: Path) -> None:
    """Files a library wrote private (0600 through mkstemp: transformers' model.safetensors of `export --format hf`,
    onnxruntime's quantized model.onnx.data) get the mode the user's umask gives every other file of the output."""
    mode = 0o666 & ~_umask()
    for f in stage.rglob("*"):
        with contextlib.suppress(OSError):
            if f.is_file() and not f.is_symlink() and f.stat().st_mode & 0o777 == 0o600 and mode != 0o600:
                f.chmod(mode)


def _umask() -> int:
    """This process's umask, read without changing it (os.umask sets one to read it); 0o022 where /proc lacks it."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON (paths and other objects as strings)."""
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def write_yaml(path: Path, data: Any, header: str | None = None) -> None:
    """Write ``data`` as YAML, with ``header`` as a leading comment."""
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    path.write_text((f"# {header}\n" if header else "") + text)
