"""onnx_export: non-LLM Hugging Face models (text classification, feature extraction) -> ONNX.

Tries the dynamo exporter (``torch.onnx.export(..., dynamo=True)``) first and falls back
to TorchScript when it fails. Batch and sequence axes are dynamic. Each export is
checked before it counts: onnxruntime must reproduce PyTorch on inputs of a different
batch size and length than the export used (TorchScript traces of some transformers
versions bake the example's shapes in, which this catches), then it is smoke-run.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from olive_ext.artifacts import Artifact
from olive_ext.errors import MissingDependencyError, PassError
from olive_ext.models.folder import check_head_kept
from olive_ext.onnx.check import smoke_check
from olive_ext.onnx.folder import external_data_files
from olive_ext.onnx.runtime import onnxruntime
from olive_ext.passes.base import Pass, PassConfig, register_pass
from olive_ext.passes.context import RunContext

logger = logging.getLogger("olive_ext")

Task = Literal["auto", "text-classification", "feature-extraction"]
# the dynamic dims of an exported graph, named as Olive's OnnxConversion names them (configs fix them by name:
# DynamicToFixedShape dim_param [batch_size, sequence_length])
BATCH, SEQUENCE = "batch_size", "sequence_length"
_CHECK_TEXTS = (["the capital of france is paris, and rome is the capital of italy", "a dog"], ["hello world"])


class OnnxExportConfig(PassConfig):
    task: Task = Field("auto", description="auto reads the architecture (…ForSequenceClassification -> classification)")
    exporter: Literal["auto", "dynamo", "torchscript"] = Field(
        "auto", description="auto: dynamo, falling back to TorchScript when it fails or disagrees with PyTorch"
    )
    opset: int = Field(
        18,
        ge=14,
        le=23,
        description="ONNX opset, 14 to 23: torch exports attention (scaled_dot_product_attention) from opset 14; "
        "TorchScript uses at most 17",
    )
    tolerance: float = Field(1e-3, gt=0, description="max |ONNX - PyTorch| on the check inputs before it counts")
    save_as_external_data: bool = Field(False, description="weights in a file beside the graph (Olive's option)")
    all_tensors_to_one_file: bool = Field(True, description="with save_as_external_data: one weights file, or one "
                                          "per tensor")  # fmt: skip
    external_data_name: str | None = Field(
        None, description="with save_as_external_data: the weights file's name (default model.onnx.data)"
    )


@register_pass("onnx_export")
class OnnxExport(Pass[OnnxExportConfig]):
    """Export an HF encoder (classifier or feature extractor) to ONNX with dynamic batch and sequence axes."""

    config_class = OnnxExportConfig
    version = 2  # 2: dims named batch_size / sequence_length, as Olive's OnnxConversion names them
    accepts = frozenset({"hf"})
    produces = "onnx"
    libraries = ("torch", "transformers", "onnx", "onnxscript", "onnxruntime")
    olive_types = ("OnnxConversion",)
    olive_params: ClassVar[dict[str, str]] = {"target_opset": "opset"}

    @classmethod
    def from_olive(cls, params: dict[str, Any]) -> dict[str, Any]:
        out = super().from_olive(params)
        dynamo = out.pop("use_dynamo_exporter", None)
        if dynamo is not None:
            out["exporter"] = "dynamo" if dynamo else "torchscript"
        out.pop("device", None)
        return out

    @classmethod
    def check_input(cls, artifact: Artifact) -> str | None:
        if artifact.adapter_path:
            return "it has an adapter; add a merge_adapter step before onnx_export"
        config = Path(artifact.path) / "config.json"
        if config.exists():
            archs = json.loads(config.read_text()).get("architectures") or []
            if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
                return f"it is an LLM ({archs[0]}); use model_builder"
        return None

    def run(self, artifact: Artifact, ctx: RunContext) -> Artifact:
        from transformers import AutoTokenizer

        cfg = self.config
        task = cfg.task if cfg.task != "auto" else infer_task(artifact.path, ctx)
        if cfg.task == "auto" and task == "feature-extraction":  # a token classifier lost its head without a word
            check_head_kept(artifact, artifact.path, ctx.input_model.task if ctx.input_model else None)
        out = ctx.output_dir / "model"
        out.mkdir(parents=True)
        model = load_model(artifact.path, task, ctx.trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(artifact.path, trust_remote_code=ctx.trust_remote_code)
        order = ["dynamo", "torchscript"] if cfg.exporter == "auto" else [cfg.exporter]
        errors: list[str] = []
        used, delta = None, None
        for exporter in order:
            try:
                export(model, tokenizer, out / "model.onnx", exporter, cfg.opset, task)
                delta = check_against_torch(model, tokenizer, out / "model.onnx")
            except MissingDependencyError as e:
                errors.append(f"{exporter}: {e.message}")
                continue
            except Exception as e:
                errors.append(f"{exporter}: {type(e).__name__}: {str(e).strip().splitlines()[0][:300]}")
                continue
            wanted, written = min(cfg.opset, 17) if exporter == "torchscript" else cfg.opset, _opset(out / "model.onnx")
            if written != wanted:  # the dynamo exporter writes 18 and converts down; when that fails it keeps 18
                errors.append(f"{exporter}: wrote opset {written}, not the {wanted} asked")
                continue
            if delta <= cfg.tolerance:
                used = exporter
                break
            errors.append(f"{exporter}: ONNX differs from PyTorch by {delta:.3g} (> tolerance {cfg.tolerance})")
        if used is None:
            raise PassError(self.name, "no exporter produced a faithful model: " + "; ".join(errors))
        for extra in out.glob("model.onnx.*"):  # a failed earlier attempt's external data
            if extra.name != "model.onnx.data" or not _uses_external_data(out / "model.onnx"):
                extra.unlink()
        if cfg.save_as_external_data:
            _save_external(out / "model.onnx", cfg.all_tensors_to_one_file, cfg.external_data_name)
        tokenizer.save_pretrained(out)
        model.config.save_pretrained(out)
        _copy_sentence_transformers_files(Path(artifact.path), out)

        smoke = smoke_check("onnx", out, self.name, {"task": task, "exporter": used, "opset": cfg.opset})
        meta = {
            "source_model": {"path": artifact.path, "adapter_path": None},
            "task": task,
            "precision": "fp32",
            "provider": "CPUExecutionProvider",
            "exporter": used,
            "build_path": f"onnx_export ({used})",
            "export_max_abs_delta": delta,
            "fallback_reasons": errors,
            "smoke": smoke,
        }
        return Artifact("onnx", str(out), None, meta=meta)


def infer_task(path: str, ctx: RunContext) -> str:
    """The recipe's task when it names an encoder task, else the architecture's."""
    if ctx.input_model is not None and ctx.input_model.task in ("text-classification", "feature-extraction"):
        return ctx.input_model.task
    config = Path(path) / "config.json"
    archs = (json.loads(config.read_text()).get("architectures") or []) if config.exists() else []
    classifier = any(a.endswith("ForSequenceClassification") for a in archs)
    return "text-classification" if classifier else "feature-extraction"


def load_model(path: str, task: str, trust_remote_code: bool) -> Any:
    from transformers import AutoModel, AutoModelForSequenceClassification

    cls = AutoModelForSequenceClassification if task == "text-classification" else AutoModel
    return cls.from_pretrained(path, trust_remote_code=trust_remote_code, dtype="float32").eval()


def _input_names(model: Any, tokenizer: Any) -> list[str]:
    import inspect

    params = inspect.signature(model.forward).parameters
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in params]
    return [n for n in names if n in tokenizer.model_input_names or n == "input_ids"]


class _Wrapper:
    """A module with an explicit signature (exporters need one) returning one tensor."""

    @staticmethod
    def build(model: Any, names: list[str], task: str) -> Any:
        import torch

        output = "logits" if task == "text-classification" else "last_hidden_state"

        class Wrapped(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None) -> Any:
                given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
                return getattr(self.model(**{k: given[k] for k in names}), output)

        return Wrapped().eval(), output


def export(model: Any, tokenizer: Any, path: Path, exporter: str, opset: int, task: str) -> None:
    """Export with dynamic batch and sequence axes."""
    import torch

    names = _input_names(model, tokenizer)
    wrapped, output = _Wrapper.build(model, names, task)
    sample = tokenizer(["hello world, this is a test", "a dog"], padding=True, return_tensors="pt")
    kwargs = {n: sample[n] for n in names}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            try:
                import onnxscript  # noqa: F401
            except ImportError as e:
                raise MissingDependencyError("onnxscript", "the dynamo ONNX exporter") from e
            batch, seq = torch.export.Dim(BATCH, max=4096), torch.export.Dim(SEQUENCE, max=8192)
            torch.onnx.export(
                wrapped, (), str(path), kwargs=kwargs, input_names=names, output_names=[output],
                dynamic_shapes={n: {0: batch, 1: seq} for n in names}, dynamo=True, opset_version=opset,
                external_data=False, optimize=True, verbose=False,
            )  # fmt: skip
        else:
            dims = {n: {0: BATCH, 1: SEQUENCE} for n in names}
            dims[output] = {0: BATCH} if task == "text-classification" else {0: BATCH, 1: SEQUENCE}
            torch.onnx.export(
                wrapped, (), str(path), kwargs=kwargs, input_names=names, output_names=[output],
                dynamic_axes=dims, dynamo=False, opset_version=min(opset, 17),
            )  # fmt: skip


def _opset(path: Path) -> int:
    """The default-domain opset an ONNX file was written at."""
    import onnx

    imports = onnx.load(str(path), load_external_data=False).opset_import
    return next((o.version for o in imports if o.domain in ("", "ai.onnx")), 0)


def check_against_torch(model: Any, tokenizer: Any, path: Path) -> float:
    """Max |onnxruntime - PyTorch| over inputs shaped unlike the export's example."""
    import numpy as np
    import torch

    session = onnxruntime().InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    names = _input_names(model, tokenizer)
    worst = 0.0
    for texts in _CHECK_TEXTS:
        enc = tokenizer(texts, padding=True, return_tensors="np")
        got = session.run(None, {n: enc[n].astype(np.int64) for n in inputs})[0]
        with torch.no_grad():
            outputs = model(**{n: torch.tensor(enc[n]) for n in names})
        ref = (outputs.logits if hasattr(outputs, "logits") else outputs.last_hidden_state).numpy()
        worst = max(worst, float(np.abs(got - ref).max()))
    return worst


def _save_external(path: Path, one_file: bool, name: str | None) -> None:
    """Save the graph at ``path`` again with its weights beside it, as Olive's save_as_external_data does."""
    import onnx

    model = onnx.load(str(path), load_external_data=True)
    for stale in path.parent.glob(f"{path.name}.*"):
        stale.unlink()
    location = (name or f"{path.name}.data") if one_file else None
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=one_file,
                    location=location, size_threshold=1024)  # fmt: skip


def _uses_external_data(model_path: Path) -> bool:
    return bool(external_data_files(model_path))


def _copy_sentence_transformers_files(src: Path, out: Path) -> None:
    """Pooling settings of sentence-transformers models travel with the export (feature extraction)."""
    for name in ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"):
        if (src / name).exists():
            shutil.copy2(src / name, out / name)
    if (src / "1_Pooling").is_dir():
        shutil.copytree(src / "1_Pooling", out / "1_Pooling")
