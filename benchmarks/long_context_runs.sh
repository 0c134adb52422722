#!/bin/sh
# The runs behind benchmarks/results/long_context.md, in the order they were run. Each line of
# `runs` is one (task, model, seed); `sh benchmarks/long_context_runs.sh` runs them one after
# another, and `sh benchmarks/long_context_runs.sh worker QUEUE` runs the lines of the file
# QUEUE, taking them one at a time under a lock, so one worker per core can share a queue (one
# torch thread each). A run already in long_context.json with every length asked is skipped, and
# one whose trained model is kept (--models) only evaluates, so a queue can be rerun after a
# kill, in another session too. A failed run is logged and the queue goes on.
PASSKEY="--min-length 16 --double-every 60 --steps 700 --batch 32"
PENALTY="--gate-penalty 0.05"
FACTS="--min-length 32 --double-every 60 --steps 700 --batch 32"  # 6 facts need 20 tokens
DNA="--lengths 1024 4096 16384 65536 --lr 1e-3"
# The stable recipe: a strong gate penalty and a LayerNorm eps that bounds the memory's gain.
STABLE="--gate-penalty 0.2 --ln-eps 100"
# Facts with a curriculum that waits for the task to be learned at each length cap.
FACTS2="--min-length 32 --double-every 60 --advance-at 0.9 --steps 2500 --batch 32 $PENALTY"
FACTS3="--min-length 32 --double-every 60 --advance-at 0.9 --steps 2000 --batch 32 $STABLE"
# Facts learned first, then made sparse: the gate penalty grows with the length cap.
FACTS4="--min-length 32 --double-every 60 --advance-at 0.9 --steps 3000 --batch 32 --gate-penalty 0.2 --penalty-ramp"
FACTS5="--min-length 32 --double-every 60 --advance-at 0.9 --steps 4000 --batch 32 --gate-penalty 0.2 --penalty-ramp"
# Facts under the ramp with the stable eps (the 4,000-step seed went chaotic under the default).
FACTS6="$FACTS4 --ln-eps 100"
# MAC under the same curriculum and ramp (at a fixed doubling it never learned passkey).
MAC2="--min-length 16 --double-every 60 --advance-at 0.9 --steps 1500 --batch 32 --gate-penalty 0.2 --penalty-ramp --ln-eps 100"
# DNA with the same curriculum (the pair learned at short lengths first) and the stable eps.
DNA2="$DNA --min-length 64 --advance-at 0.8 --steps 2000 --gate-penalty 0.2 --penalty-ramp --ln-eps 100"

