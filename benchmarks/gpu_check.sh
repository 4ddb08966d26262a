#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, in at most about 8 minutes,
#   1. the tests marked `gpu` (tests/test_gpu.py: train/resume, bf16 training, a 1-GPU DDP run,
#      predict, attribute, ISM and motif scanning equal to the CPU, TF32 and bf16 inference),
#   2. training and inference throughput of the full network at fp32 / TF32 / bf16 and bf16 with
#      torch.compile (benchmarks/gpu_throughput.py), ISM sequences/s,
#   3. the training data loader's sequences/s into the GPU (benchmarks/bench_loader.py),
# all written to benchmarks/results_gpu.json (or the file given as $1).
# Without a GPU it says so and exits 0 at once.
#
# Uses the interpreter $PYTHON (default: python3 on PATH), which must hold torch with CUDA and the
# package's dependencies; where `import chromtransfer` fails the package is installed from this
# checkout with `pip install -e . --no-deps` (offline: nothing is downloaded), else src/ is put on
# PYTHONPATH. Exit status: 0 when every step passed, 1 when a test or a measurement failed,
# 2 when torch has no CUDA although a GPU is present.
# Usage:  bash benchmarks/gpu_check.sh [RESULTS_JSON]
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
OUT="${1:-benchmarks/results_gpu.json}"
START=$(date +%s)

if [[ "${CUDA_VISIBLE_DEVICES-unset}" == "" ]] || ! command -v nvidia-smi >/dev/null 2>&1 \
        || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    echo "gpu_check: no NVIDIA GPU on this machine (nvidia-smi lists none, or CUDA_VISIBLE_DEVICES is empty); nothing to check"
    exit 0
fi
nvidia-smi -L

if ! "$PYTHON" -c "import chromtransfer" >/dev/null 2>&1; then
    echo "gpu_check: chromtransfer not importable by $PYTHON; installing this checkout (pip install -e . --no-deps, offline)"
    if ! "$PYTHON" -m pip install --quiet --no-index --no-build-isolation --no-deps -e . ; then
        echo "gpu_check: pip could not install it offline; using src/ on PYTHONPATH"
        export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
    fi
fi
if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    "$PYTHON" -c "import torch; print(f'gpu_check: error: torch {torch.__version__} (CUDA build: {torch.version.cuda}) in $PYTHON cannot use the GPU; install a CUDA build of torch')" \
        || echo "gpu_check: error: torch is not importable by $PYTHON"
    exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
status=0

echo "== gpu tests (pytest -m gpu tests/test_gpu.py)"
t0=$(date +%s)
timeout 200 "$PYTHON" -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider \
    --junitxml="$WORK/junit.xml" 2>&1 | tee "$WORK/pytest.log" | tail -25
tests_rc=${PIPESTATUS[0]}
echo "$(( $(date +%s) - t0 ))" > "$WORK/pytest.seconds"
[[ $tests_rc -eq 0 ]] || status=1

echo "== throughput (benchmarks/gpu_throughput.py)"
timeout 200 "$PYTHON" benchmarks/gpu_throughput.py --seconds 3 --compile --json "$WORK/throughput.json" \
    2>&1 | tee "$WORK/throughput.log" | grep -v '^ *$' | tail -12
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1

echo "== data loader into the GPU (benchmarks/bench_loader.py)"
timeout 50 "$PYTHON" benchmarks/bench_loader.py --device cuda --rows 100000 --batches 200 --workers 0 4 \
    --json "$WORK/loader.json" 2>&1 | tee "$WORK/loader.log" | tail -6
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1

"$PYTHON" - "$WORK" "$OUT" "$tests_rc" "$START" <<'PY'
import datetime, json, platform, subprocess, sys, time
import xml.etree.ElementTree as ET
from pathlib import Path

work, out, tests_rc, start = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
import torch

def load(name):
    path = work / name
    return json.loads(path.read_text()) if path.exists() else None

def tail(name, n=30):
    path = work / name
    return path.read_text().splitlines()[-n:] if path.exists() else []

tests = {"exit_status": tests_rc, "seconds": int((work / "pytest.seconds").read_text())}
junit = work / "junit.xml"
if junit.exists():
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    for key in ("tests", "failures", "errors", "skipped"):
        tests[key] = sum(int(s.get(key, 0)) for s in suites)
    tests["passed"] = tests["tests"] - tests["failures"] - tests["errors"] - tests["skipped"]
    tests["not_passed"] = [f"{case.get('classname')}.{case.get('name')}: {child.tag}"
                           for case in root.iter("testcase") for child in case
                           if child.tag in ("failure", "error", "skipped")]
else:
    tests["log_tail"] = tail("pytest.log")
smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                     capture_output=True, text=True).stdout.strip()
document = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "machine": {"gpu": smi, "platform": platform.platform(), "python": platform.python_version()},
    "versions": {"torch": torch.__version__, "cuda": torch.version.cuda,
                 "cudnn": torch.backends.cudnn.version()},
    "tests": tests,
    "throughput": load("throughput.json") or {"error": tail("throughput.log", 15)},
    "loader": load("loader.json") or {"error": tail("loader.log", 15)},
    "wall_seconds": int(time.time()) - start,
}
t = document["throughput"]
for key in ("train_bf16_seq_per_s", "infer_bf16_seq_per_s", "ism_seq_per_s"):
    if isinstance(t, dict) and key in t:
        document[key] = t[key]
if isinstance(document["loader"], dict) and "loader_seq_per_s" in document["loader"]:
    document["loader_seq_per_s"] = document["loader"]["loader_seq_per_s"]
out.write_text(json.dumps(document, indent=2) + "\n")
print(f"gpu_check: wrote {out}: tests {tests.get('passed', '?')}/{tests.get('tests', '?')} passed; " +
      ", ".join(f"{k} = {document[k]:.0f}" for k in ("train_bf16_seq_per_s", "infer_bf16_seq_per_s",
                                                     "ism_seq_per_s", "loader_seq_per_s") if k in document) +
      f"; {document['wall_seconds']} s")
PY
[[ $? -eq 0 ]] || status=1
exit $status
