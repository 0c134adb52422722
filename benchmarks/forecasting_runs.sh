#!/bin/sh
# The forecasting runs behind benchmarks/results/forecasting.md that issue 21 added, one core
# each (one torch thread), from a benchmark venv with gluonts[torch] (see the docstring of
# benchmarks/bench_forecasting.py). Every run merges its rows into forecasting.json as it
# finishes; `line` names: m4 (seasonal naive, the peers at their defaults and with std scaling,
# then Titans over 3 seeds), mixing (ETTh1 with channel mixing, then Weather's horizon 96),
# weather-mixing (Weather's other horizons with channel mixing, about 3 core-hours
# on a 2-core AMD EPYC; run its horizons as separate processes to use both cores), ett-mixing
# (ETTh2 and ETTm1 with channel mixing, one process each), small (ILI
# and Exchange), seeds (seeds 2 and 3 of Weather with channel mixing, one process each; any
# other row alike: --add-seeds merges them into the stored seed-1 entry).
set -e
PY=${PY:-/tmp/bench-venv/bin/python}
B="benchmarks/bench_forecasting.py --threads 1"
case "$1" in
    m4)
        $PY $B --m4 --epochs 100 --m4-models "seasonal naive" dlinear dlinear:std patchtst \
            patchtst:std deepar
        $PY $B --m4 --epochs 100 --m4-models "titans lmm" --m4-seeds 2 3 ;;
    mixing)
        $PY $B --long ett/ETTh1 --variants lmm --mode channel_mixing --peers
        $PY $B --long weather --variants lmm --mode channel_mixing --horizons 96 --peers ;;
    weather-mixing)
        $PY $B --long weather --variants lmm --mode channel_mixing --horizons 192 336 720 --peers ;;
    ett-mixing)
        for data in ett/ETTh2 ett/ETTm1; do
            $PY $B --long $data --variants lmm --mode channel_mixing --peers &
        done
        wait ;;
    seeds)
        for seed in 2 3; do
            $PY $B --long weather --variants lmm --mode channel_mixing --peers --add-seeds \
                --set "protocol.seeds=[$seed]" &
        done
        wait ;;
    small)
        $PY $B --long illness --variants lmm
        $PY $B --long exchange_rate --variants lmm ;;
    # Issue 40's cells still to run: DeepAR's seeds 2 and 3 in GluonTS' protocol (about an
    # hour each on one thread; the window forecaster's EPF rows ran on 2026-12-08). Every row
    # is stored as it finishes.
    epf)
        $PY $B --epf-gluonts --epf-gluonts-models deepar --epochs 10 --m4-batches 50 \
            --m4-seeds 2 3 ;;
    *) echo "usage: sh benchmarks/forecasting_runs.sh m4|mixing|weather-mixing|ett-mixing|small|seeds|epf" >&2; exit 2 ;;
esac
