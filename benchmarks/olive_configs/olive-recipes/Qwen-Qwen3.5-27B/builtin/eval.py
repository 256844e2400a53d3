"""Evaluate ONNX vs PyTorch VL model accuracy on AI2D (diagram QA).

Usage:
    python eval.py
    python eval.py --pytorch_model Qwen/Qwen3.5-27B
    python eval.py --num_samples 200
    python eval.py --system_prompt ""
"""

import argparse
import io
import json
import os
import re
import tempfile
import time

import onnxruntime_genai as og
from datasets import load_dataset
from PIL import Image

# Use 1/2/3/4 instead of A/B/C/D to avoid collisions with AI2D region labels.
NUMBERS = ["1", "2", "3", "4"]

# System prompt with /no_think to suppress verbose reasoning in Qwen3.5.
DEFAULT_SYSTEM_PROMPT = "Answer concisely with just the option number. /no_think"


def build_messages(question: str, options: list[str], system_prompt: str = "") -> str:
    """Return a JSON-encoded chat messages list (for apply_chat_template)."""
    option_text = "\n".join(f"{N}. {o}" for N, o in zip(NUMBERS, options))
    content = (
        f"Look at the diagram and answer the multiple-choice question.\n\n"
        f"Question: {question}\n\n"
        f"Options:\n{option_text}\n\n"
        f"Reply with the number only (1, 2, 3, or 4)."
    )
    messages = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append(
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": content}]}
    )
    return json.dumps(messages)


def parse_answer(text: str) -> str | None:
    """Extract the last 1/2/3/4 digit from a model response."""
    # Strip <think>...</think> blocks (Qwen3.5 thinking model)
    text = re.sub(r"<think>.*?</think>", "", text, flags=re.DOTALL)
    text = text.strip()
    # Find the LAST standalone digit — verbose responses often put the answer at the end
    matches = re.findall(r"\b([1-4])\b", text)
    if matches:
        return matches[-1]
    for ch in text:
        if ch in NUMBERS:
            return ch
    return None


def ground_truth_number(sample: dict) -> str | None:
    """AI2D answer is a 0-based index; map to 1-based number string."""
    answer = sample.get("answer", "")
    try:
        idx = int(answer)
        if 0 <= idx < 4:
            return NUMBERS[idx]
    except (ValueError, TypeError):
        # Invalid or missing answer format; treat as unknown ground truth.
        return None
    return None


def pil_from_sample(sample: dict) -> Image.Image | None:
    """Return PIL image from a dataset sample regardless of field format."""
    img = sample.get("image")
    if img is None:
        return None
    if isinstance(img, Image.Image):
        return img.convert("RGB")
    if isinstance(img, bytes):
        return Image.open(io.BytesIO(img)).convert("RGB")
    if isinstance(img, dict) and "bytes" in img:
        return Image.open(io.BytesIO(img["bytes"])).convert("RGB")
    return None


def load_ai2d(num_samples: int):
    """Load a deterministic subset of AI2D test samples."""
    print(f"Loading AI2D dataset ({num_samples} samples)...")
    ds = load_dataset("lmms-lab/ai2d", split="test")
    ds = ds.select(range(min(num_samples, len(ds))))
    print(f"  Loaded {len(ds)} samples.")
    return ds


def build_onnx_runner(model_path: str):
    print(f"\nLoading ONNX model from: {model_path}")
    model = og.Model(model_path)
    processor = model.create_multimodal_processor()
    tokenizer = og.Tokenizer(model)
    print("  ONNX model loaded.")
    return model, processor, tokenizer


def run_onnx(model, processor, tokenizer, pil_image: Image.Image, messages_json: str) -> str:
    """Run a single inference with the ONNX GenAI model."""
    with tempfile.NamedTemporaryFile(suffix=".png", delete=False) as f:
        pil_image.save(f, format="PNG")
        tmp_path = f.name

    try:
        images = og.Images.open(tmp_path)
        prompt = tokenizer.apply_chat_template(messages_json, add_generation_prompt=True)
        inputs = processor(prompt, images=images)

        params = og.GeneratorParams(model)
        params.set_search_options(max_length=2048, do_sample=False)

        generator = og.Generator(model, params)
        generator.set_inputs(inputs)

        tokens = []
        while not generator.is_done():
            generator.generate_next_token()
            tokens.append(generator.get_next_tokens()[0])
        del generator

        return tokenizer.decode(tokens)
    finally:
        os.unlink(tmp_path)


