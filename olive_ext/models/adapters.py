"""Run-time LoRA adapters for one ONNX base: preflight, weight extraction, adapter files.

The genai builder writes a LoRA layer as ``model.layers.{i}.{attn|mlp}.{module}.lora_{A|B}.MatMul.weight``
with A as [in, r] and B as [r, out] pre-multiplied by the layer's scaling. Every adapter
is loaded with peft on the base model and its layers are written under those names, so
each adapter's own scaling (alpha / r, rsLoRA, rank and alpha patterns) is exactly what
peft applies. The rank dimension of the base model's LoRA inputs is dynamic, so adapters
of different ranks share one base.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olive_ext.errors import UserInputError
from olive_ext.models.folder import MODEL_CONFIG
from olive_ext.onnx.lora_inputs import export_onnx_adapter

if TYPE_CHECKING:  # numpy loads with the weights, not for `olive-ext generate-adapter --help`
    import numpy as np

logger = logging.getLogger("olive_ext")

# peft module path -> builder group
_GROUPS = {"self_attn": "attn", "mlp": "mlp"}
SUPPORTED_MODULES = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
_LAYER_RE = re.compile(r"layers\.(\d+)\.(self_attn|mlp)\.(\w+)$")
ADAPTER_WEIGHTS = "adapter_model.safetensors"


@dataclass
class AdapterSource:
    """One adapter to ship: its name, its peft folder, and what preflight learned."""

    name: str
    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def target_modules(self) -> set[str]:
        """The module names the adapter changes. A string is peft's regular expression (``.*\\.(q_proj|v_proj)``,
        once split at its dots into "(q_proj|v_proj)" and refused): the modules its weights name are read."""
        targets = self.config.get("target_modules") or []
        if isinstance(targets, str):  # a regular expression, or peft's "all-linear" (every linear but the head)
            found = weight_modules(self.path / ADAPTER_WEIGHTS)
            if found:
                return {module.split(".")[-1] for module in found}
        return {str(t).split(".")[-1] for t in ([targets] if isinstance(targets, str) else targets)}


def resolve_adapter(path: str) -> AdapterSource:
    """A peft adapter folder, or a finetune output folder (its adapter/), named after the folder."""
    p = Path(path).expanduser()
    p = p.resolve() if p.name in ("", ".", "..") else p  # `-a .` was named "adapter" (the folder's own name is meant)
    folder = p
    if (p / MODEL_CONFIG).exists() and (p / "adapter").is_dir():
        folder = p / "adapter"
    if not (folder / "adapter_config.json").exists():
        raise UserInputError(f"adapter {path!r}: no adapter_config.json (give a peft adapter or a finetune output)")
    name = p.name if folder != p or p.name != "adapter" else p.parent.name
    # a plain file name: no leading dot either (package refused '.hidden' after generate-adapter shipped it)
    plain = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "adapter"
    if plain != name:  # said: a client asking for the folder's name gets "not found"
        logger.warning("adapter %s is named %r (a plain file name: letters, digits, '.', '_', '-')", path, plain)
    name = plain
    config = json.loads((folder / "adapter_config.json").read_text())
    return AdapterSource(name, folder, config)


def unique_names(sources: list[AdapterSource]) -> None:
    """Suffix repeated names (_2, _3, ...) so every adapter file is distinct; the same folder given twice is
    refused (it was built twice, as alpha and alpha_2)."""
    folders = [s.path.resolve() for s in sources]
    twice = sorted({str(f) for f in folders if folders.count(f) > 1})
    if twice:
        raise UserInputError(f"adapter {twice[0]} is given more than once", hint="give each adapter once")
    seen: dict[str, int] = {}
    for s in sources:  # case-blind: Tone and tone collide as files when the bundle is unpacked on macOS or Windows
        n = seen.get(s.name.lower(), 0) + 1
        seen[s.name.lower()] = n
        if n > 1:
            s.name = f"{s.name}_{n}"


def not_plain_lora(config: dict[str, Any]) -> str | None:
    """Why an adapter (its adapter_config.json) is more than LoRA's A and B matrices, or None.

    onnxruntime-genai's builder takes any adapter whose peft_type is LORA and reads only lora_A and lora_B:
    a DoRA adapter (peft_type LORA, use_dora true) would lose its magnitude vectors without a word."""
    peft_type = str(config.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        return f"peft_type {config.get('peft_type')!r} is not LoRA"
    if config.get("use_dora"):
        return "a DoRA adapter (use_dora=true): its magnitude vectors cannot be a run-time LoRA input"
    if config.get("lora_bias"):  # its lora_B.bias tensors were dropped, found only by the parity check after a build
        return "a LoRA with a bias (lora_bias=true): its lora_B bias vectors cannot be a run-time LoRA input"
    if config.get("trainable_token_indices"):  # found only by the parity check after the base was built
        return ("an adapter that trains token embeddings (trainable_token_indices): changed embedding rows cannot "
                "be a run-time LoRA input")
    return None


def weight_modules(weights: Path) -> set[str]:
    """The modules an adapter's safetensors holds LoRA matrices for (empty when the file is not there)."""
    if not weights.is_file():
        return set()
    from safetensors import safe_open

    with safe_open(str(weights), "np") as f:
        return {m for m in (_peft_module(k)[0] for k in f.keys()) if m}  # noqa: SIM118


