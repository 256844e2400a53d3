"""`olive-ext chat`: try a built model from the terminal, streaming tokens."""

from __future__ import annotations

import argparse

from olive_ext.cli.common import add_log_level

NAME = "chat"
HELP = "chat with a built onnxruntime-genai model (auto-opt, generate-adapter output or a bundle)"
DESCRIPTION = """Stream answers from a built model with its own chat template; generation stops at the
model's end-of-turn token.

  olive-ext chat -m out/onnx
  olive-ext chat -m out/multi --adapter tone --prompt "I love this!"
"""
ORDER = 60


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-m",
        "--model_name_or_path",
        required=True,
        help="a genai model folder, or an olive-ext output/bundle folder holding one in model/",
    )
    p.add_argument("--adapter", default=None, help="name of an adapter to activate")
    p.add_argument("--prompt", default=None, help="one prompt; without it, read prompts from the terminal")
    p.add_argument("--system", default=None, help="system message")
    p.add_argument("--max_new_tokens", type=int, default=256)
    add_log_level(p)


def main(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from olive_ext.errors import UserInputError
    from olive_ext.model_folder import MODEL_CONFIG
    from olive_ext.runtime import genai

    root = Path(args.model_name_or_path)
    folder = root / "model" if (root / "model" / "genai_config.json").exists() else root
    if not (folder / "genai_config.json").exists():
        raise UserInputError(f"{root} holds no onnxruntime-genai model (genai_config.json not found)")
    adapters_found = _adapter_files(root, MODEL_CONFIG)
    og = genai()
    model = og.Model(str(folder))
    tokenizer = og.Tokenizer(model)
    adapters = None
    if args.adapter:
        if args.adapter not in adapters_found:
            known = ", ".join(sorted(adapters_found)) or "none"
            raise UserInputError(f"adapter {args.adapter!r} not found in {root}; adapters there: {known}")
        adapters = og.Adapters(model)
        adapters.load(str(adapters_found[args.adapter]), args.adapter)

    def answer(text: str) -> None:
        messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
            {"role": "user", "content": text}
        ]
        prompt = tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True)
        ids = tokenizer.encode(prompt)
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(ids) + args.max_new_tokens, do_sample=False)
        generator = og.Generator(model, params)
        if adapters is not None:
            generator.set_active_adapter(adapters, args.adapter)
        generator.append_tokens(ids)
        stream = tokenizer.create_stream()
        while not generator.is_done():
            generator.generate_next_token()
            sys.stdout.write(stream.decode(generator.get_next_tokens()[0]))
            sys.stdout.flush()
        sys.stdout.write("\n")

    if args.prompt is not None:
        answer(args.prompt)
        return 0
    print("empty line to quit")
    while True:
        try:
            text = input("> ").strip()
        except EOFError:
            break
        if not text:
            break
        answer(text)
    return 0


def _adapter_files(root: object, model_config: str) -> dict[str, object]:
    """name -> .onnx_adapter path, from model_config.json's `adapters` or an adapters/ folder."""
    import json
    from pathlib import Path

    root = Path(str(root))
    found: dict[str, object] = {p.stem: p for p in (root / "adapters").glob("*.onnx_adapter")}
    config = root / model_config
    if config.exists():
        for name, rel in (json.loads(config.read_text()).get("adapters") or {}).items():
            found[name] = root / rel
    return found
