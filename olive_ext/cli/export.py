"""`olive-ext export`: a fine-tuned model written as GGUF for llama.cpp and Ollama."""

from __future__ import annotations

import argparse
import shlex

from olive_ext.cli.common import add_log_level, option

NAME = "export"
HELP = "write a fine-tuned model as GGUF for llama.cpp and Ollama, or merged as a Hugging Face model"
DESCRIPTION = """Merge the fine-tune's adapter, write the model as GGUF and quantize it with llama.cpp's
own quantizer (needs `pip install 'olive-ext[llamacpp]'`). The output folder holds model/ (the .gguf,
tokenizer and chat template) and model_config.json; `olive-ext package` turns it into a bundle
with an Ollama Modelfile, and `olive-ext verify` checks that bundle. `--format hf` writes the adapter
merged into its base as safetensors instead; a LLaMA-Factory export YAML runs as
`llamafactory-cli export` runs it (flags given beside it win).

  olive-ext export -m out/ft --format gguf --quant Q4_K_M -o out/gguf
  olive-ext package -m out/gguf -o bundles/tone-gguf && olive-ext verify bundles/tone-gguf
  olive-ext export examples/merge_lora/llama3_lora_sft.yaml
"""
ORDER = 35


def add_arguments(p: argparse.ArgumentParser) -> None:
    from olive_ext.passes.gguf_export import GGUF_QUANTS, gguf_quant_name
    from olive_ext.workflows.export import ExportOptions as O

    p.add_argument("config", nargs="?", metavar="LLAMA_FACTORY_YAML",
                   help="a LLaMA-Factory export config (model_name_or_path, adapter_name_or_path, export_dir)")
    option(p, O, "model_name_or_path", "-m", "--model_name_or_path", required=False)
    option(p, O, "adapter_path", "-a", "--adapter_path")
    option(p, O, "output_path", "-o", "--output_path", required=False)
    option(p, O, "overwrite", action="store_true")
    option(p, O, "format")
    option(p, O, "quant", choices=list(GGUF_QUANTS), type=gguf_quant_name)  # q4_k_m as Unsloth writes it
    option(p, O, "trust_remote_code", action="store_true")
    add_log_level(p)


def main(args: argparse.Namespace) -> int:
    import logging

    from olive_ext.console import make_console
    from olive_ext.errors import UserInputError
    from olive_ext.options import validate_options
    from olive_ext.workflows.export import ExportOptions, llama_factory_export_values, run_export

    values, notes = llama_factory_export_values(args.config) if args.config else ({}, [])
    for name in ExportOptions.model_fields:  # a flag given beside the YAML wins; one left at its default does not
        value = getattr(args, name, None)  # (and is not set: `--format hf` refuses a --quant the user gave)
        if value is not None and value != ExportOptions.default_of(name):
            values[name] = value
    for name, flag in (("model_name_or_path", "-m/--model_name_or_path"), ("output_path", "-o/--output_path")):
        if name not in values:
            raise UserInputError(f"{flag} is required", hint="or give a LLaMA-Factory export YAML")
    for note in notes:
        logging.getLogger("olive_ext").warning("%s: %s", args.config, note)
    result = run_export(validate_options(ExportOptions, values))
    console = make_console()
    files = [result.model_file] if result.model_file.is_file() else list(result.model_file.rglob("*"))
    size = sum(f.stat().st_size for f in files if f.is_file()) / 2**20
    what = result.info.get("quant") or "merged, safetensors"
    console.print(f"wrote {result.model_file} ({size:.1f} MiB, {what})", highlight=False, soft_wrap=True)
    if result.info.get("kind") == "hf":  # not a bundle yet: built for a runtime first
        # not where the builder has no class for the model (GPT-2, OPT): that auto-opt refused at once
        from olive_ext.models.folder import config_json
        from olive_ext.onnx.genai_builder import builder_input_problem

        config = config_json(result.model_file)
        if config is None or builder_input_problem(config, result.model_file / "config.json") is None:
            console.print(f"build it for a device with: olive-ext auto-opt -m {shlex.quote(str(result.output_dir))} "
                          "-o <output>", highlight=False, soft_wrap=True)  # fmt: skip
        return 0
    console.print(
        f"bundle it with: olive-ext package -m {shlex.quote(str(result.output_dir))} -o <bundle>",
        highlight=False,
        soft_wrap=True,  # quoted: the line is copied into a shell, and a space split the path
    )
    return 0