def preflight(sources: list[AdapterSource], base_path: str) -> list[str]:
    """Every reason an adapter does not fit the base, each naming the adapter and the field."""
    from safetensors import safe_open

    problems: list[str] = []
    shapes = base_weight_shapes(base_path)
    for s in sources:
        cfg = s.config
        why = not_plain_lora(cfg)
        if why:  # the other checks read LoRA's matrices
            merge = f"merge it into the model instead: olive-ext auto-opt -m {base_path} --adapter_path {s.path}"
            problems.append(f"adapter {s.name!r}: {why} ({merge})")
            continue
        unsupported = s.target_modules - SUPPORTED_MODULES
        if unsupported:
            # the base's own modules among those (Phi-3 has o_proj and down_proj only: naming q_proj did not help)
            usable = sorted({k.split(".")[-2] for k in shapes if k.count(".") >= 1} & SUPPORTED_MODULES)
            merge = f"olive-ext auto-opt -m {base_path} --adapter_path {s.path}"
            what_to_do = (f"fine-tune with --target_modules {','.join(usable)} (this model's layers that can be), "
                          f"or merge the adapter into the model: {merge}" if usable else
                          f"this model has none of the layers that can be ({', '.join(sorted(SUPPORTED_MODULES))}): "
                          f"merge the adapter into the model instead: {merge}")  # fmt: skip
            problems.append(
                f"adapter {s.name!r}: target_modules {sorted(unsupported)} are not supported as run-time inputs; "
                + what_to_do
            )
        if cfg.get("modules_to_save"):
            problems.append(
                f"adapter {s.name!r}: modules_to_save {cfg['modules_to_save']} changes whole modules, "
                "which run-time LoRA inputs cannot carry"
            )
        weights = s.path / ADAPTER_WEIGHTS
        if not weights.exists():
            pickled = (s.path / "adapter_model.bin").exists()
            problems.append(
                f"adapter {s.name!r}: adapter_model.bin is a pickle, which olive-ext never loads (loading one runs "
                "code); save the adapter with peft's default safe_serialization=True" if pickled else
                f"adapter {s.name!r}: {ADAPTER_WEIGHTS} is missing"
            )  # fmt: skip
            continue
        mismatched: list[str] = []  # one adapter from another base gave a line per tensor (420 for one adapter)
        with safe_open(str(weights), "np") as f:
            for key in f.keys():  # noqa: SIM118  (safe_open is not a mapping)
                module, which = _peft_module(key)
                if module is None or module.split(".")[-1] not in SUPPORTED_MODULES:
                    continue  # an unsupported target is said above (a tied lm_head is no missing module)
                base_key = f"{module}.weight"
                if base_key not in shapes:
                    mismatched.append(
                        f"adapter {s.name!r}: weight {key} targets {module}, which the base model lacks "
                        "(was it trained on another base model?)"
                    )
                    continue
                out_f, in_f = shapes[base_key]
                got = f.get_slice(key).get_shape()
                want_dim, got_dim = (in_f, got[1]) if which == "A" else (out_f, got[0])
                if got_dim != want_dim:
                    mismatched.append(
                        f"adapter {s.name!r}: {key} has shape {list(got)}, the base's {base_key} needs "
                        f"{'in' if which == 'A' else 'out'}_features {want_dim} (another base model?)"
                    )
        problems += mismatched[:3]
        if len(mismatched) > 3:
            problems.append(f"adapter {s.name!r}: and {len(mismatched) - 3} more weights like these")
    return problems


def _peft_module(key: str) -> tuple[str | None, str]:
    """'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight' -> ('model.layers.0.self_attn.q_proj', 'A')."""
    m = re.match(r"^base_model\.model\.(.+)\.lora_([AB])(?:\.default)?\.weight$", key)
    return (m.group(1), m.group(2)) if m else (None, "")


def base_weight_shapes(base_path: str) -> dict[str, tuple[int, ...]]:
    """Weight name -> shape from the base model's safetensors headers (no weights are read)."""
    from safetensors import safe_open

    files = sorted(Path(base_path).glob("*.safetensors"))
    if not files:
        raise UserInputError(f"base model {base_path} has no .safetensors weights to check adapters against")
    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        with safe_open(str(file), "np") as f:
            for key in f.keys():  # noqa: SIM118  (safe_open is not a mapping)
                shapes[key] = tuple(f.get_slice(key).get_shape())
    return shapes


