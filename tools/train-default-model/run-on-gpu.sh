#!/usr/bin/env bash
# The one command that trains the default model end to end on the GPU machine.
# Run from the repository root: tools/train-default-model/run-on-gpu.sh [extra train.py flags]
# Reads tools/train-default-model/corpus.txt.xz; writes the model folder to $OUT/default/.
# SMOKE=1 first runs a 30-step pass into a scratch folder so that a bug after training shows
# up in seconds, not after the full run.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CUBLAS_WORKSPACE_CONFIG=:4096:8 PYTHONHASHSEED=0 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
out="${OUT:-/tmp/statespace-default-model}/default"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c 'import torch, transformers, tokenizers; print("torch", torch.__version__, "transformers", transformers.__version__, "tokenizers", tokenizers.__version__)'
if [ "${SMOKE:-0}" = "1" ]; then
  smoke="$(mktemp -d)"
  python3 tools/train-default-model/train.py --out "$smoke" --steps 30 --eval-every 20 "$@"
  rm -rf "$smoke"
fi
python3 tools/train-default-model/train.py --out "$out" "$@"
ls -la "$out"
