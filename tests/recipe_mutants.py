"""Mutated recipes for fuzzing `olive-ext validate`: the shipped recipes, bent in the ways users and files go wrong.

One generator serves the hypothesis test (``tests/test_recipe_fuzz.py``, driven by ``st.randoms()``) and the
10,000-mutant run (``benchmarks/fuzz_recipes.py``, driven by ``random.Random(seed)``). A mutant is the bytes of a
file plus its suffix, or a path that is itself the mutation (too long, a folder, a device).
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SEED_FILES = sorted([*ROOT.glob("recipes/*.yaml"), *ROOT.glob("recipes/olive/*.yaml")])

# Words that reach deeper checks than random text: our keys, Olive's keys, pass and dataset names, pydantic's own
# union tags, and values the issue found accepted as valid.
_WORDS = [
    "type", "path", "name", "data", "passes", "pipelines", "targets", "evaluate", "search", "output", "config",
    "input_model", "model", "model_path", "data_configs", "systems", "evaluators", "search_strategy", "engine",
    "load_dataset_config", "pre_process_data_config", "data_files", "text_cols", "accelerators",
    "execution_providers", "metrics", "sub_types", "goal", "value", "train_data", "eval_data", "train_data_config",
    "training_args", "output_dir", "precision", "block_size", "algorithm", "lm_head", "weight_type", "task",
    "lora", "model_builder", "parity_check", "int8_dynamic", "qdq_static", "onnx_export", "LoRA", "ModelBuilder",
    "OnnxDynamicQuantization", "OnnxStaticQuantization", "OnnxConversion", "HfModel", "ONNXModel", "LocalSystem",
    "train", "eval", "tone", "str", "int", "list", "dict", "float", "bool", "[key]", "list[str]", "a[0]",
    "int3", "tpu", "/etc", "fp16", "int4", "cpu", "gpu", "npu", "grid", "tpe", "accuracy", "latency",
    "max_samples", "seed", "sampler", "extra_options", "split", "train[:90%]", "<<", "[/]", "[red]x[/red]", "a\nb",
]  # fmt: skip


@dataclass(frozen=True)
class Mutant:
    """A file's bytes and suffix, or (when ``path`` is set) a path to validate as is."""

    kind: str
    content: bytes = b""
    suffix: str = ".yaml"
    path: str | None = None

    def write(self, folder: Path) -> str:
        """Write the file into ``folder`` (nothing for a path mutant) and return the path to validate."""
        if self.path is not None:
            return self.path
        target = folder / f"mutant{self.suffix}"
        target.write_bytes(self.content)
        return str(target)


# An Olive run config using the sections the shipped ones leave out (systems, evaluators, search), so that their
# translation is fuzzed too.
OLIVE_FULL = """
input_model: {type: HfModel, model_path: org/model, load_kwargs: {trust_remote_code: true}}
systems:
  local_system:
    type: LocalSystem
    accelerators: [{device: cpu, execution_providers: [CPUExecutionProvider]}]
data_configs:
  - name: d
    type: HuggingfaceContainer
    load_dataset_config: {data_files: train.jsonl, split: "train[:90%]"}
    pre_process_data_config: {text_template: "Q: {q}\\nA: {a}", max_seq_len: 512, text_cols: [q, a]}
passes:
  conversion: {type: OnnxConversion, target_opset: 17}
  quant: {type: OnnxDynamicQuantization, weight_type: QInt8, quant_mode: dynamic}
  builder: {type: ModelBuilder, precision: int4, int4_block_size: 32, extra_options: {use_cuda_bf16: true}}
evaluators:
  common:
    metrics:
      - name: acc
        type: accuracy
        data_config: d
        sub_types: [{name: accuracy_score, goal: {type: max-degradation, value: 0.01}}]
      - {name: lat, type: latency, sub_types: [{name: avg, goal: {type: threshold, value: 30}}]}
evaluator: common
search_strategy: {execution_order: joint, sampler: tpe, max_samples: 5, seed: 3, search_algorithm_config: {seed: 1}}
engine: {cache_dir: cache, log_severity_level: 1}
host: local_system
target: local_system
output_dir: models/out
"""


def seed_texts() -> list[tuple[str, str]]:
    """(name, text) of every shipped recipe, and of OLIVE_FULL."""
    return [(p.name, p.read_text(encoding="utf-8")) for p in SEED_FILES] + [("olive-full", OLIVE_FULL)]


