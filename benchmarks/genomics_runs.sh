#!/bin/sh
# The suite runs behind benchmarks/results/genomics.md, in the order they were started (two at
# a time, one per core, one torch thread each). `titans-sci bench genomics` skips every cell
# already in benchmarks/results/genomics.json with the same settings and continues an
# interrupted run from its last epoch checkpoint, so this file can be run again after a kill,
# in another session too: `sh benchmarks/genomics_runs.sh 1` (core 1's line) and
# `sh benchmarks/genomics_runs.sh 2` beside it (then `sweep`).
#
# `queue` is the table's queue (issue 42): every task, the default LMM and both baselines, a
# seed (or fold) at a time in passes, so every row has a first number before any has a second.
# Run it from a git worktree pinned at one commit, so that changes on main do not invalidate an
# interrupted part's resume fingerprint, with OUT naming main's results folder and RUNS a
# folder outside both checkouts:
#   git worktree add --detach /work/queue <commit> && cd /work/queue && make setup
#   OUT=/work/main/benchmarks/results RUNS=/work/queue-runs sh benchmarks/genomics_runs.sh queue
# With both cores free, two processes share the queue: SHARD=1/2 and SHARD=2/2 beside it.
set -e
OUT=${OUT:-benchmarks/results}
FULL="--epochs 12 --patience 3 --threads 1 -q --out $OUT"
SMALL="gue/mouse/3 gue/mouse/2 gue/prom/prom_core_tata"
case "$1" in
    1) .venv/bin/titans-sci bench genomics $FULL --tasks $SMALL --entrants lmm ;;
    2) .venv/bin/titans-sci bench genomics $FULL --tasks $SMALL --entrants lmm:pretrained --no-baselines ;;
    # The dev sweep on gue/mouse/3 (the task where Titans trails the CNN most): head dropout,
    # a larger learning rate (the LMM's dev curve still rises at epoch 12 there), a narrower
    # model, the MAG variant. The table's `chosen` column picks among them on dev.
    sweep)
        .venv/bin/titans-sci bench genomics $FULL --tasks gue/mouse/3 --entrants lmm --no-baselines --dropout 0.1
        .venv/bin/titans-sci bench genomics $FULL --tasks gue/mouse/3 --entrants lmm --no-baselines --lr 3e-3
        .venv/bin/titans-sci bench genomics $FULL --tasks gue/mouse/3 --entrants lmm --no-baselines --dim 32
        # (the MAG point ran beside the dim-32 one, on the other core)
        .venv/bin/titans-sci bench genomics $FULL --tasks gue/mouse/3 --entrants mag --no-baselines ;;
    queue) .venv/bin/titans-sci bench genomics $FULL --entrants lmm --compile --shard "${SHARD:-1/1}" \
        --runs "${RUNS:-$OUT/runs}" ;;
    *) echo "usage: sh benchmarks/genomics_runs.sh 1|2|sweep|queue" >&2; exit 2 ;;
esac
