#!/usr/bin/env bash
# Bundles the kernel test files with a vitest stand-in so they run on the GPU machine (node only, no npm):
#   bash scripts/gpu-tests/build.sh && bash ../shared/device/prepare.sh
#   then on the GPU machine (carry .gpu):  source .gpu/env.sh && bash scripts/gpu-tests/run.sh
# Each bundle is written beside its test file (*.gpu-test.mjs, gitignored) so fixture paths relative to the test still resolve.
set -euo pipefail
cd "$(dirname "$0")/../.."
files=$(git ls-files 'packages/core/src/*.test.ts' 'packages/core/src/**/*.test.ts' 'packages/scan-wgsl/src/*.test.ts' 'packages/ssd/src/*.test.ts' 'packages/attention/src/*.test.ts' 'packages/deltanet/src/*.test.ts' 'packages/hybrid/src/*.test.ts' 'packages/s4d/src/*.test.ts' 'packages/mamba3/src/*.test.ts')
for f in $files; do
  out="${f%.test.ts}.gpu-test.mjs"
  entry="$(mktemp --suffix=.ts -p "$(dirname "$f")")"
  printf 'import { runAll } from "%s";\nimport "./%s";\nconst r = await runAll("%s");\nprocess.exit(r.failed ? 1 : 0);\n' "$PWD/scripts/gpu-tests/vitest-shim.ts" "$(basename "$f")" "$f" > "$entry"
  pnpm exec esbuild "$entry" --bundle --platform=node --format=esm --external:webgpu --conditions=@statespace/source --alias:vitest="$PWD/scripts/gpu-tests/vitest-shim.ts" --outfile="$out" --ignore-annotations --log-level=error
  rm -f "$entry"
done
echo "bundled $(echo "$files" | wc -w) test files"
