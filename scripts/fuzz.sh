#!/usr/bin/env bash
# Fuzzes the parsers that face hostile input: the config compiler, the request path normalizer
# and header forwarding (the target read, hop-by-hop stripping, the forwarding headers).
#
#   bash scripts/fuzz.sh                 # 30 s per target (what CI runs)
#   FUZZ_SECONDS=3600 bash scripts/fuzz.sh path_normalize   # one target for an hour
#
# Uses cargo-fuzz (libFuzzer) from crates.io, installed on first use. rampart's crates forbid
# unsafe code, so the targets are built without a sanitizer (`-s none`): what the fuzzer looks
# for is a panic or a broken invariant, which needs none. RUSTC_BOOTSTRAP lets the stable
# toolchain accept the coverage flags cargo-fuzz passes. Crashes land in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER=${FUZZ_SECONDS:-30}
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(config_compile path_normalize forward_headers)
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
# Seeds: the example configs, and a few request targets.
mkdir -p fuzz/corpus/config_compile fuzz/corpus/path_normalize fuzz/corpus/forward_headers
cp examples/*.yaml fuzz/corpus/config_compile/
printf '/x/%%2e%%2e/secure' >fuzz/corpus/path_normalize/dots
printf '/a//b/./c/..;/d%%2F' >fuzz/corpus/path_normalize/mixed
printf '/v1/x?y=1\nhost: api.example.com:8080\nx-forwarded-for: 10.0.0.1\nforwarded: for=1.2.3.4\nconnection: keep-alive, x-a\n' \
  >fuzz/corpus/forward_headers/basic
for t in "${TARGETS[@]}"; do
  echo "== fuzz $t for ${SECONDS_PER}s"
  (cd fuzz && cargo fuzz run -s none "$t" -- -max_total_time="$SECONDS_PER" -print_final_stats=1 2>&1) |
    grep -E "^Done|stat::number_of_executed_units|ERROR|panicked|SUMMARY|Test unit written" || true
  # cargo fuzz exits non-zero on a crash; check the artifacts folder, which is the verdict.
  if compgen -G "fuzz/artifacts/$t/crash-*" >/dev/null; then
    echo "fuzz $t found a crash: fuzz/artifacts/$t/"; exit 1
  fi
done
