"""An Ollama Modelfile for a GGUF bundle: FROM the .gguf, TEMPLATE, SYSTEM, stop tokens and parameters.

Ollama does not run the Jinja chat template a Hugging Face tokenizer carries; it wants a Go
template. We recognise the families small chat models use and write their Go form:

- ChatML (``<|im_start|>role\\ncontent<|im_end|>\\n``: SmolLM2, Qwen, our tiny test model),
- Llama 3 (``<|start_header_id|>role<|end_header_id|>\\n\\ncontent<|eot_id|>``), and Llama 3.1+ whose system turn
  opens with a dated preamble.

The choice is checked, not guessed: the model's own Jinja template is rendered for a
conversation (system, user, assistant, user) and must give exactly the text the Go template
gives. A default system prompt the Jinja template inserts when none is given becomes the
Modelfile's ``SYSTEM``. Any other template falls back to ``TEMPLATE {{ .Prompt }}`` (Ollama
passes the prompt through unchanged, so the caller formats turns) and the Modelfile says so
in a comment; ``convert_template`` reports which form was written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from olive_ext.errors import UserInputError
from olive_ext.evaluate.backends.llama_cpp import MARKER
from olive_ext.models.folder import eos_token_ids
from olive_ext.models.gguf_header import trained_context

MODELFILE = "Modelfile"
FALLBACK_TEMPLATE = "{{ .Prompt }}"
_PROBE = [
    {"role": "system", "content": "S1"},
    {"role": "user", "content": "U1"},
    {"role": "assistant", "content": "A1"},
    {"role": "user", "content": "U2"},
]


@dataclass(frozen=True)
class _Family:
    name: str
    turn: str  # one message, with {role} and {content}
    generation: str  # the assistant's turn opener
    go_template: str
    stop: tuple[str, ...]


_CHATML = _Family(
    "chatml",
    "<|im_start|>{role}\n{content}<|im_end|>\n",
    "<|im_start|>assistant\n",
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n",
    ("<|im_end|>",),
)
_LLAMA3 = _Family(
    "llama3",
    "<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>",
    "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n",
    ("<|eot_id|>",),
)
_FAMILIES = (_CHATML, _LLAMA3)


@dataclass
class Converted:
    """A chat template in Ollama's terms: Go template, default system prompt, stop strings, how it was made."""

    template: str
    system: str | None = None
    stop: list[str] = field(default_factory=list)
    family: str = "fallback"
    note: str = ""


