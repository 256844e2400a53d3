"""A/B of one LoRA training step (forward + backward) of SmolLM2-135M on the tone task, in CPU seconds.

    python benchmarks/finetune_step_ab.py [--steps 6] [--rounds 3] [--threads 1] [--order grouped|random|mixed]
        [--variants full,selected,padding-free,packed] [--profile]

The machine is shared, so wall time is noise: each variant's step is timed in CPU seconds of this
process (``time.process_time``: every thread's time) and variants alternate round by round on the
same batches (batch 4, length-grouped as olive-ext batches them). Variants:

- full: the model's full logits and cross-entropy over every position (what the plain Trainer + peft script does);
- selected: olive-ext's loss, the LM head on labelled positions only (``loss_sum_selected``);
- padding-free: olive-ext's collator (the batch as one unpadded row where its cost model says cheaper);
- packed: always the batch's rows concatenated into one row without padding, ``position_ids`` restarting per
  example (a block-diagonal causal mask), the LM head on labelled positions only.

Tokens/CPU-s counts non-pad tokens. ``--profile`` prints torch.profiler's top operators for one step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "recipes" / "data"))

from benchmarks._common import run_main  # noqa: E402


def batches(hf: Path, n: int, batch: int, order_name: str = "grouped") -> list[list[dict[str, list[int]]]]:
    """``n`` batches of tokenized tone rows (olive-ext's tokenization), length-grouped or in random order."""
    from make_tasks import TASKS

    from olive_ext.data import load_rows, to_examples
    from olive_ext.recipe.schema import DatasetSpec
    from olive_ext.train.features import PromptEncoder, RowDataset, tokenize
    from olive_ext.train.model import load_tokenizer
    from olive_ext.train.run import _generation_eos
    from olive_ext.train.trainer import epoch_seeded_sampler

    file, n_train, template = TASKS["tone"]
    spec = DatasetSpec(name="json", data_files=str(ROOT / "recipes" / "data" / file), split=f"train[:{n_train}]",
                       text_template=template)  # fmt: skip
    tok = load_tokenizer(str(hf))
    rows = tokenize(to_examples(load_rows(spec), spec, tok), PromptEncoder(tok, _generation_eos(str(hf))), 1024).rows
    if order_name == "mixed":
        by_length = sorted(range(len(rows)), key=lambda j: len(rows[j]["input_ids"]))
        order = [j for k in range(len(rows) // 2) for j in (by_length[k], by_length[-1 - k])]
    else:  # olive-ext's default order is length-grouped
        order = list(iter(epoch_seeded_sampler(RowDataset(rows), 42, batch if order_name == "grouped" else None)))
    return [[rows[j] for j in order[i * batch : (i + 1) * batch]] for i in range(n)]


VARIANTS = ("full", "selected", "padding-free", "packed")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=6, help="batches per variant per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument(
        "--order",
        choices=["grouped", "random", "mixed"],
        default="grouped",
        help="random: the plain script's; mixed: each batch the shortest and longest rows left (most padding)",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (1: CPU time without spin-waiting)")
    args = ap.parse_args()
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        ap.error(f"--variants: unknown {', '.join(unknown)}; give a comma-separated list of {', '.join(VARIANTS)}")

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from benchmarks.finetune_ablation import hf_model
    from olive_ext.train.features import Collator, pack
    from olive_ext.train.loss import loss_sum_full, loss_sum_selected

    if args.threads:
        torch.set_num_threads(args.threads)
    hf = hf_model()
    data = batches(hf, args.steps, args.batch, args.order)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))  # fmt: skip
    model.train()
    pad = 0
    collate = Collator(pad)
    rule = Collator(pad, hidden_size=model.config.hidden_size)  # olive-ext's default: one row when cheaper

    def run(variant: str, rows: list[dict[str, list[int]]]) -> tuple[float, int]:
        if variant == "packed":
            batch = collate(pack(rows, 10**9))
        else:
            batch = (rule if variant == "padding-free" else collate)(rows)
        real = int(batch.pop("real_tokens"))
        fn = loss_sum_full if variant == "full" else loss_sum_selected
        total, count = fn(model, batch)
        (total / count).backward()
        model.zero_grad(set_to_none=True)
        return float(total.detach() / count), real

    variants = args.variants.split(",")
    for v in variants:  # warm-up
        run(v, data[0])
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        for v in variants:
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                run(v, data[1])
            print(f"--- {v}")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    tokens: dict[str, int] = {v: 0 for v in variants}
    losses: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(args.rounds):
        for v in variants:
            t0 = time.process_time()
            n = 0
            for rows in data:
                loss, real = run(v, rows)
                n += real
                losses[v].append(loss)
            cpu[v].append(time.process_time() - t0)
            tokens[v] = n
    load = os.getloadavg()[0]
    print(f"SmolLM2-135M LoRA r16 fp32, batch {args.batch} ({args.order}), {args.steps} steps x {args.rounds} rounds, "
          f"torch {torch.__version__} on {torch.get_num_threads()} threads, 1-min load {load:.1f}")  # fmt: skip
    print("| variant | CPU s / step (median round) | non-pad tok / CPU s | vs full | max loss diff vs first |")
    print("|---|---|---|---|---|")
    base = statistics.median(cpu[variants[0]])
    for v in variants:
        med = statistics.median(cpu[v])
        diff = max(abs(a - b) for a, b in zip(losses[v], losses[variants[0]], strict=True))
        print(f"| {v} | {med / args.steps:.3f} | {tokens[v] / med:.0f} | {base / med:.2f}x | {diff:.2e} |")


if __name__ == "__main__":
    run_main(main)
