#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU: make torch a CUDA build, run the CUDA-marked tests
# (tests/inference/test_cuda.py: engine with AMP vs CPU, sliding window, a real out-of-memory back-off,
# Grad-CAM and attention maps, deepbet, training with AMP, analyze --cluster with a GPU actor), then the
# speed benchmarks with --device cuda, and print one table. About 5-8 minutes on one GPU.
#
# Without a GPU it says so, runs the CPU side of the same checks (engine, explanations, training, the
# cluster path) and exits 0: nothing about CUDA has then been checked.
#
#   bash benchmarks/gpu_check.sh            # from the repository root or anywhere
#   PYTHON=/path/to/python bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
if [ ! -x "$py" ]; then bash scripts/setup.sh || exit 1; fi
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
log=$(mktemp -d "${TMPDIR:-/tmp}/radlens-gpu-check.XXXXXX")
rows=()

step() {  # step NAME COMMAND...: runs it, logs it, adds a row (status, seconds, last summary line)
  local name=$1; shift
  local t0=$SECONDS status
  echo "== $name: $*"
  if "$@" >"$log/$name.log" 2>&1; then status=ok; else status=FAILED; fi
  local summary
  summary=$(grep -E "passed|failed|error|speed-up|×|stacks/s|PASS|FAIL" "$log/$name.log" | tail -1 | cut -c1-90)
  rows+=("$(printf '%-22s %-7s %5ds  %s' "$name" "$status" $((SECONDS - t0)) "$summary")")
}

gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then gpu=1; fi

if [ "$gpu" = 1 ]; then
  nvidia-smi -L
  if ! "$py" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    version=$("$py" -c "import torch; print(torch.__version__.split('+')[0])")
    index=()
    [ -n "${RADLENS_TORCH_INDEX:-}" ] && index=(--index-url "$RADLENS_TORCH_INDEX")
    echo "== torch $version is a CPU build: installing its CUDA build"
    "$py" -m pip install --quiet --force-reinstall --no-deps "${index[@]}" "torch==$version" || exit 1
    "$py" -m pip install --quiet "${index[@]}" "torch==$version" || exit 1
  fi
  "$py" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name(0))"
  step cuda-tests "$py" -m pytest tests/inference/test_cuda.py -m cuda -q -p no:cacheprovider
  step model-inference "$py" benchmarks/model_inference.py --device cuda --repeats 3
  step batch-analyze "$py" benchmarks/batch.py --device cuda --stacks 10 --repeats 1
  step cluster-analyze "$py" benchmarks/cluster.py --device cuda --stacks 8
else
  echo "NO NVIDIA GPU FOUND (nvidia-smi lists none): the CUDA tests and the GPU benchmarks are NOT run."
  echo "Running the CPU side of the same checks instead."
  step cpu-engine "$py" -m pytest tests/inference/test_engine.py tests/inference/test_explain.py -q -p no:cacheprovider
  step cpu-training "$py" -m pytest tests/inference/test_training_ddp.py -q -p no:cacheprovider
  step cpu-cluster "$py" -m pytest tests/inference/test_analyze_cluster.py -q -p no:cacheprovider -k local_runs
fi

echo
echo "RadLens GPU check ($([ "$gpu" = 1 ] && echo "GPU: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" || echo "NO GPU: CPU-side checks only")); logs in $log"
printf '%-22s %-7s %6s  %s\n' step status time summary
for r in "${rows[@]}"; do echo "$r"; done
failed=0
for r in "${rows[@]}"; do case $r in *" FAILED "*) failed=1 ;; esac; done
exit $failed
