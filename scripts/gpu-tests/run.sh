#!/usr/bin/env bash
# Runs the bundled kernel tests (see build.sh) on whatever adapter Dawn finds; prints one closing line.
cd "$(dirname "$0")/../.."
[ -e node_modules ] || ln -s "$PWD/.gpu/node_modules" node_modules
passed=0; failed=0
for f in $(find packages -name '*.gpu-test.mjs' | sort); do
  line=$(NODE_PATH="$PWD/.gpu/node_modules" node "$f" 2>&1 | grep -v '^Warning\|at Init\|While init\|^ - While' | tee /dev/stderr | tail -1)
  p=$(echo "$line" | sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed/\1/p'); q=$(echo "$line" | sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed/\2/p')
  passed=$((passed + ${p:-0})); failed=$((failed + ${q:-1}))
done
echo "gpu kernel tests: $passed passed, $failed failed"
