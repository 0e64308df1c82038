#!/usr/bin/env bash
# Fuzz smoke: a short, bounded, reproducible atheris run of each target in tests/fuzz/
# against the ASan+UBSan build made by .ci/asan.sh.  For each target: replay the checked-in
# seed corpus, then fuzz for FE_FUZZ_SECONDS (default 60) with a fixed seed.  New inputs
# go to a scratch corpus (never into the checkout); crashes are written to
# $FE_FUZZ_OUT/crashes-<target>/ (default $TMPDIR/fastembed-fuzz) and fail the script.
#   bash .ci/fuzz.sh                 # all targets
#   bash .ci/fuzz.sh fuzz_vectors    # one target
# Needs the ASan venv: (re)built here by `.ci/asan.sh --build-only` unless
# FE_FUZZ_NO_BUILD=1 and the venv exists.  See tests/fuzz/README.md for longer runs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
VENV="${FE_ASAN_VENV:-${TMPDIR:-/tmp}/fastembed-asan-venv}"
OUT="${FE_FUZZ_OUT:-${TMPDIR:-/tmp}/fastembed-fuzz}"
SECONDS_PER_TARGET="${FE_FUZZ_SECONDS:-60}"
SEED="${FE_FUZZ_SEED:-12345}"

if [ "${FE_FUZZ_NO_BUILD:-0}" != 1 ] || [ ! -x "$VENV/bin/python" ]; then
  bash "$ROOT/.ci/asan.sh" --build-only
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q "atheris>=2.3" 2> >(grep -v "is ignored: it is neither" >&2)

rm -rf "$OUT"
mkdir -p "$OUT"
# gcc's libasan exports weak no-op coverage callbacks that would shadow the ones in
# atheris' bundled libFuzzer (Python coverage would never reach it: blind fuzzing).  The
# shim (tests/fuzz/cov_shim.c) forwards them; it must precede libasan, hence
# verify_asan_link_order=0.  libstdc++ is preloaded so ASan can intercept __cxa_throw.
SHIM="$OUT/libfe_cov_shim.so"
gcc -shared -fPIC -O1 -o "$SHIM" "$ROOT/tests/fuzz/cov_shim.c" -ldl
PRELOAD="$SHIM:$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libstdc++.so)"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:detect_container_overflow=0:allocator_may_return_null=1:verify_asan_link_order=0:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONMALLOC=malloc

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(fuzz_ops fuzz_vectors fuzz_tokenizer_json); fi
cd "$OUT"  # import fastembed from the ASan venv, not from the checkout
status=0
for t in "${targets[@]}"; do
  script="$ROOT/tests/fuzz/$t.py"
  seeds="$ROOT/tests/fuzz/corpus/$t"
  work="$OUT/corpus-$t"
  crashes="$OUT/crashes-$t"
  mkdir -p "$work" "$crashes"
  echo "== fuzz $t: replaying $(ls "$seeds" | wc -l) seed inputs"
  if ! env LD_PRELOAD="$PRELOAD" "$PY" "$script" -runs=0 -artifact_prefix="$crashes/" \
      "$seeds" >"$OUT/$t-replay.log" 2>&1; then
    grep -v "^INFO: Instrumenting" "$OUT/$t-replay.log" | tail -n 60
    echo "== fuzz $t: FAILED on the seed corpus"
    status=1
    continue
  fi
  echo "== fuzz $t: ${SECONDS_PER_TARGET}s, seed $SEED"
  if ! env LD_PRELOAD="$PRELOAD" "$PY" "$script" -seed="$SEED" \
      -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=4096 -timeout=30 -max_len=4096 \
      -print_final_stats=1 -artifact_prefix="$crashes/" "$work" "$seeds" \
      >"$OUT/$t.log" 2>&1; then
    grep -v "^INFO: Instrumenting" "$OUT/$t.log" | tail -n 80
    echo "== fuzz $t: FAILED; reproducer(s) in $crashes: $(ls "$crashes")"
    echo "   replay one with: python tests/fuzz/$t.py <file>  (same environment)"
    status=1
    continue
  fi
  grep -E "DONE|stat::number_of_executed_units|stat::peak_rss_mb" "$OUT/$t.log" | tr '\n' ' '
  echo
  echo "== fuzz $t: ok"
done
exit $status
