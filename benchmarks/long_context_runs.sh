#!/bin/sh
# The runs behind benchmarks/results/long_context.md, one queue per core (one torch thread
# each): `sh benchmarks/long_context_runs.sh a` and `sh benchmarks/long_context_runs.sh b`.
# A run already in long_context.json with every length asked is skipped, and one whose trained
# model is kept (--models) only evaluates, so a queue can be rerun after a kill, in another
# session too.
# A failed run is logged and the queue goes on.
bench() { .venv/bin/python benchmarks/bench_long_context.py --threads 1 "$@"; }
PASSKEY="--min-length 16 --double-every 60 --steps 700 --batch 32"
DNA="--lengths 1024 4096 16384 65536 --lr 1e-3"
PENALTY="--gate-penalty 0.05"
case "$1" in
a)
    bench --task passkey_random --model lmm --seed 0 $PASSKEY --lengths 4096 65536
    bench --task passkey_random --model lmm --seed 0 $PASSKEY $PENALTY --lengths 4096 65536 \
        --stability 100000
    bench --task passkey_random --model lmm --seed 0 $PASSKEY $PENALTY --lengths 1048576
    for seed in 1 2; do bench --task passkey_random --model lmm --seed $seed $PASSKEY \
        $PENALTY --lengths 4096 65536 --stability 100000; done
    for seed in 1 2; do bench --task passkey_random --model lmm --seed $seed $PASSKEY \
        $PENALTY --lengths 1048576; done
    ;;
b)
    bench --task dna_pair --model lmm --seed 0 $DNA
    bench --task dna_pair --model cnn --seed 0 $DNA
    bench --task dna_pair --model swa --seed 0 $DNA
    bench --task facts --model lmm --seed 0 $PASSKEY $PENALTY --lengths 4096 65536
    for model in lmm-no-momentum lmm-no-forgetting; do
        bench --task passkey_random --model $model --seed 0 $PASSKEY $PENALTY --lengths 4096 65536
    done
    bench --task dna_pair --model lmm --seed 0 $DNA $PENALTY
    bench --task passkey_random --model lmm --gates sigmoid --seed 0 $PASSKEY --lengths 4096 65536
    for seed in 1 2; do
        bench --task facts --model lmm --seed $seed $PASSKEY $PENALTY --lengths 4096 65536
        bench --task dna_pair --model cnn --seed $seed $DNA
        bench --task dna_pair --model swa --seed $seed $DNA
        bench --task dna_pair --model lmm --seed $seed $DNA $PENALTY
    done
    ;;
esac
