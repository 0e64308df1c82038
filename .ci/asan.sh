#!/usr/bin/env bash
# Sanitizer pass: build the extension from this checkout with gcc's AddressSanitizer and
# UndefinedBehaviorSanitizer into its own venv and build dir, then run the test suite
# against it.  Any sanitizer report stops the process (halt_on_error), so this script
# exits non-zero on the first report.  Runs standalone from a clean checkout:
#   bash .ci/asan.sh              # build + full test suite
#   bash .ci/asan.sh --build-only # just (re)build the ASan venv (used by .ci/fuzz.sh)
#   bash .ci/asan.sh tests/test_errors.py -x   # extra args go to pytest instead of the suite
# Environment: FE_ASAN_VENV (default $TMPDIR/fastembed-asan-venv, reused if present),
# FE_ASAN_FRESH=1 to recreate it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
VENV="${FE_ASAN_VENV:-${TMPDIR:-/tmp}/fastembed-asan-venv}"
BUILD_DIR="$ROOT/build/asan"

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CFLAGS_SAN="$SAN -O1 -g"

if [ "${FE_ASAN_FRESH:-0}" = 1 ]; then rm -rf "$VENV"; fi
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
# pip's exit status is kept; only the local-index noise is filtered from its stderr.
pip_install() { "$PY" -m pip install -q "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
# Build requirements (installed here because the build runs without isolation, so the
# flags below reach CMake) and the test requirements.  torch imports and runs fine under
# the ASan runtime (checked with torch 2.13 CPU), so the torch comparisons run here too.
pip_install "scikit-build-core>=0.10" "pybind11>=2.12" "cython>=3.0" \
  "cython-cmake>=0.2" cmake ninja numpy "pytest>=7" "hypothesis>=6" "pytest-benchmark>=4" \
  "keras-preprocessing==1.1.2" torch==2.13.0

# One build at a time on this 2-core machine (the dev build takes the same lock).
LOCK=/tmp/fastembed-build.lock
echo "== asan: building into $BUILD_DIR"
start=$(date +%s)
flock "$LOCK" "$PY" -m pip install -q --no-deps --no-build-isolation --force-reinstall \
  -Cbuild-dir="$BUILD_DIR" \
  -Ccmake.build-type=Debug \
  -Ccmake.define.CMAKE_CXX_FLAGS="$CFLAGS_SAN" \
  -Ccmake.define.CMAKE_C_FLAGS="$CFLAGS_SAN" \
  -Ccmake.define.CMAKE_MODULE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -Ccmake.define.CMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
  "$ROOT"
echo "== asan: build took $(( $(date +%s) - start )) s"

# The ASan runtime must be the first library loaded into the process (python itself is
# not instrumented); libubsan is a normal dependency of the extension.  libstdc++ is
# preloaded too: python does not link it, and without it at start-up ASan cannot find the
# real __cxa_throw and aborts on the first C++ exception ("CHECK failed ... real___cxa_throw").
ASAN_LIB="$(gcc -print-file-name=libasan.so)"
export LD_PRELOAD="$ASAN_LIB:$(gcc -print-file-name=libstdc++.so)"
# detect_leaks=0: CPython and numpy keep allocations alive until exit on purpose.
# detect_container_overflow=0: the extension's libstdc++ is not instrumented.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86:detect_container_overflow=0:detect_stack_use_after_return=1:strict_init_order=1:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87"
export PYTHONMALLOC=malloc
export FASTEMBED_HYPOTHESIS_PROFILE=asan
export PYTHONFAULTHANDLER=1
# Lets tests skip what cannot run under ASan (e.g. RLIMIT_AS: ASan reserves terabytes of
# virtual shadow memory, so a process with an address-space limit cannot even start).
export FASTEMBED_ASAN=1
# Ctrl-C latency tests (tests/sigint_harness.py): the instrumented build runs each chunk of
# work several times slower, so the budget between SIGINT and KeyboardInterrupt is wider.
export FASTEMBED_SIGINT_BUDGET="${FASTEMBED_SIGINT_BUDGET:-2.5}"

# The built package must be the one under test, not python/ from the checkout.
"$PY" - <<'PYEOF'
import fastembed, fastembed._core as c
assert "site-packages" in fastembed.__file__, fastembed.__file__
print("== asan: testing", c.__file__)
PYEOF

if [ "${1:-}" = "--build-only" ]; then exit 0; fi

# Run from outside the checkout so `import fastembed` finds the installed ASan build.
cd "${TMPDIR:-/tmp}"
args=("$@")
if [ ${#args[@]} -eq 0 ]; then
  # Deselected: tests that run a child under RLIMIT_AS (see FASTEMBED_ASAN above).
  # --capture=sys: sanitizer reports go to the real stderr (with fd capture they would be
  # lost when the report aborts the process).
  args=("$ROOT/tests" -q -p no:cacheprovider --benchmark-disable --capture=sys
        -k "not lying_header_does_not_allocate")
fi
set +e
"$PY" -m pytest "${args[@]}"
rc=$?
set -e
case $rc in
  86) echo "== asan: AddressSanitizer report (see above)";;
  87) echo "== asan: UndefinedBehaviorSanitizer report (see above)";;
esac
exit $rc
