"""Issue 36, data loss: a command never deletes or overwrites a file it did not write, never
follows a link to delete, never writes over its own input or a model, and refuses a bad
configuration before it touches anything. The property test builds arbitrary trees of user
files (links included) in and around the run folder and checks that every one stays
byte-identical whatever the flags."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refusal import refused
from tiny_tasks import (
    classification_task,
    etth1_csv,
    forecast_task,
    gue_csv,
    user_classification_task,
    write,
)
from titans_sci.cli import main
from titans_sci.tasks import load_task, run
from titans_sci.tasks.run_folder import OWNED, RunFolder, write_json


def contents(root: Path) -> dict[str, tuple[str, bytes | str]]:
    """Every entry under ``root`` without following links: path -> ("file", bytes), ("link",
    target) or ("dir", "")."""
    found: dict[str, tuple[str, bytes | str]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            key = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[key] = ("link", os.readlink(path))
            elif path.is_dir():
                found[key] = ("dir", "")
            else:
                found[key] = ("file", path.read_bytes())
    return found


NO_BASELINES = "[baselines]\ncnn = false\nkmer_lr = false\n"


@pytest.fixture
def dna_task(tmp_path):
    return user_classification_task(tmp_path, "g", extra=NO_BASELINES)


def test_overwrite_refuses_a_folder_of_user_files_without_a_run(dna_task, tmp_path, capsys):
    folder = tmp_path / "out" / "g"
    (folder / "analysis").mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes")
    (folder / "analysis" / "fig.csv").write_text("x\n1\n")
    before = contents(tmp_path / "out")
    for flag in ("--overwrite", "--resume", None):
        argv = ["run", "-q", str(dna_task), "--out", str(tmp_path / "out")]
        line = refused(capsys, argv + ([flag] if flag else []), "not a titans-sci run's",
                       "notes.txt", debug=False)  # fmt: skip
        assert "earlier run" not in line and "--overwrite" not in line
        assert contents(tmp_path / "out") == before


def test_a_run_folder_that_is_a_link_is_refused_and_its_target_untouched(
    dna_task, tmp_path, capsys
):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "precious.txt").write_text("keep")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "g").symlink_to(target)
    for flag in ("--overwrite", "--resume"):
        argv = ["run", "-q", str(dna_task), "--out", str(tmp_path / "out"), flag]
        refused(capsys, argv, "is a symbolic link", debug=False)
    assert contents(target) == {"precious.txt": ("file", b"keep")}


def test_overwrite_removes_only_what_a_run_writes(dna_task, tmp_path):
    run(load_task(dna_task), tmp_path / "out")
    folder = tmp_path / "out" / "g"
    (folder / "notes.txt").write_text("mine")
    (folder / "checkpoints.txt").write_text("mine too")
    run(load_task(dna_task), tmp_path / "out", overwrite=True)
    assert (folder / "notes.txt").read_text() == "mine"
    assert (folder / "checkpoints.txt").read_text() == "mine too"
    assert (folder / "results.json").exists()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("protocol.horizons=[500]", "horizon 500 is longer"),
        ("data.split_rule=ett_hour", "ett_hour"),
    ],
)
def test_overwrite_with_a_bad_setting_is_refused_before_the_earlier_run_is_touched(
    tmp_path, capsys, setting, message
):
    csv = etth1_csv(tmp_path, 900)
    data = f'file = "{csv}"\nsplit_rule = "ratio_70_10_20"\ncolumns = ["OT"]'
    task = write(tmp_path / "f.toml", forecast_task("f", data, "[protocol]\nhorizons = [12]\n"))
    out = tmp_path / "out"
    assert main(["run", "-q", str(task), "--out", str(out), "--set", "training.epochs=1"]) == 0
    argv = ["run", "-q", str(task), "--out", str(out), "--overwrite", "--set", setting]
    refused(capsys, argv, message, watch=[out], debug=False)


def test_a_failed_run_leaves_no_run_json_so_a_plain_rerun_is_not_refused(tmp_path, capsys):
    gue_csv(tmp_path, "train", 32)
    gue_csv(tmp_path, "dev", 16)
    (tmp_path / "test.csv").write_text("sequence,label\nACGT,0\n")
    data = 'train = "train.csv"\ndev = "dev.csv"\ntest = "test.csv"'
    text = classification_task("h", data, "[baselines]\ncnn = false\nkmer_lr = false\n")
    task = write(tmp_path / "h.toml", text.replace("epochs = 2", "epochs = 1"))
    out = tmp_path / "out"
    folder = RunFolder(out / "h", {"a": 1})
    with pytest.raises(RuntimeError), folder:
        raise RuntimeError("a failure before any checkpoint")
    assert not (out / "h").exists() or not (out / "h" / "run.json").exists()
    assert main(["run", "-q", str(task), "--out", str(out)]) == 0


@pytest.mark.parametrize("which", ["classifier", "forecaster"])
def test_predict_never_writes_over_its_input_or_the_model(workspace, tmp_path, capsys, which):
    root, classifier, forecaster = workspace
    model = classifier if which == "classifier" else forecaster
    source = tmp_path / ("mine.fa" if which == "classifier" else "mine.csv")
    if which == "classifier":
        source.write_text(">r1\nACGTACGTAAGGCCTT\n")
    else:
        source.write_bytes((root / "series.csv").read_bytes())
    before = contents(tmp_path), contents(model)
    for output, message in (
        (source, "is the command's input"),
        (tmp_path / "." / source.name, "is the command's input"),
        (model / "model.json", "lies inside the saved model"),
        (tmp_path, "is a folder"),
    ):
        refused(capsys, ["predict", str(model), str(source), "-o", str(output)], message,
                debug=False)  # fmt: skip
    assert (contents(tmp_path), contents(model)) == before


def test_predict_writes_gzip_for_a_gz_output(workspace, tmp_path):
    _, classifier, _ = workspace
    (tmp_path / "in.fa").write_text(">r1\nACGTACGTAAGGCCTT\n")
    assert main(["predict", "-q", str(classifier), str(tmp_path / "in.fa"), "-o",
                 str(tmp_path / "p.csv.gz")]) == 0  # fmt: skip
    with gzip.open(tmp_path / "p.csv.gz", "rt") as handle:
        assert handle.readline().startswith("id,length,p_0")


def test_window_predictions_quote_a_record_id_with_a_comma(workspace, tmp_path):
    import pandas as pd

    _, classifier, _ = workspace
    (tmp_path / "in.fa").write_text(">chr1:100-200,+\n" + "ACGT" * 20 + "\n")
    out = tmp_path / "w.csv"
    argv = ["predict", "-q", str(classifier), str(tmp_path / "in.fa"), "--window", "40", "-o"]
    assert main([*argv, str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns[:3]) == ["record", "start", "end"]
    assert set(table["record"]) == {"chr1:100-200,+"}


# ------------------------------------------------------------------ the property, generated trees

NAMES = st.sampled_from(
    ["notes.txt", "results.json", "report.md", "checkpoints", "data", "x.tmp", "run.json.bak"]
)


@st.composite
def user_trees(draw):
    """A tree of user entries: ``(relative path, kind, payload)``; kind file, dir or link."""
    entries = []
    for place in draw(st.lists(st.sampled_from(["", "g/", "g/sub/", "g/checkpoints/"]),
                               max_size=5)):  # fmt: skip
        name = draw(NAMES)
        kind = draw(st.sampled_from(["file", "file", "link"]))
        entries.append((place + name, kind, draw(st.binary(max_size=8))))
    return entries


def _plant(root: Path, entries, outside: Path) -> None:
    for relative, kind, payload in entries:
        path = root / relative
        parents = [root / Path(relative).parents[i] for i in range(len(Path(relative).parents))]
        if (
            path.exists()
            or path.is_symlink()
            or any(p.is_symlink() or p.is_file() for p in parents)
        ):
            continue  # planted once, and never through a link or under a file
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "link":
            path.symlink_to(outside)
        else:
            path.write_bytes(payload)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tree=user_trees(), with_run=st.booleans(), flag=st.sampled_from(["", "resume", "overwrite"]))
def test_a_run_folder_leaves_every_file_it_did_not_write_byte_identical(
    tmp_path_factory, tree, with_run, flag
):
    """RunFolder with any flag, on any tree of user files (links to a folder outside
    included), the run's own files written as a run writes them: every user entry stays as it
    was, and the folder outside, reached only through links, is never touched."""
    root = tmp_path_factory.mktemp("tree")
    outside = root.parent / (root.name + "_outside")
    outside.mkdir()
    (outside / "precious").write_bytes(b"keep")
    out = root / "out"
    out.mkdir()
    if with_run:
        with RunFolder(out / "g", {"a": 1}) as folder:
            write_json(folder.path / "results.json", {"x": 1})
            (folder.checkpoints / "seed1").mkdir(parents=True)
            (folder.checkpoints / "seed1" / "checkpoint.pt").write_bytes(b"ckpt")
    _plant(out, tree, outside)
    # a run may replace what lies under its own names, and only in a folder that is a run's
    ours = {e for e in contents(out) if with_run and e.startswith("g/")
            and e.split("/")[1] in OWNED}  # fmt: skip
    before = {k: v for k, v in contents(out).items() if k not in ours}
    try:
        with RunFolder(out / "g", {"a": 1}, resume=flag == "resume",
                       overwrite=flag == "overwrite") as folder:  # fmt: skip
            write_json(folder.path / "results.json", {"x": 2})
    except ValueError:
        pass  # refused: then nothing at all may have changed
    after = contents(out)
    for key, value in before.items():
        assert after.get(key) == value, key
    assert contents(outside) == {"precious": ("file", b"keep")}


def test_saving_a_model_never_replaces_a_folder_of_other_files(tmp_path):
    from titans_sci.api import save_model
    from titans_sci.models.dna_classifier import ClassifierConfig, DNAClassifier
    from titans_sci.tasks import load_task as load

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    task = load(write(tmp_path / "c.toml", classification_task("c", 'dataset = "gue/tf/0"')))
    model = DNAClassifier(ClassifierConfig(task.model.backbone))
    with pytest.raises(ValueError, match="holds files that are not the ones saved there"):
        save_model(mine, model, {})
    assert contents(mine) == {"notes.txt": ("file", b"keep")}
    save_model(tmp_path / "model", model, {})
    save_model(tmp_path / "model", model, {})  # a saved model is replaced whole
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tree=user_trees(), with_run=st.booleans(), flag=st.sampled_from(["", "resume", "overwrite"]))
def test_the_run_command_leaves_every_file_it_did_not_write_byte_identical(
    tmp_path_factory, tree, with_run, flag
):
    """The same property end to end: ``titans-sci run`` on a real tiny task, with any flag."""
    root = tmp_path_factory.mktemp("cli_tree")
    task = user_classification_task(root, "g", extra=NO_BASELINES)
    outside = root / "outside"
    outside.mkdir()
    (outside / "precious").write_bytes(b"keep")
    out = root / "out"
    out.mkdir()
    if with_run:
        assert main(["run", "-q", str(task), "--out", str(out)]) == 0
    _plant(out, tree, outside)
    ours = {e for e in contents(out) if with_run and e.startswith("g/")
            and e.split("/")[1] in OWNED}  # fmt: skip
    before = {k: v for k, v in contents(out).items() if k not in ours}
    inputs = contents(root / "outside"), (root / "train.csv").read_bytes()
    main(["run", "-q", str(task), "--out", str(out)] + ([f"--{flag}"] if flag else []))
    after = contents(out)
    for key, value in before.items():
        assert after.get(key) == value, key
    assert (contents(root / "outside"), (root / "train.csv").read_bytes()) == inputs
