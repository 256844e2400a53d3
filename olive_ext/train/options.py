"""Fine-tuning settings: one typed object shared by the `finetune` command and the `lora` pass.

Field names follow Olive's `finetune` flags (``lora_r``, ``lora_alpha``, ``max_seq_len``...) and
Hugging Face TrainingArguments (``learning_rate``, ``per_device_train_batch_size``...). Defaults are
chosen for speed on a laptop CPU; each one that differs from Olive's says why.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from olive_ext.options import Options, searchable

Method = Literal["lora", "qlora", "dora"]
TorchDtype = Literal["auto", "float32", "bfloat16", "float16"]
_DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16", "float": "float32"}

# --resume_from_checkpoint's words for "do not resume" and "this run's latest checkpoint" (else a folder)
RESUME_NO = frozenset({"false", "no", "none", "0"})
RESUME_LATEST = frozenset({"true", "last", "latest", "yes", "1"})

# Settings that change how a run is observed or continued, not what it produces: left out of cache keys.
NOT_IN_CACHE_KEY = frozenset({"resume_from_checkpoint"})


class FinetuneOptions(Options):
    """LoRA / QLoRA / DoRA fine-tuning of a causal language model."""

    method: Method = searchable("lora", description="lora | qlora (4-bit NF4 base, needs bitsandbytes) | dora")
    lora_r: int = searchable(16, description="adapter rank", ge=1, le=1024)
    lora_alpha: float = searchable(32, description="adapter scaling numerator (scale = alpha / r)", gt=0)
    lora_dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="dropout on the adapter input; 0 by default: its random masks cost ~19% of a CPU step",
    )
    target_modules: list[str] | None = Field(
        None, description="module names to adapt; default: every linear layer of attention and MLP (not lm_head); "
        "peft-default: peft's per-model list (q_proj, v_proj for Llama), what Olive's LoRA pass adapts"
    )
    modules_to_save: list[str] | None = Field(
        None, description="modules trained in full and saved beside the adapter (peft's modules_to_save, e.g. lm_head)"
    )
    learning_rate: float = searchable(2e-4, description="peak learning rate (linear decay)", gt=0)
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; overrides num_train_epochs")
    num_train_epochs: float = Field(1.0, gt=0, description="passes over the training data when max_steps is unset")
    per_device_train_batch_size: int = Field(4, ge=1, le=1 << 20, description="examples per forward pass")
    per_device_eval_batch_size: int = Field(8, ge=1, description="examples per eval forward / generation batch")
    gradient_accumulation_steps: int = Field(1, ge=1, description="forward passes per optimizer step")
    max_seq_len: int = Field(1024, ge=8, description="longer examples are truncated; batches are never padded to it")
    torch_dtype: TorchDtype = Field(
        "auto", description="auto: the fastest correct dtype for the device, measured (once per machine on a CPU; on a "
        "GPU, one training step per dtype, once per model and batch shape)"
    )
    seed: int = Field(42, ge=0, le=2**32 - 1, description="seed for adapter init, dropout and data order")
    warmup_steps: int = Field(0, ge=0, description="linear warm-up steps")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    logging_steps: int | None = Field(None, ge=1, description="log the loss every N steps; default: ~50 points")
    eval_steps: int | None = Field(None, ge=1, description="eval loss every N steps (with eval data); default: at end")
    save_steps: int | None = Field(None, ge=1, description="checkpoint every N steps; Ctrl-C always checkpoints")
    resume_from_checkpoint: str | None = Field(
        None, description="checkpoint folder to continue from, or 'true'/'last' for this run's latest"
    )
    report_to: Literal["none", "tensorboard", "mlflow", "wandb"] = Field(
        "none",
        description="experiment tracker, through transformers' callback (wandb: WANDB_MODE=offline works without "
        "network; `wandb sync` uploads later)",
    )
    logging_dir: str | None = Field(None, description="tensorboard log folder")
    packing: bool = Field(False, description="pack several examples into each row (attention kept per example)")
    padding_free: bool = Field(
        False,
        description="run a batch as one unpadded row when a cost model says cheaper (same examples and loss; CPU)",
    )
    group_by_length: bool = Field(True, description="batch examples of similar length together (less padding)")
    train_on_prompt: bool = Field(False, description="loss on the prompt too, not only on the response")
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward: less memory, slower")
    double_quant: bool = Field(False, description="qlora: quantize the quantization constants too")
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="qlora: 4-bit data type")
    eval_max_new_tokens: int = Field(16, ge=1, description="generation limit for exact-match accuracy")
    eval_generate: bool = Field(True, description="measure exact match of greedy generations (eval data with answers)")
    training_args: dict[str, Any] = Field(
        default_factory=dict, description="other transformers TrainingArguments, passed through"
    )

    @field_validator("torch_dtype", mode="before")
    @classmethod
    def dtype_alias(cls, value: Any) -> Any:
        """A dtype as torch names it (``fp16`` -> float16); other values as given."""
        return _DTYPE_ALIASES.get(str(value).lower(), value) if isinstance(value, str) else value

    @field_validator("target_modules", mode="before")
    @classmethod
    def _split_modules(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return value or None

    @field_validator("report_to", mode="before")
    @classmethod
    def _report_to(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            value = [v for v in value if v and v != "none"]
            if len(value) > 1:
                raise ValueError("one tracker at a time: none, tensorboard, mlflow or wandb")
            value = value[0] if value else "none"
        return "none" if value in (None, "") else value

    def canonical(self) -> dict[str, Any]:
        return {k: v for k, v in super().canonical().items() if k not in NOT_IN_CACHE_KEY}