def builder_weights(base_path: str, adapter: Path) -> dict[str, np.ndarray]:
    """The adapter's LoRA weights under the genai builder's input names, scaled as peft applies them."""
    import torch
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(model, str(adapter))
    out: dict[str, np.ndarray] = {}
    for name, module in peft_model.named_modules():
        if not isinstance(module, LoraLayer) or "default" not in module.lora_A:
            continue
        m = _LAYER_RE.search(name)
        if m is None:
            raise UserInputError(f"adapter {adapter}: LoRA layer {name} is not an attention or MLP projection")
        layer, group, proj = m.groups()
        prefix = f"model.layers.{layer}.{_GROUPS[group]}.{proj}"
        lora: Any = module  # peft's LoraLayer attributes are not typed precisely enough for mypy
        with torch.no_grad():
            a = lora.lora_A["default"].weight.float()  # [r, in]
            b = lora.lora_B["default"].weight.float() * float(lora.scaling["default"])  # [out, r]
        out[f"{prefix}.lora_A.MatMul.weight"] = a.T.contiguous().numpy()
        out[f"{prefix}.lora_B.MatMul.weight"] = b.T.contiguous().numpy()
    return out


def lora_inputs_of(model_file: Path) -> dict[str, tuple[Any, ...]]:
    """LoRA input name -> shape (ints, and 'lora_r' for the rank) of a built base model."""
    import onnx

    model = onnx.load(str(model_file), load_external_data=False)
    return {
        i.name: tuple(d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim)
        for i in model.graph.input
        if ".lora_A." in i.name or ".lora_B." in i.name
    }


def fit_to_inputs(
    name: str, weights: dict[str, np.ndarray], inputs: dict[str, tuple[Any, ...]], dtype: np.dtype[Any]
) -> dict[str, np.ndarray]:
    """Check ``weights`` against the base's LoRA inputs (names, fixed dims) and cast to the inputs' dtype."""
    extra = sorted(set(weights) - set(inputs))
    if extra:
        raise UserInputError(
            f"adapter {name!r}: the base model has no LoRA input for {extra[0]} "
            f"(and {len(extra) - 1} more); build the base with this adapter's target modules"
        )
    for key, arr in weights.items():
        for got, want in zip(arr.shape, inputs[key], strict=True):
            if isinstance(want, int) and want and got != want:
                raise UserInputError(
                    f"adapter {name!r}: {key} has shape {list(arr.shape)}, the base expects {list(inputs[key])}"
                )
    import numpy as np

    # onnxruntime plans one buffer size for the rank dimension of all LoRA inputs ("Shape mismatch attempting to
    # re-use buffer {1,9,4} != {1,9,8}"): every matrix takes the adapter's largest rank, the added columns of A and
    # rows of B zero (peft's rank_pattern), and the inputs the adapter does not cover (other layers:
    # layers_to_transform, exclude_modules; other modules: another adapter's targets) are zero matrices of that
    # rank. Zeros add nothing: the same function.
    rank = max((arr.shape[1] for key, arr in weights.items() if ".lora_A." in key), default=1)
    padded = {}
    for key, arr in weights.items():
        axis = 1 if ".lora_A." in key else 0
        widths = [(0, rank - arr.shape[axis]) if i == axis else (0, 0) for i in range(arr.ndim)]
        padded[key] = np.pad(arr.astype(dtype), widths)
    zeros = {key: np.zeros(tuple(d if isinstance(d, int) and d else rank for d in shape), dtype=dtype)
             for key, shape in inputs.items() if key not in weights}  # fmt: skip
    return {**padded, **zeros}


def write_adapter_file(params: dict[str, np.ndarray], path: Path, fmt: str = "onnx_adapter") -> Path:
    """Write adapter weights as an .onnx_adapter (onnxruntime's format), .safetensors or .npz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "onnx_adapter":
        export_onnx_adapter(params, path)
    elif fmt == "safetensors":
        import numpy as np
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v) for k, v in params.items()}, str(path))
    elif fmt == "numpy":
        import numpy as np

        np.savez(path, **params)  # type: ignore[arg-type]
    else:
        raise UserInputError(f"--adapter_format {fmt!r}: choose onnx_adapter, safetensors or numpy")
    return path


def input_dtype(model_file: Path) -> np.dtype[Any]:
    """numpy dtype of the base model's LoRA inputs (float32 or float16)."""
    import numpy as np
    import onnx

    model = onnx.load(str(model_file), load_external_data=False)
    for i in model.graph.input:
        if ".lora_A." in i.name:
            return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type))
    raise UserInputError(f"{model_file} has no LoRA inputs")
