#!/usr/bin/env bash
# One-step set-up: a virtual environment in .venv holding sefa-edit and everything it needs.
# Safe to rerun: an existing .venv is reused and only missing packages are installed.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# torch and torchvision are pinned as a pair: other combinations fail to import torchvision's ops.
.venv/bin/python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install --quiet -e ".[dev]"
.venv/bin/sefa-edit --help > /dev/null
echo "sefa-edit is installed in .venv (run .venv/bin/sefa-edit --help)"
