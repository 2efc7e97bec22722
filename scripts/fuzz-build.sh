#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and runs each one briefly from its seed
# corpus, so a fuzz target that no longer builds or crashes at once is caught.
#   scripts/fuzz-build.sh [SECONDS_PER_TARGET]   (default 10; 0 only builds)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}

bash scripts/install-deps.sh
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz

[ "${seconds}" -gt 0 ] || exit 0
for target in fuzz/fuzz_*.cpp; do
  name=$(basename "${target}" .cpp)
  work=$(mktemp -d)
  echo "== ${name}: ${seconds}s"
  # New inputs go to a scratch folder; the checked-in corpus is only read.
  status=0
  build/fuzz/fuzz/"${name}" -max_total_time="${seconds}" -print_final_stats=1 \
    -dict=fuzz/pop3.dict -artifact_prefix="${work}.crash-" "${work}" fuzz/corpus/"${name}" >"${work}.log" 2>&1 || status=$?
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY)' "${work}.log" || true
  if [ "${status}" -ne 0 ]; then
    tail -n 40 "${work}.log" >&2
    # Keep the crashing input where a developer finds it, to make it a named regression test.
    mkdir -p fuzz/findings && mv "${work}".crash-* fuzz/findings/ 2>/dev/null || true
  fi
  rm -f "${work}.log"
  rm -rf "${work}"
  if [ "${status}" -ne 0 ]; then
    echo "${name} failed (exit ${status})" >&2
    exit 1
  fi
done
