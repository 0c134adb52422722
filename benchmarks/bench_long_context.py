"""Long-context benchmark: passkey retrieval with a small trained Titans LMM, 2k to 1M tokens.

A sequence of filler tokens hides one passkey: the marker token ``KEY`` followed by a digit, at a
uniformly random depth; the sequence ends with ``QUERY`` and the model must name the digit there.
The filler is either random tokens (``--filler random``: a needle in noise, every filler token is
new to the memory) or, as in the usual passkey test, a short text repeated over and over
(``--filler repeated``: the 16 filler tokens in a fixed order, cycled from a random phase), which
a test-time memory learns once, so that later repeats barely surprise it.

A causal ``TitansLMM`` (token embedding -> backbone -> a linear head on the last position) is
trained at ``--train-length`` tokens, then evaluated by streaming sequences of 2k to 1M tokens
through it in pieces with carried state (constant memory), so the memory alone must carry the
digit across the whole distance. Chance is 10%.

Run from the repository root::

    .venv/bin/python benchmarks/bench_long_context.py

It writes ``benchmarks/results/long_context.md`` (recall per length, tokens/s, the training
budget and the machine).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

import torch
from machine import cpu_model
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from titans_sci.memory import MemoryConfig  # noqa: E402
from titans_sci.models import LMMConfig, TitansLMM  # noqa: E402

FILLER, DIGITS = 16, 10
KEY, QUERY = FILLER + DIGITS, FILLER + DIGITS + 1
VOCAB = QUERY + 1


class PasskeyModel(nn.Module):
    """Token ids ``[B, T]`` -> digit logits ``[B, 10]`` read at the last position."""

    def __init__(self, dim: int, depth: int) -> None:
        super().__init__()
        memory = MemoryConfig.preset("titans", num_heads=4, head_dim=dim // 4, chunk_size=16)
        self.embed = nn.Embedding(VOCAB, dim)
        self.backbone = TitansLMM(LMMConfig(dim=dim, depth=depth, memory=memory))
        self.head = nn.Linear(dim, DIGITS)

    def forward(self, ids: Tensor, state=None) -> tuple[Tensor, object]:
        h, state = self.backbone(self.embed(ids), state=state)
        return self.head(h[:, -1]), state


def passkey_batch(
    batch: int, length: int, gen: torch.Generator, filler: str = "random"
) -> tuple[Tensor, Tensor]:
    """``batch`` sequences of ``length`` tokens and their digits."""
    if filler == "random":
        ids = torch.randint(0, FILLER, (batch, length), generator=gen)
    else:  # the repeated "text": 0, 1, ..., FILLER - 1, 0, 1, ... from a random phase
        phase = torch.randint(0, FILLER, (batch, 1), generator=gen)
        ids = (phase + torch.arange(length)) % FILLER
    digits = torch.randint(0, DIGITS, (batch,), generator=gen)
    depth = torch.randint(0, length - 3, (batch,), generator=gen)
    rows = torch.arange(batch)
    ids[rows, depth] = KEY
    ids[rows, depth + 1] = FILLER + digits
    ids[:, -1] = QUERY
    return ids, digits


def train(model: PasskeyModel, args: argparse.Namespace) -> dict:
    gen = torch.Generator().manual_seed(args.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    start, accuracy, step = time.perf_counter(), 0.0, 0
    recent: list[float] = []
    for step in range(1, args.steps + 1):
        # Curriculum: 16 tokens, doubling every `--double-every` steps up to --train-length.
        length = min(args.train_length, 16 * 2 ** (step // args.double_every))
        ids, digits = passkey_batch(args.batch, length, gen, args.filler)
        logits, _ = model(ids)
        loss = nn.functional.cross_entropy(logits, digits)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        recent = (recent + [float((logits.argmax(-1) == digits).float().mean())])[-50:]
        accuracy = sum(recent) / len(recent)
        if step % 50 == 0:
            print(f"step {step} (length {length}): loss {loss.item():.3f}, accuracy {accuracy:.3f}")
        if length == args.train_length and len(recent) == 50 and accuracy >= args.target:
            break
    return {"steps": step, "seconds": time.perf_counter() - start, "train_accuracy": accuracy}


@torch.inference_mode()
def evaluate(model: PasskeyModel, length: int, args: argparse.Namespace) -> dict:
    """Recall over ``args.samples`` sequences of ``length`` tokens, streamed in pieces."""
    gen = torch.Generator().manual_seed(args.seed + length)
    ids, digits = passkey_batch(args.samples, length, gen, args.filler)
    start, state, logits = time.perf_counter(), None, None
    for piece in ids.split(args.piece, dim=1):
        logits, state = model(piece, state)
    seconds = time.perf_counter() - start
    recall = float((logits.argmax(-1) == digits).float().mean())
    return {"recall": recall, "tokens_per_s": args.samples * length / seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--filler", choices=["random", "repeated"], default="random")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--train-length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--double-every", type=int, default=150)
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument(
        "--lengths", type=int, nargs="+", default=[2048, 8192, 32768, 131072, 524288, 1048576]
    )
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--piece", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/long_context.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = PasskeyModel(args.dim, args.depth)
    trained = train(model, args)
    model.eval()
    rows = []
    for length in [args.train_length, *args.lengths]:
        result = evaluate(model, length, args)
        rows.append((length, result))
        print(f"length {length}: recall {result['recall']:.3f}", flush=True)
    lines = [
        "# Passkey retrieval with a small trained Titans LMM, streamed to 1M tokens",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {cpu_model()}, "
        f"{os.cpu_count()} cores, {args.threads} torch thread(s), torch {torch.__version__}",
        f"- model: token embedding -> TitansLMM(dim {args.dim}, depth {args.depth}, titans memory "
        "4 heads, chunk 16) -> linear head at the last position; "
        f"{sum(p.numel() for p in model.parameters()):,} parameters",
        f"- training: {trained['steps']} steps of {args.batch} sequences, 16 tokens doubling every "
        f"{args.double_every} steps to {args.train_length} (AdamW lr {args.lr}, stop at "
        f"{args.target:.0%} recent accuracy at full length), "
        f"{trained['seconds']:.0f} s, final recent accuracy {trained['train_accuracy']:.3f}",
        f"- filler: {args.filler} ({FILLER} tokens"
        + (", a fixed cycle from a random phase)" if args.filler == "repeated" else ", uniform)"),
        f"- evaluation: {args.samples} sequences per length, passkey at a uniform random depth, "
        f"streamed in pieces of {args.piece} tokens with carried state; chance 0.10",
        "",
        "| length | recall | tokens/s |",
        "| ---: | ---: | ---: |",
    ]
    for length, result in rows:
        lines.append(f"| {length:,} | {result['recall']:.3f} | {result['tokens_per_s']:,.0f} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
