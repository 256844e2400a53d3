"""lora / qlora / dora: fine-tune an adapter on the recipe's data (fast on CPU, on the GPU when there is one).

The pass takes an HF model (GGUF inputs are converted first by the engine) and produces the
same model with ``adapter_path`` set. The adapter folder holds the peft files, the tokenizer
with its chat template, and ``train_metrics.json`` (loss curve, tokens/s, peak memory, eval
loss and exact match of the base and the fine-tuned model). The training machinery is in
:mod:`olive_ext.train`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from olive_ext.artifacts import Artifact
from olive_ext.cache import CHECKPOINTS
from olive_ext.data.load import spec_identity
from olive_ext.errors import Problem, UserInputError
from olive_ext.models.folder import config_json, model_task
from olive_ext.passes.base import Pass, dataset_ref, register_pass
from olive_ext.passes.context import RunContext
from olive_ext.train import distributed
from olive_ext.train.args import MANAGED, OURS_INSTEAD, RENAMED
from olive_ext.train.device import dtype_problem
from olive_ext.train.options import FinetuneOptions

# Olive's LoRA `training_args` keys that are fields of ours.
_LIFTED = ("learning_rate", "max_steps", "num_train_epochs", "per_device_train_batch_size",
           "per_device_eval_batch_size", "gradient_accumulation_steps", "seed", "logging_steps", "eval_steps",
           "save_steps", "resume_from_checkpoint", "report_to", "logging_dir", "gradient_checkpointing",
           "warmup_steps", "weight_decay", "group_by_length")  # fmt: skip


class LoraPassConfig(FinetuneOptions):
    train_data: str | None = dataset_ref("dataset (in `data`) to train on; unset: the only one defined", needed=True)
    eval_data: str | None = dataset_ref("dataset (in `data`) for eval loss and exact match; optional")
    device_map: Literal["auto", "current_device"] | None = Field(
        None,
        description="Olive's model placement; olive-ext trains on the target's one device, which is what both "
        "values give on a single device",
    )

    @model_validator(mode="before")
    @classmethod
    def _lift_training_args(cls, data: Any) -> Any:
        """TrainingArguments we have fields for move out of `training_args` (explicit fields win)."""
        if isinstance(data, dict) and isinstance(data.get("training_args"), dict):
            targs = dict(data["training_args"])
            data = dict(data)
            for key in _LIFTED:
                if key in targs:
                    value = targs.pop(key)
                    data.setdefault(key, value)
            data["training_args"] = targs
        return data

    @field_validator("training_args")
    @classmethod
    def _not_ours(cls, value: dict[str, Any]) -> dict[str, Any]:
        """TrainingArguments olive-ext sets itself are refused here, not first at training time."""
        for key in value:
            name = RENAMED.get(key, key)
            if name in OURS_INSTEAD or name in MANAGED:
                where = "checkpoints live in the cache and results in the run's output folder"
                raise ValueError(
                    f"training_args.{key} is set by olive-ext ({where if 'output' in name else 'from its own options'})"
                    "; remove it"
                )
        return value


class QLoraPassConfig(LoraPassConfig):
    method: Literal["lora", "qlora", "dora"] = Field("qlora", description="4-bit NF4 base (needs bitsandbytes)")


class DoraPassConfig(LoraPassConfig):
    method: Literal["lora", "qlora", "dora"] = Field("dora", description="weight-decomposed LoRA")


def unknown_model_type(config: dict[str, Any] | None) -> str | None:
    """Why transformers cannot load a model of this read config.json (no model_type, or one this transformers does
    not know, with no code of its own), or None: the run failed after its checks with transformers' own words."""
    if config is None or config.get("auto_map"):  # its own code: trust_remote_code says whether it loads
        return None
    from transformers import __version__
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES  # only for a training step

    model_type = config.get("model_type")
    if not model_type:
        return "its config.json has no model_type, which transformers loads a model by (e.g. \"llama\")"
    if model_type not in CONFIG_MAPPING_NAMES:
        return (f"its config.json's model_type {model_type!r} is not one transformers {__version__} knows: a newer "
                "transformers may, or the model's own code (config.json auto_map, --trust_remote_code)")
    return None