def _render(template: str, messages: list[dict[str, str]], special: dict[str, str]) -> str:
    """Render a Hugging Face chat template as transformers does (sandboxed Jinja, trim_blocks/lstrip_blocks)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, **special)


def convert_template(template: str | None, special: dict[str, str] | None = None) -> Converted:
    """The Go form of a Hugging Face chat template, checked by rendering; the fallback when no family matches."""
    special = special or {}
    if not template:
        return Converted(FALLBACK_TEMPLATE, note="the model has no chat template; prompts are sent as given")
    bos = special.get("bos_token", "")
    openers = [f.turn.split("{role}")[0] for f in _FAMILIES]
    if any(o in template for o in openers):  # rendered once, for every family's check
        try:
            full = _render(template, _PROBE, special)
            bare = _render(template, _PROBE[1:2], special)
        except Exception as e:  # any template error: no family's check can pass
            return Converted(FALLBACK_TEMPLATE, note=f"the chat template did not render ({type(e).__name__}: {e})")
    for family, opener in zip(_FAMILIES, openers, strict=True):
        if opener not in template:
            continue
        expected = "".join(family.turn.format(**m) for m in _PROBE) + family.generation
        lead = bos if bos and full.startswith(bos) and not expected.startswith(bos) else ""
        if full != lead + expected:
            continue
        system = _default_system(bare.removeprefix(lead), family)
        if not isinstance(system, str):
            continue
        return Converted(family.go_template, system or None, list(family.stop), family.name)
    dated = _dated_llama3(full, bare, bos) if _LLAMA3.turn.split("{role}")[0] in template else None
    if dated is not None:
        return dated
    return Converted(
        FALLBACK_TEMPLATE,
        note="olive-ext writes Ollama's TEMPLATE for ChatML and Llama 3 chat templates, and this one renders "
        "as neither, so Ollama gets the raw prompt: format turns as "
        "the model's chat_template.jinja (in model/) does, or write the TEMPLATE yourself",
    )


_SYSTEM_HEAD = "<|start_header_id|>system<|end_header_id|>\n\n"


def _dated_llama3(full: str, bare: str, bos: str) -> Converted | None:
    """Llama 3.1/3.2/3.3 Instruct: Llama 3 turns, and a system turn always written, opening with a fixed preamble
    ("Cutting Knowledge Date: ... Today Date: ...") before the system message. Checked on the template's renderings
    of the probe conversation (``full``) and of a user turn alone (``bare``), as the other families; the Go
    template writes the same preamble (as Ollama's own llama3.2 template does), with the date the Jinja template
    renders when it is not given one."""
    lead = bos if bos and full.startswith(bos) else ""
    body = full.removeprefix(lead)
    if not body.startswith(_SYSTEM_HEAD) or "S1<|eot_id|>" not in body:
        return None
    preamble = body[len(_SYSTEM_HEAD) :].split("S1<|eot_id|>", 1)[0]
    if "<|" in preamble or "{{" in preamble:
        return None
    turn = _LLAMA3.turn
    rest = "".join(turn.format(**m) for m in _PROBE[1:]) + _LLAMA3.generation
    if full != lead + _SYSTEM_HEAD + preamble + "S1<|eot_id|>" + rest:
        return None
    if bare != lead + _SYSTEM_HEAD + preamble + "<|eot_id|>" + turn.format(**_PROBE[1]) + _LLAMA3.generation:
        return None
    go = (_SYSTEM_HEAD + preamble + "{{ if .System }}{{ .System }}{{ end }}<|eot_id|>"
          '{{- range .Messages }}{{- if ne .Role "system" }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n'
          "{{ .Content }}<|eot_id|>{{- end }}{{ end }}" + _LLAMA3.generation)  # fmt: skip
    return Converted(go, None, list(_LLAMA3.stop), "llama3-dated")


def _default_system(bare: str, family: _Family) -> str | bool:
    """The system prompt the template adds to a conversation without one ('' for none; False: not this family)."""
    user = family.turn.format(role="user", content="U1") + family.generation
    if bare == user:
        return ""
    head = family.turn.split("{content}")
    opener = head[0].format(role="system")
    if bare.endswith(user) and bare.startswith(opener):
        middle = bare[: -len(user)][len(opener) :]
        if middle.endswith(head[1]):
            return middle[: -len(head[1])]
    return False


@dataclass(frozen=True)
class TokenizerFiles:
    """A model folder's tokenizer.json, tokenizer_config.json and generation_config.json ({} when absent)."""

    tokenizer: dict[str, Any]
    config: dict[str, Any]
    generation: dict[str, Any]

    @classmethod
    def read(cls, model: Path) -> TokenizerFiles:
        """Read each file once; one that is not a JSON object stops packaging with its path."""
        return cls(
            _json_object(model / "tokenizer.json"),
            _json_object(model / "tokenizer_config.json"),
            _json_object(model / "generation_config.json"),
        )


def _json_object(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UserInputError(f"{path} is not valid JSON ({e})", hint="package an unmodified olive-ext output") from e
    if not isinstance(data, dict):
        raise UserInputError(
            f"{path} holds a {type(data).__name__}, not a JSON object", hint="package an unmodified olive-ext output"
        )
    return data


def _special_tokens(files: TokenizerFiles) -> dict[str, str]:
    out = {}
    for key in ("bos_token", "eos_token"):
        value = files.config.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str):
            out[key] = value
    return out


def token_texts(model: Path, ids: list[int], tokenizer: dict[str, Any] | None = None) -> list[str]:
    """The text of token ids, from the tokenizer.json the model folder carries (or its already read content)."""
    if tokenizer is None:
        path = model / "tokenizer.json"
        if not path.exists():
            return []
        tokenizer = json.loads(path.read_text(encoding="utf-8"))
    data = tokenizer
    by_id = {int(t["id"]): t["content"] for t in data.get("added_tokens", [])}
    vocab = data.get("model", {}).get("vocab", {})
    if isinstance(vocab, dict):
        by_id.update({int(i): t for t, i in vocab.items() if int(i) in ids and int(i) not in by_id})
    return [by_id[i] for i in ids if i in by_id]


def render_modelfile(gguf_rel: str, converted: Converted, stop: list[str], parameters: dict[str, Any]) -> str:
    """The Modelfile text (deterministic: same inputs, same bytes)."""
    lines = ["# Ollama Modelfile written by olive-ext: ollama create <name> -f Modelfile", f"FROM ./{gguf_rel}"]
    if converted.note:
        lines.append(f"# chat template: {converted.note}")
    lines.append(f'TEMPLATE """{converted.template}"""')
    if converted.system:
        lines.append(f'SYSTEM """{converted.system}"""')
    for text in dict.fromkeys([*converted.stop, *stop]):
        lines.append(f"PARAMETER stop {json.dumps(text)}")
    for key, value in parameters.items():
        lines.append(f"PARAMETER {key} {value}")
    return "\n".join(lines) + "\n"


def write_modelfile(
    bundle: Path,
    gguf_rel: str,
    chat_template: str | None,
    files: TokenizerFiles,
    eos_ids: list[int],
    context_length: int,
) -> Converted:
    """Write ``bundle/Modelfile`` for ``bundle/gguf_rel`` (``files``: its tokenizer files); return the template used."""
    model = (bundle / gguf_rel).parent
    converted = convert_template(chat_template, _special_tokens(files))
    gen = files.generation
    parameters: dict[str, Any] = {"num_ctx": context_length}
    # greedy, as auto-opt measured it, unless the model asks for sampling
    parameters["temperature"] = gen.get("temperature", 0) if gen.get("do_sample") else 0
    if gen.get("do_sample") and gen.get("top_p") is not None:
        parameters["top_p"] = gen["top_p"]
    text = render_modelfile(gguf_rel, converted, token_texts(model, eos_ids, files.tokenizer), parameters)
    (bundle / MODELFILE).write_text(text)
    return converted


# ----------------------------------------------------------------------------- GGUF bundles


def _eos_ids(files: TokenizerFiles) -> list[int]:
    """End-of-turn ids: generation_config's eos_token_id (one or a list), else the tokenizer's eos token."""
    value = files.generation.get("eos_token_id")
    ids = [int(v) for v in value] if isinstance(value, list) else [int(value)] if value is not None else []
    return sorted(set(ids) | eos_token_ids(files.config, files.tokenizer))


def gguf_manifest_fields(stage: Path, files: TokenizerFiles) -> dict[str, Any]:
    """What a GGUF bundle's manifest adds: format, the .gguf's path, quantization, context, end-of-turn ids."""
    marker = json.loads((stage / "model" / MARKER).read_text())
    gguf_rel = f"model/{marker['gguf_file']}"
    config = stage / "model" / "config.json"
    context = 2048
    try:
        trained = trained_context(stage / gguf_rel)
        context = min(trained, context) if trained else context
    except ImportError:  # an old GGUF version needs the gguf package's reader; without it, the HF config's
        if config.exists():
            context = min(int(json.loads(config.read_text()).get("max_position_embeddings", context)), context)
    return {
        "format": "gguf",
        "gguf_file": gguf_rel,
        "quant": marker.get("quant"),
        "precision": marker.get("quant"),
        "context_length": context,
        "eos_token_ids": _eos_ids(files),
        "modelfile": MODELFILE,
    }


def gguf_readme(m: dict[str, Any], measured: list[str]) -> str:
    """README.md of a GGUF bundle: Ollama, llama.cpp and verify instructions, and the measured figures."""
    lines = [
        f"# {m['name']} {m['version']}",
        "",
        f"A GGUF model ({m['quant']}) for llama.cpp and Ollama, built by olive-ext.",
        "",
        "## Run it",
        "",
        "```bash",
        f"ollama create {m['name'].lower()} -f Modelfile && ollama run {m['name'].lower()}",
        f"# or llama.cpp: llama-cli -m {m['gguf_file']} -cnv",
        "```",
        "",
        "`Modelfile` holds the chat template (as a Go template), the stop tokens and the sampling parameters.",
        "",
        "## Check it",
        "",
        "`manifest.json` lists every file with its sha256 and size; the bundle's digest is the sha256 of",
        "`manifest.json` itself. With olive-ext installed (`pip install 'olive-ext[llamacpp]'`), `olive-ext verify",
        "<this folder or its zip> --expect <digest>` checks the digest and every file, loads the model with",
        "llama-cpp-python and checks that a short generation ends its turn.",
        "",
        "## Measured when it was built",
        "",
        *measured,
        "",
    ]
    return "\n".join(lines)