runs() {
    cat <<RUNS
--task passkey_random --model lmm --seed 0 $PASSKEY --lengths 4096 65536
--task dna_pair --model lmm --seed 0 $DNA
--task dna_pair --model cnn --seed 0 $DNA
--task dna_pair --model swa --seed 0 $DNA
--task passkey_random --model lmm --seed 0 $PASSKEY $PENALTY --lengths 4096 65536 --stability 100000
--task passkey_random --model lmm --seed 0 $PASSKEY $PENALTY --lengths 1048576
--task facts --model lmm --seed 0 $FACTS $PENALTY --lengths 4096 65536
--task passkey_random --model lmm-no-forgetting --seed 0 $PASSKEY $PENALTY --lengths 4096 65536
--task passkey_random --model lmm-no-momentum --seed 0 $PASSKEY $PENALTY --lengths 4096 65536
--task dna_pair --model lmm --seed 0 $DNA $PENALTY
--task passkey_random --model lmm --seed 1 $PASSKEY $PENALTY --lengths 4096 65536 --stability 100000
--task passkey_random --model lmm --seed 2 $PASSKEY $PENALTY --lengths 4096 65536 --stability 100000
--task facts --model lmm --seed 1 $FACTS $PENALTY --lengths 4096 65536
--task facts --model lmm --seed 2 $FACTS $PENALTY --lengths 4096 65536
--task dna_pair --model cnn --seed 1 $DNA
--task dna_pair --model cnn --seed 2 $DNA
--task dna_pair --model swa --seed 1 $DNA
--task dna_pair --model swa --seed 2 $DNA
--task passkey_random --model mac --seed 0 $PASSKEY $PENALTY --lengths 4096 65536 --stability 100000
--task passkey_random --model lmm --gates sigmoid --seed 0 $PASSKEY --lengths 4096 65536
--task passkey_repeated --model lmm --seed 0 $PASSKEY $PENALTY --lengths 4096 65536
--task dna_pair --model lmm --seed 1 $DNA $PENALTY
--task dna_pair --model lmm --seed 2 $DNA $PENALTY
--task passkey_random --model lmm --seed 0 $PASSKEY --gate-penalty 0.2 --lengths 4096 65536
--task passkey_random --model lmm --seed 1 $PASSKEY --gate-penalty 0.2 --lengths 4096 65536
--task passkey_random --model lmm --seed 2 $PASSKEY --gate-penalty 0.2 --lengths 4096 65536 --stability 100000
--task passkey_random --model lmm --seed 0 $PASSKEY $STABLE --lengths 4096 65536 --stability 100000
--task facts --model lmm --seed 0 $FACTS2 --lengths 512 4096 65536
--task dna_pair --model lmm --seed 0 $DNA $PENALTY --stability 100000
--task dna_pair --model lmm --seed 1 $DNA $PENALTY --stability 100000
--task dna_pair --model lmm --seed 0 $DNA --gate-penalty 0.2
--task passkey_random --model lmm --seed 1 $PASSKEY $STABLE --lengths 4096 65536 --stability 100000
--task passkey_random --model lmm --seed 2 $PASSKEY $STABLE --lengths 4096 65536 --stability 100000
--task passkey_random --model lmm --seed 0 $PASSKEY $STABLE --lengths 1048576
--task passkey_random --model lmm --seed 1 $PASSKEY $STABLE --lengths 1048576
--task passkey_random --model lmm --seed 2 $PASSKEY $STABLE --lengths 1048576 --stability 100000
--task facts --model lmm --seed 0 $FACTS3 --lengths 512 4096 65536
--task passkey_random --model lmm --seed 0 $PASSKEY --gate-penalty 0.2 --lengths 4096 --stability 100000
--task passkey_random --model lmm --seed 1 $PASSKEY --gate-penalty 0.2 --lengths 4096 --stability 100000
--task passkey_random --model lmm --seed 2 $PASSKEY --gate-penalty 0.2 --lengths 4096 --stability 100000
--task passkey_random --model lmm --seed 0 $PASSKEY $STABLE --lengths 4096 --stability 100000
--task passkey_random --model lmm --seed 1 $PASSKEY $STABLE --lengths 4096 --stability 100000
--task passkey_random --model mac --mac-form residual --seed 0 $PASSKEY $STABLE --lengths 4096 65536 --stability 100000
--task facts --model lmm --seed 0 $FACTS4 --lengths 512 4096 65536 --stability 100000
--task dna_pair --model lmm --seed 0 $DNA2 --stability 100000
--task passkey_random --model lmm-no-momentum --seed 0 $PASSKEY $STABLE --lengths 4096 65536
--task facts --model lmm --seed 1 $FACTS5 --lengths 512 4096 65536 --stability 100000
--task dna_pair --model lmm --seed 1 $DNA2 --stability 100000
--task dna_pair --model lmm --seed 2 $DNA2 --stability 100000
--task dna_pair --model cnn --seed 0 $DNA --lengths 262144
--task dna_pair --model cnn --seed 1 $DNA --lengths 262144
--task dna_pair --model cnn --seed 2 $DNA --lengths 262144
--task dna_pair --model lmm --seed 1 $DNA2 --lengths 262144
--task dna_pair --model lmm --seed 2 $DNA2 --lengths 262144
--task dna_pair --model lmm --seed 0 $DNA2 --lengths 262144
--task facts --model lmm --seed 0 $FACTS6 --lengths 512 4096 65536 --stability 100000
--task facts --model lmm --seed 1 $FACTS6 --lengths 512 4096 65536 --stability 100000
--task facts --model lmm --seed 2 $FACTS6 --lengths 512 4096 65536 --stability 100000
--task passkey_random --model lmm-no-forgetting --seed 0 $PASSKEY $STABLE --lengths 4096 65536
--task dna_pair --model cnn --seed 0 $DNA --lengths 1048576
--task dna_pair --model cnn --seed 1 $DNA --lengths 1048576
--task dna_pair --model cnn --seed 2 $DNA --lengths 1048576
--task passkey_random --model mac --seed 0 $MAC2 --lengths 4096 65536 --stability 100000
--task passkey_random --model lmm --channel-gates 4 --seed 0 $PASSKEY $STABLE --lengths 4096 65536
--task passkey_random --model lmm --persistent 16 --seed 0 $PASSKEY $STABLE --lengths 4096 65536
RUNS
}

bench() { .venv/bin/python benchmarks/bench_long_context.py --threads 1 "$@"; }

if [ "$1" = worker ]; then
    while :; do
        line=$(flock "$2.lock" sh -c 'head -n 1 "$0"; sed -i 1d "$0"' "$2")
        [ -n "$line" ] || break
        # shellcheck disable=SC2086
        bench $line
    done
else
    runs | while read -r line; do
        # shellcheck disable=SC2086
        bench $line
    done
fi
