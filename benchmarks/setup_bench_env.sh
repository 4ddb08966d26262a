#!/usr/bin/env bash
# Build .venv-bench: a virtual environment, separate from .venv, that holds the reference tools the
# benchmarks compare chromtransfer with. None of them is a dependency of chromtransfer.
#   tensorflow-cpu + tf_keras   the authors' network in TensorFlow/Keras 2 (keras_reference.py,
#                               bench_throughput.py)
#   torch (CPU) + tangermeme    tangermeme's in-silico mutagenesis (bench_ism.py)
#   memelite, pymemesuite       motif scanners (bench_motifs.py)
#
# Idempotent: a stamp file records the requested set; a second run with the same request and a
# working environment does nothing.
# Usage:  benchmarks/setup_bench_env.sh [VENV_DIR]            (default: .venv-bench)
# Environment: PYTHON   interpreter for the venv (default python3)
#              TF_SPEC  pip requirement for TensorFlow (default "tensorflow-cpu>=2.16,<3"; the
#                       full "tensorflow" wheel is used where no tensorflow-cpu wheel exists)
#              EXTRA    further reference packages (default "tangermeme memelite pymemesuite")
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-bench}"
PYTHON="${PYTHON:-python3}"
TF_SPEC="${TF_SPEC:-tensorflow-cpu>=2.16,<3}"
EXTRA="${EXTRA:-tangermeme memelite pymemesuite}"
STAMP="$VENV/.bench-installed"
REQUEST="$TF_SPEC | $EXTRA"

check() {
    "$VENV/bin/python" - "$EXTRA" <<'PY' >/dev/null 2>&1
import importlib, sys
import tensorflow, tf_keras, torch  # noqa: F401
for name in sys.argv[1].split():
    importlib.import_module(name)
PY
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$REQUEST" ]] && check; then
    exit 0
fi

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
PIP="$VENV/bin/pip"
if ! $PIP install --quiet "$TF_SPEC"; then
    echo "setup_bench_env: '$TF_SPEC' did not install; trying the full 'tensorflow' wheel" >&2
    $PIP install --quiet "tensorflow>=2.16,<3"
fi
# tf_keras must match TensorFlow's minor version. --no-deps: its metadata asks for the full
# 'tensorflow' wheel, which would land next to tensorflow-cpu.
TF_MINOR="$("$VENV/bin/python" -c 'import importlib.metadata as m
v = None
for d in ("tensorflow-cpu", "tensorflow"):
    try:
        v = m.version(d); break
    except m.PackageNotFoundError:
        pass
print(".".join(v.split(".")[:2]))')"
$PIP install --quiet --no-deps "tf_keras~=${TF_MINOR}.0"
# torch before tangermeme, so that pip keeps the CPU build (as the Makefile does for .venv).
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
        $PIP install --quiet "torch>=2.4"
    else
        $PIP install --quiet "torch==2.13.0" || \
            $PIP install --quiet "torch>=2.4" --index-url https://download.pytorch.org/whl/cpu
    fi
fi
if [[ -n "$EXTRA" ]]; then
    # shellcheck disable=SC2086
    $PIP install --quiet $EXTRA
fi
check || { echo "setup_bench_env: $VENV is incomplete" >&2; exit 1; }
"$VENV/bin/python" -c "import tensorflow as tf, tf_keras, torch; print('bench env:', 'tensorflow', tf.__version__, '| tf_keras', tf_keras.__version__, '| torch', torch.__version__)" 2>/dev/null
echo "$REQUEST" > "$STAMP"
