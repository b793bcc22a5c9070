#!/usr/bin/env bash
# Creates the separate virtual environment for scripts/bench_peers.py at .bench-venv/ in the repository root:
# lbbench's requirements plus Keras and PyTorch, which are benchmark peers only and never lbbench dependencies.
#
#     scripts/bench_env.sh
#     .bench-venv/bin/python scripts/bench_peers.py
#
# Safe to rerun: an existing venv is kept, and nothing is installed when jax, keras, torch and lbbench already
# import (BENCH_ENV_REINSTALL=1 installs anyway, e.g. after requirements.txt changed). torch from PyPI is the
# large CUDA build (a few GB of wheels); the benchmark runs everything on the CPU. Git is to ignore .bench-venv/
# (it belongs in the repository's .gitignore; this script does not edit it).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.bench-venv
py="$venv/bin/python"

if [[ ! -x "$py" ]]; then
  echo "creating $venv"
  "${PYTHON:-python3}" -m venv "$venv"
fi
# (keras imports with its default TensorFlow backend would fail: TensorFlow is not installed, the benchmark uses JAX)
if [[ "${BENCH_ENV_REINSTALL:-0}" == 1 ]] || ! KERAS_BACKEND=jax "$py" -c "import jax, keras, torch, lbbench" 2>/dev/null; then
  "$py" -m pip install -r requirements.txt keras torch
  "$py" -m pip install --no-deps -e .
else
  echo "$venv already has jax, keras, torch and lbbench; nothing to install"
fi
"$py" - <<'PY'
import importlib.metadata as md

for name in ("jax", "jaxlib", "keras", "torch", "lbbench"):
    print(f"{name:8} {md.version(name)}")
PY
