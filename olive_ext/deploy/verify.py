"""`olive-ext verify`: checksums, loading, a smoke generation per adapter, and the end-of-turn contract."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from olive_ext.deploy.archive import safe_extract
from olive_ext.deploy.bundle import chat_template_text
from olive_ext.deploy.manifest import MANIFEST, file_entries, read_manifest, text_sha256
from olive_ext.errors import UserInputError
from olive_ext.onnx.runtime import genai, onnxruntime

SMOKE_TOKENS = 64


@dataclass
class Check:
    """One verification step and its outcome."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class VerifyReport:
    """Every check of a bundle, in the order they ran."""

    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str = "") -> None:
        """Record one check's outcome."""
        self.checks.append(Check(name, ok, detail))


def verify(path: Path, run_model: bool = True) -> VerifyReport:
    """Verify a bundle folder or zip. Unsafe archives raise before anything is extracted."""
    if path.is_file():
        with tempfile.TemporaryDirectory(prefix="olive-ext-verify-") as tmp:
            return verify_folder(safe_extract(path, Path(tmp)), run_model)
    if not path.is_dir():
        raise UserInputError(f"{path} is neither a bundle folder nor a zip")
    return verify_folder(path, run_model)


def verify_folder(root: Path, run_model: bool = True) -> VerifyReport:
    """Verify an extracted bundle folder: files, chat template, then loading and generation."""
    report = VerifyReport()
    if not (root / MANIFEST).exists():
        report.add("manifest", False, f"{MANIFEST} is missing")
        return report
    manifest = read_manifest(root)
    _check_files(root, manifest, report)
    _check_chat_template(root, manifest, report)
    if run_model and report.ok:
        _check_generation(root, manifest, report)
    return report


def _check_files(root: Path, manifest: dict, report: VerifyReport) -> None:
    expected = {e["path"]: e for e in manifest.get("files", [])}
    actual = {e["path"]: e for e in file_entries(root)}
    for rel in sorted(set(expected) - set(actual)):
        report.add("file present", False, f"{rel} is missing")
    for rel in sorted(set(actual) - set(expected)):
        report.add("no extra files", False, f"{rel} is not in the manifest")
    for rel in sorted(set(expected) & set(actual)):
        e, a = expected[rel], actual[rel]
        if e["sha256"] != a["sha256"] or e["size"] != a["size"]:
            report.add("checksum", False, f"{rel} does not match its sha256 in the manifest")
    if report.ok:
        report.add("checksums", True, f"{len(expected)} files match the manifest")


def _check_chat_template(root: Path, manifest: dict, report: VerifyReport) -> None:
    info = manifest.get("chat_template") or {}
    shipped = chat_template_text(root / "model")
    if shipped is None:
        report.add("chat template", False, "the model folder ships no chat template")
        return
    if info.get("finetune_sha256") and text_sha256(shipped) != info["finetune_sha256"]:
        report.add("chat template", False, "the shipped chat template differs from the one used in fine-tuning")
        return
    detail = "same as in fine-tuning" if info.get("finetune_sha256") else "shipped (no fine-tuning record)"
    report.add("chat template", True, detail)


def _check_generation(root: Path, manifest: dict, report: VerifyReport) -> None:
    provider = manifest.get("target", {}).get("provider", "CPUExecutionProvider")
    if provider not in onnxruntime().get_available_providers():
        report.add("load", True, f"not loaded: {provider} is not available on this machine")
        return
    og = genai()
    model = og.Model(str(root / "model"))
    tokenizer = og.Tokenizer(model)
    report.add("load", True, f"loaded on {provider}")
    eos = set(manifest.get("eos_token_ids") or [int(t) for t in tokenizer.eos_token_ids])
    adapters = None
    names: list[str | None] = [None, *manifest.get("adapters", [])]
    if len(names) > 1:
        adapters = og.Adapters(model)
        for name in names[1:]:
            adapters.load(str(root / "adapters" / f"{name}.onnx_adapter"), name)
    for name in names:
        label = f"adapter {name}" if name else "base model"
        for prompt in manifest.get("smoke_prompts") or []:
            ids = tokenizer.encode(prompt)
            params = og.GeneratorParams(model)
            params.set_search_options(max_length=len(ids) + SMOKE_TOKENS, do_sample=False)
            gen = og.Generator(model, params)
            if name and adapters is not None:
                gen.set_active_adapter(adapters, name)
            gen.append_tokens(ids)
            out: list[int] = []
            while not gen.is_done() and len(out) < SMOKE_TOKENS:
                gen.generate_next_token()
                out.append(int(gen.get_next_tokens()[0]))
            stopped = bool(out) and out[-1] in eos
            text = tokenizer.decode([t for t in out if t not in eos])
            short = json.dumps(text[:60])
            if stopped:
                report.add(f"end of turn ({label})", True, f"stopped after {len(out)} tokens: {short}")
            else:
                report.add(
                    f"end of turn ({label})",
                    False,
                    f"ran to the {SMOKE_TOKENS}-token limit without an end-of-turn token: {short}",
                )
