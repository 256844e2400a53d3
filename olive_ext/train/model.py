"""Loading the base model and wrapping it with a LoRA / QLoRA / DoRA adapter (peft)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from olive_ext.errors import MissingDependencyError, UserInputError
from olive_ext.onnx.peft_model import apply_adapter
from olive_ext.train.options import FinetuneOptions

logger = logging.getLogger("olive_ext")

# Output heads and embeddings are never adapted by default.
_NOT_TARGETS = {"lm_head", "embed_out", "output", "score", "classifier"}


def hub_hint(what: str, name: str) -> str:
    return (
        f"{what} {name!r} is not on this machine and the Hugging Face hub cannot be reached"
        " (offline, or HF_HUB_OFFLINE=1)"
    )


def load_tokenizer(path: str, trust_remote_code: bool = False) -> Any:
    """The model's tokenizer, with a pad token (EOS when it has none)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except OSError as e:
        raise _load_error(path, e) from e
    if tok.pad_token_id is None:  # padding positions carry no loss; any id works
        tok.pad_token = tok.eos_token or tok.unk_token or _config_token(path, tok)
    if tok.pad_token_id is None:
        raise UserInputError(
            f"the tokenizer of {path} names no pad, end-of-sequence or unknown token, and config.json no "
            "pad_token_id or eos_token_id: batches cannot be padded",
            hint="the folder has tokenizer.json but not the tokenizer_config.json that names its special tokens: "
            "copy it from the model's original files (or add one naming eos_token)",
        )
    return tok


def _config_token(path: str, tok: Any) -> str | None:
    """The token config.json names as pad (else end-of-sequence): a folder holding tokenizer.json alone gives a
    tokenizer that knows no special token's role (the training loop failed on a None pad id)."""
    try:
        config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for key in ("pad_token_id", "eos_token_id"):
        value = config.get(key) if isinstance(config, dict) else None
        value = value[0] if isinstance(value, list) and value else value
        if isinstance(value, int) and 0 <= value < len(tok):
            return str(tok.convert_ids_to_tokens(value))
    return None


def _load_error(path: str, e: Exception) -> UserInputError:
    if not Path(path).exists():
        return UserInputError(
            hub_hint("model", path),
            hint="pass a local model with -m: a Hugging Face folder or a .gguf file "
            "(or run once with network access so the hub cache holds it)",
        )
    return UserInputError(f"model {path!r} could not be loaded: {e}")


def check_bitsandbytes(device: str) -> None:
    """QLoRA needs bitsandbytes able to run 4-bit layers on ``device``; say what to install if not."""
    try:
        import bitsandbytes  # noqa: F401
        import torch
        from bitsandbytes.nn import Linear4bit

        layer = Linear4bit(16, 16, bias=False, quant_type="nf4", compute_dtype=torch.float32).to(device)
        layer(torch.zeros(1, 16, device=device))
    except Exception as e:
        raise MissingDependencyError(
            "bitsandbytes", f"--method qlora (4-bit NF4 base on {device})", "'bitsandbytes>=0.45'"
        ) from e


def load_model(path: str, opts: FinetuneOptions, device: str, dtype: str, trust_remote_code: bool = False) -> Any:
    """The base model on ``device`` in ``dtype`` (4-bit NF4 for QLoRA), ready for an adapter."""
    import torch
    from transformers import AutoModelForCausalLM

    torch_dtype = getattr(torch, dtype)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
    if opts.method == "qlora":
        check_bitsandbytes(device)
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=opts.quant_type,
            bnb_4bit_use_double_quant=opts.double_quant,
            bnb_4bit_compute_dtype=torch_dtype,
            bnb_4bit_quant_storage=torch.uint8,
        )
        kwargs["device_map"] = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as e:
        raise _load_error(path, e) from e
    except ValueError as e:
        if "Unrecognized configuration" in str(e) or "not supported" in str(e):
            raise UserInputError(f"{path}: not a causal language model transformers can train: {e}") from e
        raise
    if opts.method != "qlora":
        model.to(device)  # type: ignore[arg-type]
    else:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=opts.gradient_checkpointing)
        keep_4bit_layout_trainable(model)
    model.config.use_cache = False
    return model


def keep_4bit_layout_trainable(model: Any) -> int:
    """Stop bitsandbytes repacking 4-bit weights for CPU inference; returns the layers changed.

    On CPUs with AVX512-BF16, bitsandbytes 0.50 rewrites a ``Linear4bit``'s weight into an
    inference-only layout the first time it runs in eval mode without gradients (our response-only
    loss check and the base-model eval both do). Training after that runs through a kernel with no
    autograd support: the adapters below it get wrong gradients, and the rewritten quant state no
    longer matches a fresh load of the same base. A model we train keeps the standard layout.
    """
    changed = 0
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False
            changed += 1
    return changed


def linear_module_names(model: Any) -> list[str]:
    """Names (last path component) of the linear layers inside the model's blocks, head excluded."""
    import torch

    kinds: tuple[type, ...] = (torch.nn.Linear,)
    try:
        from transformers.pytorch_utils import Conv1D

        kinds += (Conv1D,)
    except ImportError:
        pass
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names: dict[str, None] = {}
    for full, module in model.named_modules():
        if isinstance(module, kinds) and module is not head:
            leaf = full.rsplit(".", 1)[-1]
            if leaf not in _NOT_TARGETS:
                names[leaf] = None
    return list(names)


