"""Tiny models built in code for unit tests: nothing is downloaded.

``build_tiny_llama`` writes a 2-layer, 64-dim Llama (tied embeddings, grouped KV heads,
like SmolLM2) with a byte-level BPE tokenizer trained here and a ChatML chat template.
``build_tiny_bert`` writes a 2-layer BERT sequence classifier with a WordPiece tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_WORDS = [
    "the",
    "a",
    "an",
    "is",
    "are",
    "was",
    "of",
    "to",
    "in",
    "and",
    "or",
    "not",
    "yes",
    "no",
    "positive",
    "negative",
    "neutral",
    "happy",
    "sad",
    "angry",
    "calm",
    "question",
    "answer",
    "classify",
    "sentiment",
    "tone",
    "review",
    "product",
    "great",
    "terrible",
    "okay",
    "fine",
    "love",
    "hate",
    "city",
    "paris",
    "london",
    "rome",
    "tokyo",
    "capital",
    "country",
    "france",
    "england",
    "italy",
    "japan",
    "what",
    "which",
    "who",
    "how",
    "why",
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "plus",
    "minus",
    "equals",
    "number",
    "word",
    "user",
    "assistant",
    "system",
    "hello",
    "world",
    "model",
    "data",
    "train",
    "test",
    "cat",
    "dog",
    "bird",
    "fish",
    "red",
    "green",
    "blue",
    "small",
    "large",
    "fast",
    "slow",
]


def _corpus() -> list[str]:
    import random

    rng = random.Random(0)
    lines = []
    for _ in range(2000):
        n = rng.randint(3, 12)
        lines.append(" ".join(rng.choice(_WORDS) for _ in range(n)) + rng.choice([".", "?", "!", ""]))
    lines += [str(i) for i in range(200)]
    lines += ["Q: A: Input: Output: Label: ### Answer: {} [] () , ; : - _ / \\ ' \" \n"]
    return lines


def _wordpiece_tokenizer(path: Path) -> Any:
    """A lowercase WordPiece tokenizer over ``_corpus()``, saved to ``path``; the same ids on every run.

    tokenizers' WordPiece trainer breaks ties in hash order, so its vocabulary (and so the random model's
    outputs) changed from run to run; the vocabulary here is the corpus's words and characters, sorted.
    """
    from tokenizers import BertWordPieceTokenizer, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    norm, split = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = {w for line in _corpus() for w, _ in split.pre_tokenize_str(norm.normalize_str(line))}
    chars = sorted({c for w in words for c in w})
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    tokens += sorted(w for w in words if len(w) > 1)
    wp = BertWordPieceTokenizer(vocab={t: i for i, t in enumerate(tokens)}, lowercase=True)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=wp._tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    )  # fmt: skip
    tok.save_pretrained(path)
    return tok


def build_tokenizer(path: Path, vocab_size: int = 512) -> object:
    """A byte-level BPE tokenizer with ChatML special tokens, saved to ``path``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    fast.chat_template = CHATML
    fast.save_pretrained(path)
    return fast


def build_tiny_llama(path: Path, seed: int = 0, hidden: int = 64, layers: int = 2) -> Path:
    """Write a tiny LlamaForCausalLM plus tokenizer to ``path`` and return it."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    path.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(path)
    config = LlamaConfig(
        vocab_size=len(tok),  # type: ignore[arg-type]
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,  # type: ignore[attr-defined]
        eos_token_id=tok.eos_token_id,  # type: ignore[attr-defined]
        pad_token_id=tok.pad_token_id,  # type: ignore[attr-defined]
        rms_norm_eps=1e-5,
        architectures=["LlamaForCausalLM"],
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    # Larger-than-default init so the random model's logits are not all near zero.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.08)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
    )
    model.save_pretrained(path)
    return path


def build_tiny_bert(path: Path, seed: int = 0, num_labels: int = 2) -> Path:
    """Write a tiny BertForSequenceClassification plus WordPiece tokenizer to ``path``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    path.mkdir(parents=True, exist_ok=True)
    tok = _wordpiece_tokenizer(path)
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=num_labels,
        architectures=["BertForSequenceClassification"],
        id2label={i: f"LABEL_{i}" for i in range(num_labels)},
        label2id={f"LABEL_{i}": i for i in range(num_labels)},
    )
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(path)
    return path


