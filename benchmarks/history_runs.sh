#!/bin/sh
# The cells of benchmarks/results/forecasting_history.md (issue 38) still to run, as a queue
# that a session resumes where the last one stopped: `bench_history.py` skips every cell already
# in forecasting_history.json and stores each cell as it finishes (a cell is at most about an
# hour and a half on one thread, so one fits in a working session). Cheapest first, so rows fill
# early: Weather H = 336's ablations; the lookback-96 Titans row and DLinear on ETTm1 and Weather;
# the PatchTST windows not yet run on ETTh1, ETTh2 and Exchange (the peers' window is chosen on
# validation from all three); PatchTST on ETTm1; Weather H = 720; PatchTST on Weather.
#
# Run it from a git worktree pinned at one commit (named in every cell's code line), with a
# Python that has gluonts[torch] (lightning; see benchmarks/bench_forecasting.py), OUT naming
# main's results folder, one thread:
#   git worktree add --detach /work/hist <commit>
#   cd /work/hist && PY=/tmp/bench-venv/bin/python OUT=/work/main/benchmarks/results \
#       sh benchmarks/history_runs.sh queue
set -e
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's titans_sci, whatever venv
PY=${PY:-/tmp/bench-venv/bin/python}
B="benchmarks/bench_history.py --threads 1 --out ${OUT:-benchmarks/results}"
case "$1" in
    queue)
        $PY $B --tasks tasks/forecast_weather.toml --horizons 336 --entrants never window
        for data in ettm1 weather; do
            $PY $B --tasks tasks/forecast_$data.toml --horizons 96 --entrants lookback96 peers \
                --peers dlinear
        done
        $PY $B --tasks tasks/forecast_etth1.toml tasks/forecast_etth2.toml \
            tasks/forecast_exchange.toml --horizons 96 --entrants peers --peers patchtst
        $PY $B --tasks tasks/forecast_ettm1.toml --horizons 96 --entrants peers --peers patchtst
        $PY $B --tasks tasks/forecast_weather.toml --horizons 720 --entrants memory window never
        $PY $B --tasks tasks/forecast_weather.toml --horizons 96 --entrants peers --peers patchtst ;;
    *) echo "usage: sh benchmarks/history_runs.sh queue" >&2; exit 2 ;;
esac
