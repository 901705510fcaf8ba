#!/usr/bin/env bash
# Runs on the GPU machine (see ../shared/device/README.md): statespace's benchmark and
# transformers' on the same GPU in the same call, then the ratios.
#   pnpm exec esbuild bench/src/run.ts --bundle --platform=node --format=esm --external:webgpu --conditions=@statespace/source --outfile=/tmp/bench.mjs
#   bash ../shared/device/prepare.sh /tmp/bench.mjs
#   run on the GPU machine, carrying .gpu: bash bench/gpu.sh [bench args...]
set -euo pipefail
source .gpu/env.sh
OUT="${OUT:-/tmp/bench-out}"; mkdir -p "$OUT"
node .gpu/bench.mjs --out "$OUT/statespace.json" --chart "$OUT/decode-vs-context.svg" "$@" 2>&1 | tee "$OUT/statespace.log"
python3 bench/torch_baseline.py --out "$OUT/transformers.json" ${TORCH_ARGS:-} 2>&1 | grep -v Warning | tee "$OUT/transformers.log"
python3 bench/compare.py "$OUT/statespace.json" "$OUT/transformers.json" | tee "$OUT/table.md"
