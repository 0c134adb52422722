"""``titans-sci bench genomics``: killed mid-run, started again, it finishes without training a
finished seed again; run a third time, it skips every cell; the queue runs a pass of every
task's first part before any second part; the table picks Titans on dev."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from titans_sci.api import save_model
from titans_sci.cli import main
from titans_sci.models.config import LMMConfig
from titans_sci.models.dna_lm import DNALMConfig, DNAMaskedLM
from titans_sci.suites.genomics import (
    Entrant,
    GenomicsSuite,
    add_arguments,
    budget,
    build_task,
    chosen_on_dev,
    config_hash,
    label_of,
    margins,
    merge_parts,
    part_task,
    queue,
    render,
    training_bases,
)
from titans_sci.tasks.classification import Classification

TINY = [
    "bench", "genomics", "--tasks", "gue/mouse/3", "--entrants", "lmm", "--seeds", "1", "2",
    "--epochs", "2", "--max-train-tokens", "40000", "--max-eval", "64", "--dim", "16",
    "--heads", "2", "--depth", "1", "-q",
]  # fmt: skip


def _logs(out) -> dict[str, str]:
    return {
        str(p.relative_to(out)): p.read_text()
        for p in sorted(out.glob("runs/*/checkpoints/*/*/train.log"))
    }


def test_a_killed_suite_resumes_without_training_finished_seeds_again(tmp_path):
    out = tmp_path / "suite"
    argv = [*TINY, "--out", str(out)]
    child = subprocess.Popen(
        [sys.executable, "-m", "titans_sci.cli", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 300
    try:
        # kill it once seed 1's Titans model is saved and seed 2 has started training
        while time.monotonic() < deadline:
            if list(out.glob("runs/*/checkpoints/seed2/titans/checkpoint.pt")):
                break
            assert child.poll() is None, "the suite ended before it could be killed"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
    # seed 1 is a finished part, in the store, in two pieces (Titans alone, then the baselines
    # with the CNN alone); seed 2 is not
    finished = sorted(p.parent.name for p in out.glob("runs/*/results.json"))
    assert [f.rsplit("_", 2)[1:] for f in finished] == [["seed1", "baselines"], ["seed1", "titans"]]
    trained = {p.parent.name for p in out.glob("runs/*_seed1_*/checkpoints/seed1/*/model")}
    assert trained == {"titans"}  # only the Titans piece saves a model; the CNN piece trained
    assert list(out.glob("runs/*_seed1_baselines/checkpoints/seed1/cnn/train.log"))
    assert not list(out.glob("runs/*_seed1_baselines/checkpoints/seed1/titans"))
    stored = json.loads((out / "genomics.json").read_text())
    assert {k: list(v["parts"]) for k, v in stored.items()} == {
        "gue/mouse/3|titans lmm dim16 depth1 heads2": ["seed1"],
        "gue/mouse/3|kmer_lr": ["seed1"],
        "gue/mouse/3|cnn": ["seed1"],
    }
    assert "(1 of 2)" in (out / "genomics.md").read_text()
    before = _logs(out)
    seed1 = [k for k in before if "/seed1/titans/" in k]
    assert seed1 and before[seed1[0]].count("\n") == 2  # both epochs of seed 1 were done

    assert main(argv) == 0
    after = _logs(out)
    assert after[seed1[0]] == before[seed1[0]]  # seed 1 was not trained again
    store = json.loads((out / "genomics.json").read_text())
    titans = "gue/mouse/3|titans lmm dim16 depth1 heads2"  # the size is in the label
    assert set(store) == {titans, "gue/mouse/3|kmer_lr", "gue/mouse/3|cnn"}
    assert store[titans]["n"] == 2 and set(store[titans]["parts"]) == {"seed1", "seed2"}
    tests = [store[titans]["parts"][p]["test"] for p in ("seed1", "seed2")]
    assert store[titans]["mean"] == pytest.approx(sum(tests) / 2)
    assert (out / "genomics_margins.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "genomics.md").read_text()
    assert "| gue/mouse/3 | 66.47 (DNABERT-2 MCC) |" in table

    assert main(argv) == 0  # everything done: nothing runs, the store is left as it is
    assert json.loads((out / "genomics.json").read_text()) == store
    assert _logs(out) == after


def _entry(mean: float, dev: float | None) -> dict:
    return {
        "mean": mean, "std": 1.0, "n": 3, "dev": dev, "metric": "mcc", "budget": "b",
        "protocol": "p", "seconds": 1.0, "machine": "m", "date": "d", "config": "c",
    }  # fmt: skip


def test_the_titans_entrant_is_chosen_on_dev_never_on_test():
    store = {
        "gue/tf/0|titans lmm": _entry(70.0, 80.0),  # better on test
        "gue/tf/0|titans lmm pretrained": _entry(60.0, 85.0),  # better on dev: chosen
        "gue/tf/0|kmer_lr": _entry(65.0, None),
        "gue/tf/0|cnn": _entry(62.0, None),
    }
    assert chosen_on_dev(store, "gue/tf/0")[0] == "titans lmm pretrained"
    assert margins(store) == {"gue/tf/0": pytest.approx(-5.0)}
    table = render(store)
    assert "| lmm pretrained | -5.00 |" in table
    assert "ahead of both baselines: **0 of 1**" in table


def test_a_pretrained_cell_is_named_by_the_weights_not_their_path(tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    memory = {"preset": "titans", "num_heads": 4, "head_dim": 16, "chunk_size": 16}
    backbone = LMMConfig.from_dict({"dim": 64, "bidirectional": True, "memory": memory})
    save_model(tmp_path / "a", DNAMaskedLM(DNALMConfig(backbone)), {})
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    hashes = []
    for folder in ("a", "b"):
        args = GenomicsSuite.from_args(parser.parse_args(["--pretrained", str(tmp_path / folder)]))
        task = build_task("gue/mouse/3", Entrant.parse("lmm:pretrained"), args, baselines=True)
        assert task.training.init == str(tmp_path / folder)
        hashes.append(config_hash(task))
    assert hashes[0] == hashes[1]
    scratch = build_task("gue/mouse/3", Entrant.parse("lmm"), args, baselines=True)
    assert config_hash(scratch) != hashes[0]
    with pytest.raises(ValueError, match="entrant 'lmm:finetuned'"):
        Entrant.parse("lmm:finetuned")


def test_a_sweep_setting_is_in_the_cell_name_the_config_and_the_budget():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    lmm = Entrant.parse("lmm")
    default, swept = (
        GenomicsSuite.from_args(parser.parse_args([])),
        GenomicsSuite.from_args(
            parser.parse_args(["--dropout", "0.1", "--dim", "32", "--lr", "3e-3"])
        ),
    )
    assert label_of(lmm, default) == "titans lmm"
    assert label_of(lmm, swept) == "titans lmm dim32 dropout0.1 lr0.003"
    task = build_task("gue/mouse/3", lmm, swept, baselines=False)
    assert task.model.dropout == 0.1 and task.model.backbone.dim == 32
    assert task.training.lr == 3e-3
    assert budget(task).endswith("head dropout 0.1")
    plain = build_task("gue/mouse/3", lmm, default, baselines=False)
    assert config_hash(task) != config_hash(plain)
    assert "dropout" not in budget(plain)


def _args(*argv: str) -> GenomicsSuite:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return GenomicsSuite.from_args(parser.parse_args(list(argv)))


def test_the_queue_runs_every_tasks_first_part_before_any_second_cheapest_first():
    names = ["gue/prom/prom_core_tata", "genomic_benchmarks/human_enhancers_cohn", "gue/mouse/3"]
    lmm, mag = Entrant.parse("lmm"), Entrant.parse("mag")
    order = queue(names, [lmm, mag], _args("--seeds", "1", "2"))
    cheapest = sorted(names, key=training_bases)
    assert [n for n, i, _ in order[:6] if i == 0] == cheapest
    assert [part for _, _, part in order[:6]] == [
        "fold0" if n.startswith("genomic") else "seed1" for n in cheapest for _ in (0, 1)
    ]
    assert [i for _, i, _ in order[:2]] == [0, 1]  # every entrant of a task in turn
    # then the second part of each, then the cross-validated set's folds 2, 3 and 4 alone
    assert {part for _, _, part in order[6:12]} == {"seed2", "fold1"}
    assert [part for _, _, part in order[12:]] == [f"fold{k}" for k in (2, 3, 4) for _ in (0, 1)]


def test_a_part_is_one_seed_or_one_fold_of_the_same_cell():
    args = _args("--seeds", "1", "2", "3")
    task = build_task("gue/mouse/3", Entrant.parse("lmm"), args, baselines=True)
    seed2 = part_task(task, "seed2")
    assert seed2.protocol.seeds == (2,) and config_hash(seed2) == config_hash(task)
    cv = build_task("genomic_benchmarks/human_enhancers_cohn", Entrant.parse("lmm"), args, True)
    fold3 = part_task(cv, "fold3")
    assert fold3.protocol.run_folds == (3,) and config_hash(fold3) == config_hash(cv)
    units = list(Classification(replace(fold3, data=replace(fold3.data, max_eval=8))).units())
    assert [u.labels for u in units] == [{"fold": 3}]
    assert config_hash(replace(cv, protocol=replace(cv.protocol, seeds=(2,)))) != config_hash(cv)


def _part(test: float, dev: float | None = None) -> dict:
    return {"test": test, "dev": dev, "seconds": 10.0, "machine": "m", "date": "d", "code": "c"}


def _cell(config: str, **parts: dict) -> dict:
    return {"config": config, "metric": "mcc", "budget": "b", "protocol": "p", "planned": 3,
            "parts": parts}  # fmt: skip


def test_parts_join_a_cell_of_the_same_config_and_replace_one_of_another():
    one = merge_parts(None, _cell("aa", seed1=_part(70.0, 80.0)))
    assert (one["mean"], one["std"], one["n"], one["dev"]) == (70.0, 0.0, 1, 80.0)
    assert "(1 of 3)" in render({"gue/tf/0|titans lmm": one})
    two = merge_parts(one, _cell("aa", seed2=_part(74.0, 84.0)))
    assert (two["mean"], two["n"], two["dev"], two["seconds"]) == (72.0, 2, 82.0, 20.0)
    assert two["std"] == pytest.approx(2 * 2**0.5)
    again = merge_parts(two, _cell("aa", seed2=_part(76.0, 84.0)))  # a part run again
    assert (again["n"], again["mean"]) == (2, 73.0)
    other = merge_parts(two, _cell("bb", seed3=_part(60.0)))
    assert (other["n"], other["mean"], other["dev"]) == (1, 60.0, None)
    legacy = {**_cell("aa", seed1={}, seed2={}), "mean": 1.0, "std": 0.0, "n": 2}
    assert merge_parts(legacy, _cell("aa", seed1={})) == legacy | {"parts": legacy["parts"]}
    with pytest.raises(ValueError, match="kept no per-part scores"):
        merge_parts(legacy, _cell("aa", seed3=_part(60.0)))


def test_capped_rows_show_until_the_task_has_a_cell_and_never_count():
    capped = {
        "gue/tf/0|titans lmm": {**_entry(57.5, 70.0), "budget": "3 epochs"},
        "gue/tf/0|cnn": {**_entry(58.7, 71.0), "budget": "3 epochs"},
        "gue/tf/1|titans lmm": {**_entry(65.6, 70.0), "budget": "3 epochs"},
    }
    store = {"gue/tf/1|titans lmm": _entry(70.0, 80.0)}
    table = render(store, capped)
    assert "| gue/tf/0 | 57.50 +- 1.00 | - | 58.70 +- 1.00 |" in table
    assert "| gue/tf/1 | 65.60" not in table  # the task has a full-budget cell now
    assert "ahead of both baselines: **0 of 0**" in table  # capped cells are not counted
    assert "capped" not in render({"gue/tf/0|titans lmm": _entry(1.0, 2.0)}, {
        "gue/tf/0|titans lmm": capped["gue/tf/0|titans lmm"]})  # fmt: skip


def test_a_part_interrupted_under_other_code_is_started_again(tmp_path, capsys):
    """The queue restarts at a new commit: a part's run folder that holds another run (its
    fingerprint names other code) is the suite's own, so the part runs again from scratch."""
    argv = [*TINY[:6], "--seeds", "1", *TINY[9:], "--out", str(tmp_path / "suite")]
    args = _args(*[a for a in argv[2:] if a != "-q"])
    task = build_task("gue/mouse/3", Entrant.parse("lmm"), args, baselines=True)
    label = label_of(Entrant.parse("lmm"), args)
    folder = tmp_path / "suite" / "runs" / f"{task.name}_{label.replace(' ', '_')}_"
    folder = folder.with_name(folder.name + f"{config_hash(task)}_seed1_titans")
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"code": {"source_sha256": "older"}}))
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "cannot resume" in out and "started again" in out
    stored = json.loads((tmp_path / "suite" / "genomics.json").read_text())
    assert stored["gue/mouse/3|titans lmm dim16 depth1 heads2"]["n"] == 1


def test_a_shard_runs_every_nth_part_of_the_queue(tmp_path):
    """Two processes share the queue with --shard 1/2 and 2/2: the second runs seed 2 only."""
    out = tmp_path / "suite"
    assert main([*TINY, "--shard", "2/2", "--out", str(out)]) == 0
    store = json.loads((out / "genomics.json").read_text())
    assert {key: list(cell["parts"]) for key, cell in store.items()} == {
        "gue/mouse/3|titans lmm dim16 depth1 heads2": ["seed2"],
        "gue/mouse/3|kmer_lr": ["seed2"],
        "gue/mouse/3|cnn": ["seed2"],
    }
    with pytest.raises(SystemExit):
        _args("--shard", "3/2")
