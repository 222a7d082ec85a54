#!/usr/bin/env bash
# The golden runs of a behaviour-preserving change: run them before and after, then compare
#   python scripts/fingerprint.py OUT/*      (every line must be identical)
# Usage: scripts/golden.sh OUT   (PYTHON=... to pick the interpreter; one thread, small presets, ~40 s)
set -euo pipefail
out=${1:?usage: scripts/golden.sh OUT}
py=${PYTHON:-python}
mkdir -p "$out"
run() { name=$1; shift; "$py" -m searchmgr "$@" threads=1 out="$out/$name" > "$out/$name.log" 2>&1; }
run toy_smoke explore task=toy preset=smoke
run toy_default_s2 explore task=toy seed=2
run toy_random explore task=toy preset=smoke manager.name=random
run arm_scared_smoke explore task=arm_scared preset=smoke
run compare_toy compare task=toy preset=smoke methods=tree,grid,random,tpe,pbt seeds=1
