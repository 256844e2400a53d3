"""Running the onnxruntime-genai model builder's Python entry point and finishing its output folder."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from olive_ext.errors import MissingDependencyError, PassError
from olive_ext.quiet import QUANTIZER_LOGGERS, quiet_loggers

logger = logging.getLogger("olive_ext")


def build_genai(
    model: str, out: Path, precision: str, provider: str, options: dict[str, str], cache: Path, pass_name: str
) -> None:
    """Run the genai builder's Python entry point; its console output goes to the debug log."""
    local = Path(model).is_dir()
    text = io.StringIO()
    try:
        from onnxruntime_genai.models.builder import create_model, parse_extra_options
    except ImportError as e:
        raise MissingDependencyError("onnxruntime-genai", "building genai models") from e
    args = (None if local else model, model if local else "", str(out), precision, provider, str(cache))
    try:
        with quiet_loggers(*QUANTIZER_LOGGERS), contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
            parsed = parse_extra_options(*args, [f"{k}={v}" for k, v in options.items()])
            create_model(*args, **parsed)
    except (ValueError, NotImplementedError, AssertionError, KeyError) as e:
        shown = ", ".join(f"{k}={v}" for k, v in options.items() if k not in {"hf_token", "adapter_path"})
        unsupported = isinstance(e, NotImplementedError) and "not currently supported" in str(e)
        if unsupported:
            hint = (
                "the builder supports Llama, Mistral, Phi, Qwen, Gemma, Granite, SmolLM3 and similar LLMs; "
                "use onnx_export for other models"
            )
        elif "reshape" in str(e) and options.get("algo_config") == "k_quant":
            hint = (
                f"k_quant needs every weight's input size (the hidden and MLP sizes) to be a multiple of twice the "
                f"block_size, and {options.get('block_size')} is too large for this model: try 32 (or 16)"
            )
        else:
            hint = "change the option the message names (a block size larger than the model's hidden size, for one)"
        raise PassError(
            pass_name,
            f"the genai model builder refused precision={precision}, execution_provider={provider}, "
            f"options ({shown or 'none'}): {type(e).__name__}: {e}",
            hint=hint,
        ) from e
    finally:
        logger.debug("genai builder output:\n%s", text.getvalue()[-4000:])


def finish_genai_config(out: Path, threads: int | None, search: dict[str, Any]) -> None:
    """Write the thread count and search overrides into genai_config.json."""
    if threads is None and not search:
        return
    path = out / "genai_config.json"
    config = json.loads(path.read_text())
    if threads is not None:
        config["model"]["decoder"].setdefault("session_options", {})["intra_op_num_threads"] = threads
    config["search"] = {**config.get("search", {}), **search}
    path.write_text(json.dumps(config, indent=4))


def num_layers(model: str) -> int:
    config = json.loads((Path(model) / "config.json").read_text())
    return int(config.get("num_hidden_layers") or config.get("text_config", {}).get("num_hidden_layers", 0))


def copy_tokenizer_files(adapter: Path, out: Path) -> None:
    """Fine-tuning saves the tokenizer and chat template it used beside the adapter; ship those."""
    if not (adapter / "tokenizer_config.json").exists():
        return
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        if (adapter / name).exists():
            shutil.copy2(adapter / name, out / name)
