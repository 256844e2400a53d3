"""Chat with this model. Needs only onnxruntime-genai:  pip install onnxruntime-genai

python run.py --prompt "Hello"              # one answer
python run.py                               # interactive, empty line to quit
python run.py --adapter NAME --prompt "..." # with one of the bundled LoRA adapters
"""

import argparse
import json
import os

import onnxruntime_genai as og

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description="Chat with the bundled model.")
    ap.add_argument("--prompt", help="one prompt; without it, read prompts from the terminal")
    ap.add_argument("--adapter", help="name of a bundled adapter (see manifest.json)")
    ap.add_argument("--max_new_tokens", type=int, default=256)
    args = ap.parse_args()
    if hasattr(og, "disable_telemetry_events"):
        og.disable_telemetry_events()
    model = og.Model(os.path.join(HERE, "model"))
    tokenizer = og.Tokenizer(model)
    adapters = None
    if args.adapter:
        adapters = og.Adapters(model)
        adapters.load(os.path.join(HERE, "adapters", args.adapter + ".onnx_adapter"), args.adapter)

    def answer(text):
        prompt = tokenizer.apply_chat_template(
            json.dumps([{"role": "user", "content": text}]), add_generation_prompt=True
        )
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
            print(stream.decode(generator.get_next_tokens()[0]), end="", flush=True)
        print()

    if args.prompt:
        answer(args.prompt)
        return
    while True:
        text = input("> ").strip()
        if not text:
            break
        answer(text)


if __name__ == "__main__":
    main()