def build_pytorch_runner(model_id: str):
    print(f"\nLoading PyTorch model: {model_id}")
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.float32
    print(f"  Device: {device}, dtype: {dtype}")

    pt_model = AutoModelForImageTextToText.from_pretrained(
        model_id, torch_dtype=dtype, device_map="auto"
    )
    pt_proc = AutoProcessor.from_pretrained(model_id)
    print(f"  PyTorch model loaded ({type(pt_model).__name__}).")
    # device_map="auto" distributes across GPUs; use the first device for inputs
    device = str(pt_model.device) if hasattr(pt_model, "device") else device
    return pt_model, pt_proc, device


def run_pytorch(
    pt_model, pt_proc, pil_image: Image.Image, question: str,
    options: list[str], device: str, system_prompt: str = "",
) -> str:
    import torch
    from qwen_vl_utils import process_vision_info

    option_text = "\n".join(f"{N}. {o}" for N, o in zip(NUMBERS, options))
    content = (
        f"Look at the diagram and answer the multiple-choice question.\n\n"
        f"Question: {question}\n\n"
        f"Options:\n{option_text}\n\n"
        f"Reply with the number only (1, 2, 3, or 4)."
    )
    messages = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append(
        {
            "role": "user",
            "content": [
                {"type": "image", "image": pil_image},
                {"type": "text", "text": content},
            ],
        }
    )
    text = pt_proc.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    image_patch_size = int(getattr(pt_proc.image_processor, "patch_size", 16))
    image_inputs, video_inputs = process_vision_info(messages, image_patch_size=image_patch_size)
    inputs = pt_proc(
        text=[text], images=image_inputs, videos=video_inputs,
        padding=True, return_tensors="pt",
    ).to(device)

    with torch.no_grad():
        out = pt_model.generate(**inputs, max_new_tokens=2048, do_sample=False)

    out_ids = out[0][inputs["input_ids"].shape[-1]:]
    return pt_proc.decode(out_ids, skip_special_tokens=True)


def _gpu_memory_mb():
    """Return (current, peak) GPU memory in MB, or (0, 0) if unavailable."""
    try:
        import torch
        if torch.cuda.is_available():
            cur = torch.cuda.memory_allocated() / (1024 ** 3)
            peak = torch.cuda.max_memory_allocated() / (1024 ** 3)
            return cur, peak
    except Exception:
        # Best-effort metric: torch/CUDA may be unavailable or fail in some runtimes.
        pass
    return 0.0, 0.0


def evaluate(dataset, runner_fn, label: str) -> dict:
    correct = 0
    skipped = 0
    total = len(dataset)
    latencies = []
    memory_samples = []

    try:
        import torch
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
    except Exception:
        # Optional GPU telemetry setup: ignore if torch/CUDA is unavailable or misconfigured.
        pass

    print(f"\n{'=' * 60}")
    print(f"  Evaluating: {label}  ({total} samples)")
    print(f"{'=' * 60}")

    for i, sample in enumerate(dataset):
        gt = ground_truth_number(sample)
        if gt is None:
            skipped += 1
            continue

        pil_image = pil_from_sample(sample)
        if pil_image is None:
            skipped += 1
            continue

        question = sample.get("question", "")
        options = sample.get("options", [])
        if len(options) < 2:
            skipped += 1
            continue

        try:
            t0 = time.perf_counter()
            raw = runner_fn(pil_image, question, options)
            elapsed = time.perf_counter() - t0
            latencies.append(elapsed)
            cur_mem, _ = _gpu_memory_mb()
            if cur_mem > 0:
                memory_samples.append(cur_mem)
        except Exception as e:
            print(f"  [WARN] sample {i}: {e}")
            skipped += 1
            continue

        pred = parse_answer(raw)
        hit = pred == gt
        if hit:
            correct += 1

        if (i + 1) % 10 == 0 or i == 0:
            evaluated_so_far = i + 1 - skipped
            print(
                f"  [{i + 1:4d}/{total}] gt={gt} pred={pred} raw={raw.strip()!r:20}  "
                f"{'OK' if hit else 'MISS'}  running_acc={correct / max(evaluated_so_far, 1):.3f}"
            )

    evaluated = total - skipped
    accuracy = correct / evaluated if evaluated > 0 else 0.0
    avg_lat = sum(latencies) / len(latencies) if latencies else 0.0

    _, peak_mem = _gpu_memory_mb()
    avg_mem = sum(memory_samples) / len(memory_samples) if memory_samples else 0.0

    print(f"\n  {label}: {correct}/{evaluated} correct  |  accuracy = {accuracy:.4f} ({accuracy * 100:.2f}%)")
    print(f"  avg latency per sample: {avg_lat:.2f}s  |  skipped: {skipped}")
    if peak_mem > 0:
        print(f"  GPU memory: avg = {avg_mem:.1f} GB  |  peak = {peak_mem:.1f} GB")
    return {
        "label": label,
        "accuracy": accuracy,
        "correct": correct,
        "evaluated": evaluated,
        "avg_latency_s": avg_lat,
        "skipped": skipped,
        "avg_gpu_mem_gb": avg_mem,
        "peak_gpu_mem_gb": peak_mem,
    }


