#!/usr/bin/env bash
# One-step set-up: a virtual environment in .venv holding sefa-edit and everything it needs.
# Safe to rerun: an existing .venv is reused and only missing packages are installed.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
# Headless Chromium for the tests that open the HTML report in a real browser (Debian/Ubuntu packages).
if ! command -v chromium > /dev/null || ! command -v chromedriver > /dev/null; then
    if command -v apt-get > /dev/null; then
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver > /dev/null
    else
        echo "note: install Chromium and chromedriver for the browser tests (they are skipped without them)" >&2
    fi
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# torch and torchvision are pinned as a pair: other combinations fail to import torchvision's ops.
.venv/bin/python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install --quiet -e ".[dev,ray]"
.venv/bin/sefa-edit --help > /dev/null
echo "sefa-edit is installed in .venv (run .venv/bin/sefa-edit --help)"
