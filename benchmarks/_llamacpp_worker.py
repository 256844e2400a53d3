"""Runs inside the llama.cpp environment (benchmarks/_envs.py "llamacpp"); driven by auto_opt.py.

    python _llamacpp_worker.py quantize SRC.gguf DEST.gguf [--type Q4_0] [--allow-requantize]
    python _llamacpp_worker.py run MODEL.gguf REQUEST.json RESULT.json

``run`` mirrors olive-ext's evaluator worker: the request holds token ids prepared by the parent
(the same timing prompt and eval prompts our evaluator uses), the result holds per-token step
times and greedy outputs. Each step is one llama_decode of one token plus the argmax of its
logits, timed from Python like olive-ext's genai loop (generate_next_token + get_next_tokens);
llama.cpp's own per-token eval time (llama_perf) is recorded beside it.
"""

from __future__ import annotations

import ctypes
import json
import sys
import time
from typing import Any


def quantize(src: str, dest: str, qtype: str, allow_requantize: bool) -> dict[str, Any]:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{qtype}")
    params.allow_requantize = allow_requantize
    params.nthread = 0
    started = time.perf_counter()
    rc = llama_cpp.llama_model_quantize(src.encode(), dest.encode(), ctypes.byref(params))
    if rc != 0:
        raise SystemExit(f"llama_model_quantize returned {rc}")
    return {"seconds": time.perf_counter() - started}


def run(model_path: str, request: dict[str, Any]) -> dict[str, Any]:
    import llama_cpp
    import numpy as np

    threads = int(request["threads"])
    started = time.perf_counter()
    llm = llama_cpp.Llama(
        model_path=model_path,
        n_ctx=int(request.get("n_ctx", 512)),
        n_batch=512,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    result: dict[str, Any] = {
        "load_seconds": time.perf_counter() - started,
        "threads": threads,
        "llama_cpp_version": llama_cpp.__version__,
    }
    eos = {llm.token_eos()}
    n_vocab = llm.n_vocab()

    def next_token() -> int:
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(n_vocab,))
        return int(logits.argmax())

    def generate(prompt: list[int], max_new: int, min_new: int = 0) -> tuple[list[int], list[float]]:
        llm.reset()
        llm._ctx.memory_clear(True) if hasattr(llm._ctx, "memory_clear") else llm._ctx.kv_cache_clear()
        tokens: list[int] = []
        steps: list[float] = []
        t = time.perf_counter()
        llm.eval(prompt)
        while len(tokens) < max_new:
            tok = next_token()
            tokens.append(tok)
            now = time.perf_counter()
            steps.append(now - t)
            t = now
            if tok in eos and len(tokens) >= min_new:
                break
            if len(tokens) < max_new:
                llm.eval([tok])
        if tokens and tokens[-1] in eos:
            tokens.pop()
        return tokens, steps

    if "timing" in request:
        job = request["timing"]
        for _ in range(job["warmup"]):
            generate(job["prompt"], job["new_tokens"], job["new_tokens"])
        runs = []
        internal = []
        for _ in range(job["repeats"]):
            llama_cpp.llama_perf_context_reset(llm._ctx.ctx)
            _, steps = generate(job["prompt"], job["new_tokens"], job["new_tokens"])
            runs.append(steps)
            perf = llama_cpp.llama_perf_context(llm._ctx.ctx)
            internal.append(
                {
                    "eval_ms": perf.t_eval_ms,
                    "n_eval": perf.n_eval,
                    "prompt_ms": perf.t_p_eval_ms,
                    "n_prompt": perf.n_p_eval,
                }
            )
        result["timing"] = {"runs": runs, "prompt_tokens": len(job["prompt"]), "llama_perf": internal}
    if "generate" in request:
        job = request["generate"]
        t = time.perf_counter()
        result["generate"] = {
            "outputs": [generate(p, job["max_new_tokens"])[0] for p in job["prompts"]],
            "seconds": time.perf_counter() - t,
        }
    return result


def main(argv: list[str]) -> int:
    if argv[0] == "quantize":
        qtype = argv[argv.index("--type") + 1] if "--type" in argv else "Q4_0"
        print(json.dumps(quantize(argv[1], argv[2], qtype, "--allow-requantize" in argv)))
        return 0
    _, model_path, req, res = argv
    with open(req) as f:
        request = json.load(f)
    result = run(model_path, request)
    with open(res, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
