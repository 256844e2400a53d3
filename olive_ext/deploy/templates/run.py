"""Chat with this model. Needs only onnxruntime-genai:  pip install onnxruntime-genai

    python run.py --prompt "Hello"              # one answer
    python run.py                               # interactive, empty line to quit
    python run.py --adapter NAME --prompt "..." # with one of the bundled LoRA adapters

(`olive-ext chat` uses this same file.)
"""

import argparse
import glob
import json
import os
import sys

# onnxruntime-genai and onnxruntime send telemetry unless this is set before they load (set it to 0 to allow it)
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import onnxruntime_genai as og

HERE = os.path.dirname(os.path.abspath(__file__))


def _tokenizers_decode(model_dir):
    """Decoding with tokenizer.json through the `tokenizers` library where it is installed, else None.

    onnxruntime-genai's own tokenizer stream loses text after bytes that are not valid UTF-8 (which a small model
    can generate); olive_ext/onnx/text_stream.py says more (this file runs without olive-ext, hence the copy).
    """
    path = os.path.join(model_dir, "tokenizer.json")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    if not os.path.isfile(path):
        return None
    tokenizer = Tokenizer.from_file(path)
    return lambda ids: tokenizer.decode(list(ids), skip_special_tokens=True)


class TextStream:
    """The text each generated token adds, held back while the answer ends in an incomplete character."""

    def __init__(self, decode):
        self.decode, self.ids, self.prefix, self.read = decode, [], 0, 0

    def push(self, token):
        self.ids.append(token)
        before = self.decode(self.ids[self.prefix : self.read])
        now = self.decode(self.ids[self.prefix :])
        if len(now) > len(before) and not now.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return now[len(before) :]
        return ""

    def flush(self):
        before = self.decode(self.ids[self.prefix : self.read])
        now = self.decode(self.ids[self.prefix :])
        self.prefix = self.read = len(self.ids)
        return now[len(before) :]

    def end(self):
        """What flush gives, less a character the token limit cut in two (dropped, as olive-ext's serve does)."""
        return self.flush().rstrip("\ufffd")


def _leading_bos(model):
    """The BOS id this model's tokenizer puts before a text (None: none). onnxruntime-genai adds it only when asked;
    fine-tuning and olive-ext's measurements used it (olive_ext/onnx/genai_tokens.py; copied, as above)."""
    probe = og.Tokenizer(model)
    probe.update_options(add_special_tokens="true")
    bos = int(probe.bos_token_id)
    return bos if bos >= 0 and [int(i) for i in probe.encode("a")][:1] == [bos] else None


class PromptTooLong(ValueError):
    """A prompt that leaves no room for an answer in the model's context."""


class Chat:
    """A genai model with its chat template; answers stream and stop at the end-of-turn token."""

    def __init__(self, model_dir, adapter_files=None):
        if hasattr(og, "disable_telemetry_events"):
            og.disable_telemetry_events()
        self.model = og.Model(model_dir)
        self.tokenizer = og.Tokenizer(self.model)
        self.bos = _leading_bos(self.model)
        self.decode = _tokenizers_decode(model_dir)
        with open(os.path.join(model_dir, "genai_config.json"), encoding="utf-8") as f:
            config = json.load(f)
        # the generator's hard limit: the search max_length where the build set one, else the context length
        self.context = int(config.get("search", {}).get("max_length") or config["model"]["context_length"])
        self.adapters = None
        self.adapter_names = sorted(adapter_files or {})
        if adapter_files:
            self.adapters = og.Adapters(self.model)
            for name, path in adapter_files.items():
                self.adapters.load(str(path), name)

    def answer(self, text, adapter=None, system=None, max_new_tokens=256, write=sys.stdout.write):
        if adapter is not None and adapter not in self.adapter_names:
            raise ValueError(f"unknown adapter {adapter!r}; adapters: {', '.join(self.adapter_names) or 'none'}")
        messages = [{"role": "system", "content": system}] if system is not None else []
        messages.append({"role": "user", "content": text})
        prompt = self.tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True)
        ids = [int(i) for i in self.tokenizer.encode(prompt)]
        if self.bos is not None and ids[:1] != [self.bos]:
            ids = [self.bos, *ids]  # once: a chat template may hold it already
        if len(ids) >= self.context:
            raise PromptTooLong(f"the prompt has {len(ids)} tokens; this model's context holds {self.context}")
        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=min(len(ids) + max_new_tokens, self.context), do_sample=False)
        generator = og.Generator(self.model, params)
        if adapter is not None:
            generator.set_active_adapter(self.adapters, adapter)
        generator.append_tokens(ids)
        stream = TextStream(self.decode) if self.decode else None
        genai_stream = self.tokenizer.create_stream()
        pieces = []
        while not generator.is_done():
            generator.generate_next_token()
            token = int(generator.get_next_tokens()[0])
            piece = stream.push(token) if stream else genai_stream.decode(token)
            pieces.append(piece)
            write(piece)
            if hasattr(sys.stdout, "flush"):
                sys.stdout.flush()
        pieces.append(stream.end() if stream else "")
        write(pieces[-1] + "\n")
        return "".join(pieces)


def repl(chat, adapter=None, system=None, max_new_tokens=256):
    """Read prompts until an empty line or end of input."""
    print("empty line to quit")
    while True:
        try:
            text = input("> ").strip()
        except EOFError:
            break
        if not text:
            break
        if not is_utf8(text):  # bytes that are not UTF-8 (a lone surrogate here) crashed the tokenizer
            print("error: that line is not UTF-8 text; skipped", file=sys.stderr)
            continue
        try:
            chat.answer(text, adapter, system, max_new_tokens)
        except PromptTooLong as e:  # the conversation goes on
            print(f"error: {e}; shorten it", file=sys.stderr)


def is_utf8(text):
    """False for text read from bytes that are not UTF-8 (Python keeps them as lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def main():
    ap = argparse.ArgumentParser(description="Chat with the bundled model.")
    ap.add_argument("--prompt", help="one prompt; without it, read prompts from the terminal")
    ap.add_argument("--adapter", help="name of a bundled adapter (see manifest.json)")
    ap.add_argument("--system", help="system message")
    ap.add_argument("--max_new_tokens", type=int, default=256)
    args = ap.parse_args()
    if args.max_new_tokens < 1:
        ap.error(f"--max_new_tokens must be at least 1, not {args.max_new_tokens}")
    files = {
        os.path.basename(p)[: -len(".onnx_adapter")]: p
        for p in glob.glob(os.path.join(HERE, "adapters", "*.onnx_adapter"))
    }
    if args.adapter is not None and args.adapter not in files:  # a one-line error, not a traceback
        ap.error(f"unknown adapter {args.adapter!r}; adapters: {', '.join(sorted(files)) or 'none'}")
    chat = Chat(os.path.join(HERE, "model"), files)
    if args.prompt and not is_utf8(args.prompt + (args.system or "")):
        ap.error("--prompt and --system must be UTF-8 text")
    if args.prompt:
        try:
            chat.answer(args.prompt, args.adapter, args.system, args.max_new_tokens)
        except PromptTooLong as e:
            ap.exit(2, f"error: {e}; shorten it\n")
    else:
        repl(chat, args.adapter, args.system, args.max_new_tokens)


if __name__ == "__main__":
    main()
