#!/usr/bin/env bash
# Creates .venv and installs RadLens with its development tools. Safe to run again.
#
# torch: with no NVIDIA GPU (or RADLENS_TORCH=cpu) the pinned CPU build is installed first,
# so pip never pulls a multi-GB CUDA build. With a GPU, or RADLENS_TORCH=cuda, the CUDA
# build is installed instead; RADLENS_TORCH_INDEX may name the wheel index to take it from.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.13.0
python=${PYTHON:-}
if [ -z "$python" ]; then
  for cand in python3.11 python3.12 python3; do
    if command -v "$cand" >/dev/null 2>&1; then python=$cand; break; fi
  done
fi

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

flavour=${RADLENS_TORCH:-auto}
if [ "$flavour" = auto ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then flavour=cuda; else flavour=cpu; fi
fi
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  index=()
  [ -n "${RADLENS_TORCH_INDEX:-}" ] && index=(--index-url "$RADLENS_TORCH_INDEX")
  echo "setup: installing torch $TORCH_VERSION ($flavour build)"
  "${pip[@]}" "${index[@]}" "torch==$TORCH_VERSION"
fi

stamp=.venv/.radlens-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing radlens and its dependencies"
  "${pip[@]}" -e ".[dev,deepbet,cluster,onnx]"
  touch "$stamp"
fi