def make_random_adapter(
    base: Path, out: Path, seed: int = 1, r: int = 4, dora: bool = False, **lora: Any
) -> Path:
    """A LoRA (``dora``: DoRA) adapter with random (non-zero) B matrices, so it changes the model's outputs;
    ``lora``: other LoraConfig fields (target_modules, layers_to_transform, lora_bias, ...)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=r, lora_alpha=2 * r, use_dora=dora, **{"target_modules": "all-linear", **lora})
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    peft_model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


# Per-family extras on top of the shared tiny shape (2 layers, hidden 64, 4 heads, 2 KV heads):
# (config class, model class, config overrides). The configs are transformers 5's own classes, so
# what save_pretrained writes is transformers 5's config format (``rope_parameters``, ``layer_types``).
DECODER_FAMILIES: dict[str, tuple[str, str, dict[str, object]]] = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "mistral": ("MistralConfig", "MistralForCausalLM", {"sliding_window": 64}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 16}),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", {"original_max_position_embeddings": 512, "tie_word_embeddings": False}),
    # partial rotary: onnxruntime's kernel needs the rotary half-dim a multiple of 8, so head_dim 32
    "phi": (
        "PhiConfig",
        "PhiForCausalLM",
        {
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "partial_rotary_factor": 0.5,
            "tie_word_embeddings": False,
        },
    ),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", {"head_dim": 16}),
    "gemma2": (
        "Gemma2Config",
        "Gemma2ForCausalLM",
        {"head_dim": 16, "sliding_window": 32, "query_pre_attn_scalar": 16},
    ),
    "gemma3": (
        "Gemma3TextConfig",
        "Gemma3ForCausalLM",
        {
            "head_dim": 16,
            "sliding_window": 32,
            "query_pre_attn_scalar": 16,
            "layer_types": ["sliding_attention", "full_attention"],
        },
    ),
    "granite": ("GraniteConfig", "GraniteForCausalLM", {"logits_scaling": 4.0}),
    "olmo": ("OlmoConfig", "OlmoForCausalLM", {"tie_word_embeddings": False}),
    "nemotron": ("NemotronConfig", "NemotronForCausalLM", {"head_dim": 32, "tie_word_embeddings": False}),
    "smollm3": ("SmolLM3Config", "SmolLM3ForCausalLM", {}),
    "ernie4_5": ("Ernie4_5Config", "Ernie4_5ForCausalLM", {"head_dim": 16}),
    "gpt_oss": (
        "GptOssConfig",
        "GptOssForCausalLM",
        {
            "head_dim": 16,
            "num_local_experts": 2,
            "num_experts_per_tok": 1,
            "sliding_window": 32,
            "tie_word_embeddings": False,
        },
    ),
    "hunyuan": ("HunYuanDenseV1Config", "HunYuanDenseV1ForCausalLM", {"head_dim": 16}),
    "lfm2": ("Lfm2Config", "Lfm2ForCausalLM", {"layer_types": ["conv", "full_attention"]}),
}


def build_tiny_decoder(
    path: Path, family: str, seed: int = 0, hidden: int = 64, layers: int = 2, embed_std: float = 0.08
) -> Path:
    """Write a tiny random-weight ``family`` causal LM (see DECODER_FAMILIES) plus the ChatML BPE tokenizer.

    ``embed_std`` is the spread of the (tied) embeddings, the other weights' is 0.08: a larger one lets the
    token embeddings dominate the residual stream, which gives peaked next-token distributions like a
    trained model's instead of the flat ones of random weights (where int4 noise flips the top token).
    """
    import torch
    import transformers
    from transformers import GenerationConfig

    config_name, model_name, extra = DECODER_FAMILIES[family]
    path.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(path)
    shape: dict[str, object] = {
        "vocab_size": len(tok),  # type: ignore[arg-type]
        "hidden_size": hidden,
        "intermediate_size": hidden * 2,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "tie_word_embeddings": True,
        "bos_token_id": tok.bos_token_id,  # type: ignore[attr-defined]
        "eos_token_id": tok.eos_token_id,  # type: ignore[attr-defined]
        "pad_token_id": tok.pad_token_id,  # type: ignore[attr-defined]
        "architectures": [model_name],
    }
    config = getattr(transformers, config_name)(**{**shape, **extra})
    rope = getattr(config, "rope_parameters", None)
    if isinstance(rope, dict) and rope.get("rope_type") == "default":
        # not the builder's fallback (10000), so a theta it failed to read shows up as a parity failure
        rope["rope_theta"] = 50000.0
    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(config)
    # Larger-than-default init so the random model's logits are not all near zero.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0, embed_std if "embed" in name else 0.08)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
    )
    model.save_pretrained(path)
    return path


# Encoders: (config class, model class, config overrides) on a 2-layer, 32-dim shape. "e5-bge" is the
# sentence-embedding kind (E5, BGE, GTE): a plain BertModel whose hidden states are pooled outside.
ENCODER_FAMILIES: dict[str, tuple[str, str, dict[str, object]]] = {
    "bert": ("BertConfig", "BertForSequenceClassification", {}),
    "roberta": ("RobertaConfig", "RobertaForSequenceClassification", {}),
    "distilbert": ("DistilBertConfig", "DistilBertForSequenceClassification", {"hidden_dim": 64}),
    "xlm-roberta": ("XLMRobertaConfig", "XLMRobertaForSequenceClassification", {}),
    "mpnet": ("MPNetConfig", "MPNetForSequenceClassification", {}),
    "e5-bge": ("BertConfig", "BertModel", {}),
}


def build_tiny_encoder(path: Path, family: str, seed: int = 0) -> Path:
    """Write a tiny random-weight ``family`` encoder (see ENCODER_FAMILIES) with the WordPiece tokenizer."""
    import torch
    import transformers

    config_name, model_name, extra = ENCODER_FAMILIES[family]
    path.mkdir(parents=True, exist_ok=True)
    tok = _wordpiece_tokenizer(path)
    shape: dict[str, object] = {
        "vocab_size": len(tok), "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 64, "max_position_embeddings": 160, "pad_token_id": tok.pad_token_id,
        "architectures": [model_name], "num_labels": 2,
        "id2label": {0: "LABEL_0", 1: "LABEL_1"}, "label2id": {"LABEL_0": 0, "LABEL_1": 1},
    }  # fmt: skip
    config = getattr(transformers, config_name)(**{**shape, **extra})
    torch.manual_seed(seed)
    getattr(transformers, model_name)(config).save_pretrained(path)
    return path


def add_bos_post_processor(path: Path) -> int:
    """Make the tokenizer in ``path`` put its BOS before every text, as Llama 2/3, Mistral and Gemma tokenizers do
    (a ``TemplateProcessing`` post-processor); returns the BOS id."""
    import json

    config = json.loads((path / "tokenizer_config.json").read_text())
    tokenizer = json.loads((path / "tokenizer.json").read_text())
    bos = config["bos_token"]
    bos_id = next(t["id"] for t in tokenizer["added_tokens"] if t["content"] == bos)
    first = {"SpecialToken": {"id": bos, "type_id": 0}}
    tokenizer["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [first, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [first, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}},
    }
    (path / "tokenizer.json").write_text(json.dumps(tokenizer))
    return int(bos_id)