_REGEX_CHARS = re.compile(r"[*+?|()\[\]^$\\]")


def _regex_targets(model: Any, pattern: str) -> str:
    """``pattern`` when it matches a module path of ``model`` whole (as peft matches it), else a UserInputError."""
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        raise UserInputError(f"--target_modules {pattern!r} is not a regular expression: {e}") from e
    if not any(compiled.fullmatch(name) for name, _ in model.named_modules()):
        raise UserInputError(f"--target_modules {pattern!r} matches no module path of this model whole",
                             hint="peft matches a regular expression against whole paths such as "
                             "model.layers.0.self_attn.q_proj: write '.*q_proj', not 'q_proj$'")  # fmt: skip
    return pattern


def continued_options(opts: FinetuneOptions, adapter: str) -> FinetuneOptions:
    """``opts`` with the adapter's own settings (what training on it uses): train_metrics.json recorded the flags'
    rank, targets and method while the adapter kept its own; --method dora on a LoRA adapter is said."""
    config = json.loads((Path(adapter) / "adapter_config.json").read_text())
    dora = bool(config.get("use_dora"))
    if opts.method == "dora" and not dora:
        logger.warning("--method dora: the adapter in %s is LoRA, and training on it keeps it LoRA (train a new DoRA "
                       "adapter without --adapter_path for DoRA)", adapter)  # fmt: skip
    targets = config.get("target_modules")
    return opts.model_copy(update={
        "method": "qlora" if opts.method == "qlora" else "dora" if dora else "lora",
        "lora_r": config.get("r", opts.lora_r), "lora_alpha": config.get("lora_alpha", opts.lora_alpha),
        "target_modules": [targets] if isinstance(targets, str) else sorted(targets or []) or opts.target_modules,
    })  # fmt: skip


PEFT_DEFAULT = "peft-default"
# olive-ai 0.13's own list for model types peft has none for (olive/common/hf/mappings.py)
_OLIVE_LORA_TARGETS = {"phi3": ["o_proj", "qkv_proj"]}


def peft_default_targets(model_type: str | None) -> list[str] | None:
    """The modules Olive's LoRA pass adapts when a config names none: peft's per-model list (q_proj and v_proj for
    Llama and Qwen2), else Olive's own (Phi-3); None for a model type neither knows (Olive refuses it, naming
    target_modules; olive-ext then adapts every linear layer, its own default, and says so)."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_TARGETS

    targets = PEFT_TARGETS.get(model_type or "") or _OLIVE_LORA_TARGETS.get(model_type or "")
    if targets is None:
        logger.warning("target_modules: neither peft nor Olive has a default list for model type %r (Olive's LoRA "
                       "pass refuses it); every linear layer is adapted", model_type)  # fmt: skip
    return list(targets) if targets is not None else None


def add_adapter(model: Any, opts: FinetuneOptions, continue_from: str | None = None) -> Any:
    """Wrap ``model`` with a fresh adapter on the target modules, or with the adapter at ``continue_from`` made
    trainable again (LLaMA-Factory's ``adapter_name_or_path``): its own rank, alpha, targets and DoRA setting."""
    from peft import LoraConfig, get_peft_model

    if continue_from:
        config = json.loads((Path(continue_from) / "adapter_config.json").read_text())
        logger.info("training on the adapter in %s (r=%s, alpha=%s, targets %s%s): --lora_r, --lora_alpha and "
                    "--target_modules are its own", continue_from, config.get("r"), config.get("lora_alpha"),
                    config.get("target_modules"), ", DoRA" if config.get("use_dora") else "")  # fmt: skip
        return apply_adapter(model, continue_from, is_trainable=True)

    available = linear_module_names(model)
    targets: list[str] | str = list(opts.target_modules or available)
    if targets in (["all-linear"], ["all"]):  # peft's and LLaMA-Factory's spelling of the default
        targets = available
    elif targets == [PEFT_DEFAULT]:  # an Olive run config's LoRA without target_modules: what Olive's pass adapts
        targets = peft_default_targets(getattr(model.config, "model_type", None)) or available
    elif len(targets) == 1 and _REGEX_CHARS.search(targets[0]):  # peft takes one string as a regular expression
        targets = _regex_targets(model, targets[0])
    else:  # a layer name, or a dotted path ending in one (peft matches either as a suffix)
        full = [n for n, _ in model.named_modules()]
        missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in full)]
        if missing:
            raise UserInputError(
                f"--target_modules names {', '.join(missing)}, which this model lacks",
                hint=f"its linear layers are: {', '.join(available)} (all-linear: every one of them, the default; one "
                "regular expression, e.g. '.*(q|v)_proj', matches whole module paths)",
            )
    config = LoraConfig(
        r=opts.lora_r,
        lora_alpha=int(opts.lora_alpha) if float(opts.lora_alpha).is_integer() else opts.lora_alpha,  # type: ignore[arg-type]
        lora_dropout=opts.lora_dropout,
        target_modules=targets,
        modules_to_save=list(opts.modules_to_save) if opts.modules_to_save else None,
        use_dora=opts.method == "dora",
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)
