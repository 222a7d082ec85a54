#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with the CPU build of torch and searchmgr (editable).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# pin torch first: an open range would pull a multi-GB CUDA build on a machine without a GPU
.venv/bin/python -m pip install -q "torch==2.13.0"
# editable, with the tests', the service's, Ray's and the examples' extras; re-run after editing entry points
.venv/bin/python -m pip install -q -e ".[dev,serve,ray,examples]"
