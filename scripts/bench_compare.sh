#!/usr/bin/env bash
# The table of docs/benchmarks.md ("All six tasks"): every task x tree, grid, random, tpe, pbt x 3 seeds at
# equal budget, one run at a time, then one summary table. Several hours on 2 CPU cores (the two TinyStories
# tasks take most of it). Killed part-way, run it again: each comparison resumes where it stopped.
#
#   bash scripts/bench_compare.sh [OUT]        # OUT defaults to runs/cmp
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/cmp}
sm=.venv/bin/searchmgr
ts=(segment_steps=40 eval_every=20 budget.steps=1200)

run() {  # run NAME WORDS...: a new comparison, or the rest of an interrupted one
    local name=$1; shift
    if [[ -f $out/$name/compare.json ]]; then
        "$sm" compare --resume "$out/$name"
    else
        "$sm" compare seeds=3 threads=1 out="$out/$name" "$@"
    fi
}

run toy task=toy
run arm_scared task=arm_scared
run arm_reckless task=arm_reckless
run grpo_arith task=grpo_arith
run tinystories_overfit task=tinystories_overfit data=../shared/data/tinystories_sample.txt "${ts[@]}"
run tinystories_aux task=tinystories_aux data=generator "${ts[@]}"

.venv/bin/python scripts/compare_summary.py "$out"/{toy,grpo_arith,tinystories_overfit,tinystories_aux,arm_scared,arm_reckless}