@register_pass("lora")
class LoraPass(Pass[LoraPassConfig]):
    """Fine-tune a LoRA adapter (or QLoRA / DoRA with `method`) on the recipe's data."""

    config_class = LoraPassConfig
    accepts = frozenset({"hf"})
    produces = "hf"
    libraries = ("transformers", "peft", "torch", "bitsandbytes", "datasets")
    # 2: data order seeded per epoch (resume-exact), adapter_config.json written in a stable order
    version = 2
    olive_types = ("LoRA",)
    takes_packed_weights = True  # a bitsandbytes 4-bit base (Unsloth's -bnb-4bit) is what QLoRA trains on
    olive_params: ClassVar[dict[str, str]] = {
        "r": "lora_r",
        "alpha": "lora_alpha",
        "train_data_config": "train_data",
        "eval_data_config": "eval_data",
        "compute_dtype": "torch_dtype",
    }
    # Olive keys with no effect here (device placement, Olive-only switches).
    _OLIVE_IGNORED = ("allow_tf32", "ephemeral_gpu_offload", "save_quant_config", "rank_dropout", "module_dropout",
                      "use_effective_conv2d", "init_weights")  # fmt: skip

    # Olive's LoRA pass defaults (olive-ai 0.13, olive/passes/pytorch/lora.py), which differ from olive-ext's own
    # (r 16, alpha 32, dropout 0): an Olive config that leaves them out trains at Olive's scale, alpha/r 0.25 (it
    # trained at 2.0, eight times larger updates)
    # and with no target_modules, peft's per-model list (q/v for Llama) where olive-ext's own is every linear layer
    _OLIVE_DEFAULTS: ClassVar[dict[str, Any]] = {"r": 64, "alpha": 16, "lora_dropout": 0.05,
                                                 "target_modules": ["peft-default"]}  # fmt: skip

    @classmethod
    def from_olive(cls, params: dict[str, Any]) -> dict[str, Any]:
        params = {**cls._OLIVE_DEFAULTS, **params}
        return super().from_olive({k: v for k, v in params.items() if k not in cls._OLIVE_IGNORED})

    @classmethod
    def check_params(cls, params: dict[str, Any], path: str) -> list[Problem]:
        """A torch_dtype this machine cannot train in (float16 on a CPU: Olive's QLoRA recipes ask for it), as the
        step refuses it when it starts: validate said "valid" and run refused after the steps before it."""
        dtype = params.get("torch_dtype")
        problem = dtype_problem(FinetuneOptions.dtype_alias(dtype), in_recipe=True) if isinstance(dtype, str) else None
        if problem is None:
            return []
        return [Problem(f"{path}.torch_dtype", problem.message, hint=problem.hint, category="device")]

    @classmethod
    def check_input(cls, artifact: Artifact) -> str | None:
        """An adapter already on the model trains on (LLaMA-Factory's adapter_name_or_path) when it is LoRA or
        DoRA; other peft adapters cannot. The model is a causal LM: an encoder (BERT) was trained with a new,
        random language-model head, silently."""
        task = model_task(artifact)
        if task != "text-generation":
            archs = (config_json(artifact.path) or {}).get("architectures") or []
            return (f"it is not a causal language model ({task}: config.json's architectures are {archs}); finetune "
                    "trains causal LMs (text-generation), as LoRA here learns the next token")  # fmt: skip
        if problem := unknown_model_type(config_json(artifact.path)):
            return problem
        if not artifact.adapter_path:
            return None
        config_file = Path(artifact.adapter_path) / "adapter_config.json"
        try:
            peft_type = str(json.loads(config_file.read_text()).get("peft_type", "LORA")).upper()
        except (OSError, ValueError, AttributeError):
            return None  # a hub adapter, or one the model loader reports on
        if peft_type != "LORA":
            return (f"its adapter is {peft_type}, which olive-ext does not train on; merge it first "
                    "(merge_adapter) to train a LoRA adapter on top")  # fmt: skip
        return None

    def cache_extra(self, ctx: RunContext) -> Any:
        train = ctx.dataset(self.config.train_data, f"pass '{self.name}' training")
        eval_ = ctx.dataset(self.config.eval_data, f"pass '{self.name}' eval") if self.config.eval_data else None

        extra: dict[str, Any] = {"train": spec_identity(train, ctx.cache.memo),
                                 "eval": spec_identity(eval_, ctx.cache.memo) if eval_ else None}  # fmt: skip
        if distributed.world_size() > 1:  # data-parallel: the global batch is per_device x processes
            # (an epoch counted in global batches since stop 42: before, two processes trained two epochs)
            extra["data_parallel"] = {"world_size": distributed.world_size(), "epoch": "global batches"}
        return extra

    def run(self, artifact: Artifact, ctx: RunContext) -> Artifact:
        # the training machinery (and rich's progress) loads when a fine-tune runs, not for `olive-ext validate`
        from olive_ext.train.run import finetune

        cfg = self.config
        train = ctx.dataset(cfg.train_data, f"pass '{self.name}' training")
        eval_spec = ctx.dataset(cfg.eval_data, f"pass '{self.name}' eval") if cfg.eval_data else None
        run_id = _run_id(artifact, cfg, self.cache_extra(ctx))
        result = finetune(
            artifact.path,
            train,
            eval_spec,
            cfg,
            ctx.output_dir,
            checkpoint_dir=ctx.cache.root / CHECKPOINTS / run_id,
            cache_root=ctx.cache.root,
            progress=ctx.progress,
            trust_remote_code=ctx.trust_remote_code,
            adapter_path=artifact.adapter_path,
        )
        stable_adapter_config(result.adapter_dir)
        model_path = artifact.path
        if not Path(model_path).exists():  # a hub id: keep what was trained on beside the adapter
            model_path = str(_save_hub_model(model_path, ctx.output_dir / "base", ctx.trust_remote_code))
        summary = {k: result.metrics.get(k) for k in ("method", "steps", "final_loss", "train_tokens_per_second")}
        evals = result.metrics.get("eval") or {}
        for which in ("base", "finetuned"):
            if "exact_match" in evals.get(which, {}):
                summary[f"exact_match_{which}"] = evals[which]["exact_match"]
        # train_metrics.json records timings: it must not make two identical trainings look different
        meta = {**artifact.meta, "finetune": summary}
        if artifact.adapter_path:
            meta["continued_adapter"] = artifact.adapter_path
        if ctx.input_model is not None:
            meta.setdefault("base_model", ctx.input_model.path)
        return Artifact("hf", model_path, str(result.adapter_dir), meta=meta)