def main():
    parser = argparse.ArgumentParser(
        description="Eval ONNX (quantized) vs PyTorch VL model on AI2D"
    )
    parser.add_argument(
        "--model_path", default="cuda/models",
        help="Path to ONNX model dir (default: cuda/models/)",
    )
    parser.add_argument(
        "--pytorch_model", default=None,
        help="HuggingFace model ID for PyTorch comparison, e.g. Qwen/Qwen3.5-27B",
    )
    parser.add_argument(
        "--num_samples", type=int, default=100,
        help="Number of AI2D test samples to evaluate (default: 100)",
    )
    parser.add_argument(
        "--skip_onnx", action="store_true",
        help="Skip ONNX evaluation (useful when ONNX result is already known)",
    )
    parser.add_argument(
        "--system_prompt", default=DEFAULT_SYSTEM_PROMPT,
        help='System prompt to suppress chain-of-thought. Pass empty string to disable.',
    )
    args = parser.parse_args()

    ds = load_ai2d(args.num_samples)
    results = []

    sys_prompt = args.system_prompt
    if sys_prompt:
        print(f"\nSystem prompt: {sys_prompt!r}")
    else:
        print("\nSystem prompt: (none)")

    # ---- ONNX ----
    if not args.skip_onnx:
        onnx_model, onnx_proc, onnx_tok = build_onnx_runner(args.model_path)

        def onnx_runner(pil_image, question, options):
            msgs = build_messages(question, options, sys_prompt)
            return run_onnx(onnx_model, onnx_proc, onnx_tok, pil_image, msgs)

        results.append(evaluate(ds, onnx_runner, f"ONNX+sysprompt (INT4) @ {args.model_path}"))

    # ---- PyTorch (optional) ----
    if args.pytorch_model:
        pt_model, pt_proc, device = build_pytorch_runner(args.pytorch_model)
        pt_dtype = "fp16" if device == "cuda" else "fp32"

        def pt_runner(pil_image, question, options):
            return run_pytorch(pt_model, pt_proc, pil_image, question, options, device, sys_prompt)

        results.append(evaluate(ds, pt_runner, f"PyTorch+sysprompt ({pt_dtype}) @ {args.pytorch_model}"))

    # ---- Summary ----
    print(f"\n{'=' * 60}")
    print("  EVALUATION SUMMARY")
    print(f"{'=' * 60}")
    print(f"  Dataset     : AI2D (science diagram QA, multiple choice)")
    print(f"  Samples     : {args.num_samples}")
    print(
        f"  System prompt: "
        f"{'(none)' if not sys_prompt else sys_prompt[:80] + ('...' if len(sys_prompt) > 80 else '')}"
    )
    print()
    for r in results:
        print(f"  {r['label']}")
        print(f"    Accuracy : {r['accuracy'] * 100:.2f}%  ({r['correct']}/{r['evaluated']})")
        print(f"    Avg lat  : {r['avg_latency_s']:.2f}s/sample")
        if r.get('peak_gpu_mem_gb', 0) > 0:
            print(f"    GPU mem  : avg = {r['avg_gpu_mem_gb']:.1f} GB  |  peak = {r['peak_gpu_mem_gb']:.1f} GB")
        print()

    if len(results) == 2:
        delta = results[1]["accuracy"] - results[0]["accuracy"]
        print(f"  Accuracy delta (PyTorch - ONNX): {delta * 100:+.2f} pp")
        print(
            f"  Speedup (PyTorch lat / ONNX lat): "
            f"{results[1]['avg_latency_s'] / max(results[0]['avg_latency_s'], 1e-9):.2f}x"
        )


if __name__ == "__main__":
    main()
