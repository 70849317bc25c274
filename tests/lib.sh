# Shared helpers of the script tests. Expects SAEC (the binary) and PYTHON (with numpy, h5py).
set -u
: "${SAEC:?SAEC must point at the saec binary}"
: "${PYTHON:=/usr/bin/python3}"
SAEC=$(realpath "$SAEC")
TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/saec-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FAILED=0

fail() { echo "FAIL: $*" >&2; FAILED=1; }
pass() { echo "ok: $*"; }

# json_get FILE KEY -> value
json_get() { "$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

# expect_ge VALUE MIN NAME
expect_ge() { "$PYTHON" -c "import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)" "$1" "$2" \
  && pass "$3 = $1 >= $2" || fail "$3 = $1, expected >= $2"; }
expect_le() { "$PYTHON" -c "import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)" "$1" "$2" \
  && pass "$3 = $1 <= $2" || fail "$3 = $1, expected <= $2"; }

# A CUDA device to test on: a GPU, or the emulated GPU of a -DSAEC_CUDA=EMU build (CMake sets
# SAEC_CUDA_EMULATED=1 for that build's script tests). Exits 77 (skipped) without one.
require_cuda_device() {
  if [ "${SAEC_CUDA_EMULATED:-0}" = 1 ]; then return 0; fi
  command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 && return 0
  echo "no GPU: skipped"; exit 77
}

finish() { if [ "$FAILED" -ne 0 ]; then echo "some checks failed" >&2; exit 1; fi; echo "all checks passed"; exit 0; }
