"""The baseline a careful user writes by hand: transformers Trainer + peft LoRA, nothing else.

    python benchmarks/_plain_finetune.py MODEL DATA.jsonl TEMPLATE OUT --max_steps 40 ...

Prompt tokens are masked out of the loss, an end-of-sequence token follows each answer, and
batches are padded per batch (DataCollatorForSeq2Seq) -- the usual recipe. The model computes
its own loss over full logits. Writes OUT/adapter and OUT/plain_metrics.json (non-pad tokens,
train seconds, loss curve).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("template")
    ap.add_argument("out")
    ap.add_argument("--split", default="train")
    ap.add_argument("--max_steps", type=int, default=40)
    ap.add_argument("--batch_size", type=int, default=4)
    ap.add_argument("--learning_rate", type=float, default=5e-4)
    ap.add_argument("--lora_r", type=int, default=16)
    ap.add_argument("--lora_alpha", type=float, default=32)
    ap.add_argument("--lora_dropout", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="weights and training dtype")
    args = ap.parse_args()

    import torch
    from datasets import load_dataset
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=getattr(torch, args.dtype))
    model = get_peft_model(model, LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                                             target_modules="all-linear", task_type="CAUSAL_LM"))  # fmt: skip
    answer = args.template[args.template.rfind("{") + 1 : -1]
    prompt_part = args.template[: args.template.rfind("{")]

    def encode(row: dict) -> dict:
        prompt = tok(prompt_part.format(**row), add_special_tokens=False)["input_ids"]
        response = tok(str(row[answer]), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        return {"input_ids": prompt + response, "attention_mask": [1] * (len(prompt) + len(response)),
                "labels": [-100] * len(prompt) + response}  # fmt: skip

    data = load_dataset("json", data_files=args.data, split=args.split)
    data = data.map(encode, remove_columns=data.column_names)
    seen = {"tokens": 0}

    class Count(TrainerCallback):  # counts the non-pad tokens the model trained on
        def on_train_begin(self, a, state, control, **kw):  # type: ignore[no-untyped-def]
            seen["start"] = time.perf_counter()

        def on_train_end(self, a, state, control, **kw):  # type: ignore[no-untyped-def]
            seen["seconds"] = time.perf_counter() - seen["start"]

    collator = DataCollatorForSeq2Seq(tok, padding=True)

    def collate(rows: list[dict]) -> dict:
        seen["tokens"] += sum(len(r["input_ids"]) for r in rows)
        return collator(rows)

    targs = TrainingArguments(output_dir=str(Path(args.out) / "ck"), per_device_train_batch_size=args.batch_size,
                              learning_rate=args.learning_rate, max_steps=args.max_steps, logging_steps=1,
                              save_strategy="no", report_to=[], seed=args.seed, lr_scheduler_type="linear",
                              use_cpu=not torch.cuda.is_available(), bf16=args.dtype == "bfloat16")  # fmt: skip
    trainer = Trainer(model=model, args=targs, train_dataset=data, data_collator=collate, callbacks=[Count()])
    trainer.train()
    model.save_pretrained(Path(args.out) / "adapter")
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    metrics = {
        "train_tokens": seen["tokens"],
        "train_seconds": seen["seconds"],
        "loss_curve": losses,
        "steps": trainer.state.global_step,
        "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
    }
    (Path(args.out) / "plain_metrics.json").write_text(json.dumps(metrics))


if __name__ == "__main__":
    main()
