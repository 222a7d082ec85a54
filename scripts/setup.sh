#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with the CPU build of torch and searchmgr (editable).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# pin torch first: an open range would pull a multi-GB CUDA build on a machine without a GPU
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev,ray]"
