"""`olive-ext export`: a fine-tuned model written as GGUF for llama.cpp and Ollama."""

from __future__ import annotations

import argparse
import shlex

from olive_ext.cli.common import add_log_level, add_output, option

NAME = "export"
HELP = "write a fine-tuned model as GGUF (llama.cpp quantization) for llama.cpp and Ollama"
DESCRIPTION = """Merge the fine-tune's adapter, write the model as GGUF and quantize it with llama.cpp's
own quantizer (needs `pip install 'olive-ext[llamacpp]'`). The output folder holds model/ (the .gguf,
tokenizer and chat template) and model_config.json; `olive-ext package` turns it into a bundle
with an Ollama Modelfile, and `olive-ext verify` checks that bundle.

  olive-ext export -m out/ft --format gguf --quant Q4_K_M -o out/gguf
  olive-ext package -m out/gguf -o bundles/tone-gguf && olive-ext verify bundles/tone-gguf
"""
ORDER = 35


def add_arguments(p: argparse.ArgumentParser) -> None:
    from olive_ext.passes.gguf_export import GGUF_QUANTS
    from olive_ext.workflows.export import ExportOptions as O

    option(p, O, "model_name_or_path", "-m", "--model_name_or_path")
    option(p, O, "adapter_path", "-a", "--adapter_path")
    add_output(p, O)
    option(p, O, "format")
    option(p, O, "quant", choices=list(GGUF_QUANTS))
    option(p, O, "trust_remote_code", action="store_true")
    add_log_level(p)


def main(args: argparse.Namespace) -> int:
    from olive_ext.cli.common import options_from_args
    from olive_ext.console import make_console
    from olive_ext.workflows.export import ExportOptions, run_export

    result = run_export(options_from_args(ExportOptions, args))
    console = make_console()
    size = result.model_file.stat().st_size / 2**20
    console.print(
        f"wrote {result.model_file} ({size:.1f} MiB, {result.info['quant']})", highlight=False, soft_wrap=True
    )
    console.print(
        f"bundle it with: olive-ext package -m {shlex.quote(str(result.output_dir))} -o <bundle>",
        highlight=False,
        soft_wrap=True,  # quoted: the line is copied into a shell, and a space split the path
    )
    return 0