@register_pass("qlora")
class QLoraPass(LoraPass):
    """Fine-tune a QLoRA adapter: 4-bit NF4 base through bitsandbytes (CPU or CUDA)."""

    config_class = QLoraPassConfig
    olive_types = ("QLoRA",)
    # Olive's QLoRA adapts every 4-bit linear layer whatever target_modules says: olive-ext's own default
    _OLIVE_DEFAULTS: ClassVar[dict[str, Any]] = {"r": 64, "alpha": 16, "lora_dropout": 0.05}


@register_pass("dora")
class DoraPass(LoraPass):
    """Fine-tune a DoRA (weight-decomposed LoRA) adapter."""

    config_class = DoraPassConfig
    olive_types = ("DoRA",)


# adapter_config.json fields peft fills from sets: their order changes from one process to the next
_SET_VALUED = ("target_modules", "exclude_modules", "modules_to_save")


def stable_adapter_config(adapter_dir: Path) -> None:
    """Rewrite adapter_config.json with set-valued lists sorted, so identical trainings give identical files."""
    path = adapter_dir / "adapter_config.json"
    config = json.loads(path.read_text())
    for key in _SET_VALUED:
        value = config.get(key)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            config[key] = sorted(value)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _run_id(artifact: Artifact, cfg: LoraPassConfig, extra: Any) -> str:
    """Stable id of a training run (input, settings, data): where its checkpoints live across restarts."""
    payload = json.dumps([artifact.fingerprint, cfg.canonical(), extra], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def _save_hub_model(model_id: str, out: Path, trust_remote_code: bool) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        AutoModelForCausalLM.from_pretrained(model_id, trust_remote_code=trust_remote_code).save_pretrained(out)
        AutoTokenizer.from_pretrained(model_id, trust_remote_code=trust_remote_code).save_pretrained(out)
    except OSError as e:
        raise UserInputError(f"could not save the base model {model_id!r} beside the adapter: {e}") from e
    return out
