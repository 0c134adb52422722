"""The command line and the associative-recall demo's stream construction."""

import pytest
import torch

from titans_sci import __version__
from titans_sci.cli import build_parser, main
from titans_sci.demo import NUM_PAIRS, associative_recall, make_stream, recall_correct


def test_help_lists_run(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "run" in capsys.readouterr().out


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sub.choices, "no subcommands"
    for name in sub.choices:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        assert f"titans-sci {name}" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert __version__ in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_run_rejects_odd_tokens():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--tokens", "7"])


def test_stream_interleaves_queries_before_writes():
    stream = make_stream(tokens=96, batch=3, generator=torch.Generator().manual_seed(1))
    b = torch.arange(3)[:, None]
    # Query tokens (even positions) write nothing and ask for the pair written next.
    assert (stream.write[:, 0::2] == 0).all()
    assert (stream.write[:, 1::2] == 1).all()
    assert torch.equal(stream.q[:, 0::2, 0], stream.k[:, 1::2, 0])
    # Write tokens store the asked-for pair's value.
    assert torch.allclose(stream.v[:, 1::2, 0], stream.values[b, stream.pair])
    # Each round of NUM_PAIRS presentations is a permutation of the pairs.
    for row in stream.pair:
        assert sorted(row[:NUM_PAIRS].tolist()) == list(range(NUM_PAIRS))
    # `writes_before` counts earlier presentations of the same pair.
    assert int((stream.writes_before == 0).sum()) == 3 * NUM_PAIRS
    assert (stream.writes_before[:, :NUM_PAIRS] == 0).all()
    assert (stream.writes_before[:, NUM_PAIRS : 2 * NUM_PAIRS] == 1).all()


def test_recall_scoring_of_perfect_and_wrong_reads():
    stream = make_stream(tokens=64, batch=2, generator=torch.Generator().manual_seed(2))
    b = torch.arange(2)[:, None]
    y = torch.zeros_like(stream.q)
    y[:, 0::2, 0] = 3.0 * stream.values[b, stream.pair]  # scale must not matter (cosine)
    assert recall_correct(y, stream).all()
    y[:, 0::2, 0] = stream.values[b, (stream.pair + 1) % NUM_PAIRS]
    assert not recall_correct(y, stream).any()


def test_demo_learns_recall_at_test_time(capsys):
    """Every preset recalls pairs it has seen 8+ times far above chance (1/16), none before."""
    results = associative_recall(tokens=1024, batch=2, seed=0)
    out = capsys.readouterr().out
    assert "titans/linear" in out and "memora/mlp" in out
    stream = make_stream(1024, 2, torch.Generator().manual_seed(0))
    for name, correct in results.items():
        assert correct.shape == (2, 512)
        seen_often = correct[stream.writes_before >= 8].float().mean().item()
        assert seen_often > 0.6, f"{name}: recall {seen_often:.2f} after 8+ writes"
        assert correct[stream.writes_before == 0].float().mean().item() < 0.3, name