def mutate(rng: random.Random, seeds: list[tuple[str, str]] | None = None) -> Mutant:
    """One mutant of a shipped recipe, chosen by ``rng``."""
    seeds = seeds or seed_texts()
    _, text = rng.choice(seeds)
    maker = rng.choices(_MAKERS, weights=[w for w, _ in _MAKER_TABLE])[0]
    return maker(rng, text)


# --------------------------------------------------------------------------- values


def _word(rng: random.Random) -> str:
    return rng.choice(_WORDS)


def _scalar(rng: random.Random) -> Any:
    return rng.choice(
        [
            lambda: rng.randint(-10, 300),
            lambda: rng.choice([0, -5, 2**63, -(2**70), 10**30]),
            lambda: rng.choice([0.5, -1.5, 1e308, float("inf"), float("nan")]),
            lambda: rng.choice([True, False, None]),
            lambda: _word(rng),
            lambda: "",
            lambda: "x" * rng.choice([300, 5000]),
            lambda: "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(1, 12))),
        ]
    )()


def _value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.6:
        return _scalar(rng)
    if roll < 0.8:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {_key(rng): _value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def _key(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.8:
        return _word(rng)
    if roll < 0.9:
        return rng.choice([0, 1, -1, True, None, 1.5])
    return _word(rng) + rng.choice(["[", "]", ".", " ", "x", "_2"])


# --------------------------------------------------------------------------- tree mutations


def _nodes(tree: Any, out: list[tuple[Any, Any]] | None = None) -> list[tuple[Any, Any]]:
    """(container, key) of every value in the tree, the root excluded."""
    out = [] if out is None else out
    if isinstance(tree, dict):
        for k in list(tree):
            out.append((tree, k))
            _nodes(tree[k], out)
    elif isinstance(tree, list):
        for i in range(len(tree)):
            out.append((tree, i))
            _nodes(tree[i], out)
    return out


def _tree_op(rng: random.Random, tree: Any) -> Any:
    nodes = _nodes(tree)
    if not nodes:
        return _value(rng)
    parent, key = rng.choice(nodes)
    op = rng.randrange(9)
    if op == 0:
        parent[key] = _value(rng)
    elif op == 1 and isinstance(parent, dict):
        del parent[key]
    elif op == 2 and isinstance(parent, dict):
        parent[_key(rng)] = _value(rng)
    elif op == 3 and isinstance(parent, dict):
        parent[_key(rng)] = parent.pop(key)
    elif op == 4:
        parent[key] = [parent[key]]
    elif op == 5 and isinstance(parent[key], dict):
        parent[key] = [dict([item]) for item in parent[key].items()]
    elif op == 6:
        parent[key] = copy.deepcopy(rng.choice(nodes)[0])
    elif op == 7 and isinstance(parent[key], dict):
        parent[key] = {_word(rng): v for v in parent[key].values()}
    else:
        parent[key] = rng.choice([None, {}, [], "", [{}, []], {"type": _word(rng)}])
    return tree


def _dump(rng: random.Random, tree: Any) -> Mutant:
    if rng.random() < 0.3:
        text = json.dumps(tree, default=str, indent=rng.choice([None, 2]))
        return Mutant("tree-json", text.encode(), ".json")
    try:
        text = yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)
    except yaml.YAMLError:
        text = json.dumps(tree, default=str)
    return Mutant("tree-yaml", text.encode("utf-8", "surrogatepass"), ".yaml")


def _tree(rng: random.Random, text: str) -> Mutant:
    tree = yaml.safe_load(text)
    for _ in range(rng.randint(1, 4)):
        tree = _tree_op(rng, tree)
    return _dump(rng, tree)


# --------------------------------------------------------------------------- text mutations


def _text(rng: random.Random, text: str) -> Mutant:
    data = bytearray(text.encode())
    for _ in range(rng.randint(1, 6)):
        op, at = rng.randrange(6), rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 2:
            del data[at : at + rng.randint(1, 40)]
        elif op == 3:
            lines = bytes(data).split(b"\n")
            i = rng.randrange(len(lines))
            lines.insert(i, lines[min(len(lines) - 1, rng.randrange(len(lines)))])
            data = bytearray(b"\n".join(lines))
        elif op == 4:
            data[at:at] = rng.choice([b"&a ", b"*a", b"<<: *a\n", b": ", b"- ", b"{", b"[", b"!!binary ", b"\t"])
        else:
            data = data[:at]
    return Mutant("text", bytes(data), rng.choice([".yaml", ".yaml", ".json", ".yml"]))


# --------------------------------------------------------------------------- the inputs the issue found


def _deep(rng: random.Random, text: str) -> Mutant:
    depth = rng.choice([50, 200, 999, 1000, 1500, 5000])
    style = rng.randrange(4)
    if style == 0:
        body = "[" * depth + "1" + "]" * depth
        return Mutant("deep-flow", f"input_model: {{path: m}}\npasses: {body}\n".encode())
    if style == 1:
        lines = "".join(" " * i + "a:\n" for i in range(min(depth, 2000)))
        return Mutant("deep-block", f"input_model: {{path: m}}\npasses:\n{lines}".encode())
    if style == 2:
        body = '{"a":' * depth + "1" + "}" * depth
        return Mutant("deep-json", f'{{"input_model": {{"path": "m"}}, "passes": {body}}}'.encode(), ".json")
    body = "[" * depth + "]" * depth
    return Mutant("deep-json", f'{{"input_model": {{"path": "m"}}, "data": {body}}}'.encode(), ".json")


def _laughs(rng: random.Random, text: str) -> Mutant:
    levels = rng.choice([5, 9, 12])
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    step = rng.choice(
        ["type: lora, lora_r", "type: lora, target_modules", "type: lora, training_args", "type: model_builder, "
         "extra_options", "type: model_builder, block_size", "type: LoRA, r", "type: toy, x"]
    )  # fmt: skip
    model = "input_model: {type: HfModel, model_path: m}" if "LoRA" in step else "input_model: {path: m}"
    lines += [model, f"passes: {{t: {{{step}: *l{levels - 1}}}}}"]
    return Mutant("laughs", ("\n".join(lines) + "\n").encode())


def _cycle(rng: random.Random, text: str) -> Mutant:
    return Mutant("alias-cycle", b"input_model: {path: m}\npasses: &p {t: {type: lora, r: *p}}\nx: &a [*a]\n")


def _dupes(rng: random.Random, text: str) -> Mutant:
    if rng.random() < 0.5:
        return Mutant("dupe-json", b'{"input_model": {"path": "a"}, "input_model": {"path": "b"}}', ".json")
    lines = text.splitlines()
    keyed = [i for i, line in enumerate(lines) if ":" in line and not line.lstrip().startswith("#")]
    i = rng.choice(keyed)
    lines.insert(i + 1, lines[i].split(":")[0] + ": 1" if lines[i].split(":")[0].strip() else lines[i])
    return Mutant("dupe-yaml", "\n".join(lines).encode())


def _bigint(rng: random.Random, text: str) -> Mutant:
    digits = "9" * rng.choice([4300, 4301, 5000, 20000])
    if rng.random() < 0.5:
        return Mutant("bigint-json", f'{{"input_model": {{"path": "m"}}, "search": {{"seed": {digits}}}}}'.encode())
    return Mutant("bigint-yaml", f"input_model: {{path: m}}\nsearch: {{seed: {digits}}}\n".encode())


def _binary(rng: random.Random, text: str) -> Mutant:
    choice = rng.randrange(6)
    if choice == 0:
        return Mutant("binary", bytes(rng.randrange(256) for _ in range(rng.randint(1, 2000))))
    if choice == 1:
        return Mutant("utf16", text.encode("utf-16"))
    if choice == 2:
        return Mutant("latin1", text.replace("path", "päth").encode("latin-1", "replace"))
    if choice == 3:
        return Mutant("bom", b"\xef\xbb\xbf" + text.encode())
    if choice == 4:
        return Mutant("empty", rng.choice([b"", b"# nothing\n", b"---\n", b"null\n", b"[]\n", b"42\n"]))
    return Mutant("nul", text.encode().replace(b"\n", b"\n\x00", 1))


def _paths(rng: random.Random, text: str) -> Mutant:
    return Mutant(
        "path",
        path=rng.choice(
            [
                "a" * 5000 + ".yaml",
                "/".join(["d" * 200] * 30) + "/r.yaml",
                "x\x00y.yaml",
                "/dev/null",
                "/dev/zero",
                "/",
                "[/red].yaml",
                "missing.yaml",
                "",
            ]
        ),
    )


_MAKER_TABLE: list[tuple[float, Callable[[random.Random, str], Mutant]]] = [
    (40, _tree),
    (25, _text),
    (6, _deep),
    (3, _laughs),
    (1, _cycle),
    (6, _dupes),
    (4, _bigint),
    (10, _binary),
    (5, _paths),
]
_MAKERS = [m for _, m in _MAKER_TABLE]
