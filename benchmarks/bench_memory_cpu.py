"""CPU benchmark: titans_sci's chunked Titans MLP memory against the PyPI ``titans-pytorch``.

This is a benchmark, not a test: it prints one markdown table and writes it to
``benchmarks/results/memory_cpu.md`` (``--out`` changes the path).

Setup, one line in the environment that runs it (pin torch, or pip pulls a multi-GB CUDA build)::

    pip install torch==2.13.0 titans-pytorch && pip install -e . --no-deps

then ``python benchmarks/bench_memory_cpu.py`` (flags: ``--batch``, ``--seq-len``, ``--reps``,
``--warmup``, ``--threads``, ``--skip-peer``, ``--out``). A separate venv keeps the project's
own venv free of titans-pytorch and its dependencies. Without titans-pytorch installed (or with
``--skip-peer``) the script times titans_sci alone and says that the peer is missing.

Same memory on both sides: 8 heads of 64, MLP memory of depth 2 and expansion 4, chunk 64, and
titans-pytorch's ``batch_size`` 64 so that its memory weights are committed every 64 tokens
(and ``default_step_transform_max_lr=1e-2``, see ``PEER_MAX_LR``).
Rows, each timed as forward + backward of ``mean(y**2)`` to every input and parameter:

* ``titans-pytorch NeuralMemory``: the peer's full module on ``x: [B, T, 512]`` (it includes its
  input projections, norms, gates and output projection).
* ``titans_sci core + projections``: our memory behind a minimal inline set of projections
  (``Linear 512->3*512`` for q, k, v; ``Linear 512->3*8`` + sigmoid for theta, eta, alpha;
  l2-normalised q, k; ``Linear 512->512`` out). Its ratio to the peer is the like-for-like one.
* ``titans_sci core only``: our memory on pre-made q, k, v and gates.
* the same two rows with ``backend="autograd"``: the chunked dual form under plain autograd, the
  training path before the lean engine (:mod:`titans_sci.memory.lean`), for the engine's own
  gain.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls only) over one
forward + backward, and set against this machine's measured fp32 ``torch.mm`` rate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import importlib.util
import math
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from machine import cpu_model
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "memory_cpu.md"

DIM = 512
HEADS = 8
HEAD_DIM = 64
CHUNK = 64
DEPTH = 2
EXPANSION = 4
# titans-pytorch's step size is ``max_lr * sigmoid(.)``; with its default ``max_lr=1`` the
# untrained memory diverges to NaN within ~700 tokens of random input (batch_size 64). The value
# changes no FLOP, only keeps the numbers finite; 1e-2 is its step transform's own default.
PEER_MAX_LR = 1e-2

Step = Callable[[], float]


@dataclass
class Row:
    """One line of the table; ``note`` replaces the numbers when the row could not run."""

    name: str
    step: Step | None = None
    seconds: list[float] | None = None
    flops: int | None = None
    loss: float = float("nan")
    note: str = ""

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None


def fwd_bwd_step(module: nn.Module, forward: Callable[[], Tensor], leaves: list[Tensor]) -> Step:
    """One forward + backward of ``mean(y**2)``, clearing the gradients of module and inputs;
    returns the loss."""

    def step() -> float:
        module.zero_grad(set_to_none=True)
        for t in leaves:
            t.grad = None
        loss = forward().square().mean()
        loss.backward()
        return loss.item()

    return step


def count_flops(step: Step) -> int:
    """Matmul FLOPs of one call, as ``FlopCounterMode`` counts them."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def measure(rows: list[Row], warmup: int, reps: int) -> None:
    """Warm up each runnable row, then time the rows round-robin (``reps`` rounds), so that load
    from other processes on the machine hits every row alike; then count FLOPs."""
    live = [(row, row.step) for row in rows if row.step is not None]
    times: dict[str, list[float]] = {row.name: [] for row, _ in live}
    for row, step in live:
        for _ in range(warmup):
            row.loss = step()
    for _ in range(reps):
        for row, step in live:
            start = time.perf_counter()
            row.loss = step()
            times[row.name].append(time.perf_counter() - start)
    for row, step in live:
        row.seconds = times[row.name]
        row.flops = count_flops(step)
        if not math.isfinite(row.loss):
            row.note = f"non-finite loss {row.loss}"


def matmul_gflops(n: int = 2048, reps: int = 10) -> float:
    """This machine's fp32 ``torch.mm`` rate on ``n x n`` matrices (median), in GFLOP/s."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        torch.mm(a, b)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# ----------------------------------------------------------------------------- titans_sci


class ProjectedMemory(nn.Module):
    """titans_sci's memory behind the minimal projections that titans-pytorch's module has."""

    def __init__(self, core: nn.Module) -> None:
        super().__init__()
        self.core = core
        self.to_qkv = nn.Linear(DIM, 3 * HEADS * HEAD_DIM, bias=False)
        self.to_gates = nn.Linear(DIM, 3 * HEADS)
        self.to_out = nn.Linear(HEADS * HEAD_DIM, DIM, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        q, k, v = self.to_qkv(x).view(b, t, 3, HEADS, HEAD_DIM).unbind(2)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        theta, eta, alpha = torch.sigmoid(self.to_gates(x)).view(b, t, 3, HEADS).unbind(2)
        y, _ = self.core(q, k, v, theta=theta, eta=eta, alpha=alpha, state=None, impl="chunked")
        return self.to_out(y.reshape(b, t, HEADS * HEAD_DIM))


def make_core(backend: str = "torch") -> nn.Module:
    """Our memory; ``backend="torch"``: the training engine (explicit lean backward),
    ``"autograd"``: the dual form under plain autograd (what training ran before the engine)."""
    from titans_sci.memory import MemoryConfig, NeuralMemory

    cfg = MemoryConfig.preset(
        "titans", num_heads=HEADS, head_dim=HEAD_DIM, chunk_size=CHUNK, backend=backend
    )
    return NeuralMemory(cfg)


def ours_core_step(batch: int, seq_len: int, backend: str = "torch") -> Step:
    core = make_core(backend)
    shape = (batch, seq_len, HEADS, HEAD_DIM)
    q = F.normalize(torch.randn(shape), dim=-1).requires_grad_()
    k = F.normalize(torch.randn(shape), dim=-1).requires_grad_()
    v = torch.randn(shape).requires_grad_()
    theta, eta, alpha = (
        torch.sigmoid(torch.randn(batch, seq_len, HEADS)).requires_grad_() for _ in range(3)
    )

    def forward() -> Tensor:
        y, _ = core(q, k, v, theta=theta, eta=eta, alpha=alpha, state=None, impl="chunked")
        return y

    return fwd_bwd_step(core, forward, [q, k, v, theta, eta, alpha])


def ours_projected_step(batch: int, seq_len: int, backend: str = "torch") -> Step:
    model = ProjectedMemory(make_core(backend))
    x = torch.randn(batch, seq_len, DIM, requires_grad=True)
    return fwd_bwd_step(model, lambda: model(x), [x])


# ----------------------------------------------------------------------------- titans-pytorch


def make_peer(depth: int = DEPTH, batch_size: int | None = CHUNK) -> nn.Module:
    """titans-pytorch's ``NeuralMemory`` in the configuration every benchmark compares against:
    8 heads of 64, MLP memory of ``depth`` (1: linear) and expansion 4, chunk 64, memory
    committed every ``batch_size`` tokens."""
    from titans_pytorch import MemoryMLP
    from titans_pytorch import NeuralMemory as PeerMemory

    return PeerMemory(
        dim=DIM,
        chunk_size=CHUNK,
        batch_size=batch_size,
        heads=HEADS,
        dim_head=HEAD_DIM,
        model=MemoryMLP(dim=HEAD_DIM, depth=depth, expansion_factor=float(EXPANSION)),
        default_step_transform_max_lr=PEER_MAX_LR,
    )


def peer_step(batch: int, seq_len: int) -> Step:
    model = make_peer()
    x = torch.randn(batch, seq_len, DIM, requires_grad=True)
    return fwd_bwd_step(model, lambda: model(x)[0], [x])


# ----------------------------------------------------------------------------- report


def build_row(name: str, make: Callable[[], Step]) -> Row:
    """The row with its step, or with the error that building or a first call raised."""
    try:
        step = make()
        step()
    except Exception as error:  # a failing row is reported, not fatal
        traceback.print_exc()
        return Row(name, note=f"failed: {type(error).__name__}: {error}".splitlines()[0])
    return Row(name, step)


def render(rows: list[Row], tokens: int, peak: float, header: list[str]) -> str:
    peer = rows[0].median_s
    lines = [
        *header,
        "",
        "| peer | median s / step (min-max) | tokens/s | ratio vs titans-pytorch "
        "| counted GFLOP | achieved GFLOP/s | fraction of matmul peak |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        med = row.median_s
        if med is None or row.seconds is None or row.flops is None:
            lines.append(f"| {row.name} | {row.note} | | | | | |")
            continue
        ratio = f"{peer / med:.2f}x" if peer is not None else "n/a"
        achieved = row.flops / med / 1e9
        name = f"{row.name} ({row.note})" if row.note else row.name
        lines.append(
            f"| {name} | {med:.3f} ({min(row.seconds):.3f}-{max(row.seconds):.3f}) "
            f"| {tokens / med:,.0f} | {ratio} | {row.flops / 1e9:.2f} | {achieved:.1f} "
            f"| {achieved / peak:.1%} |"
        )
    lines += [
        "",
        "Ratio = tokens/s of the row / tokens/s of titans-pytorch (> 1: faster than the peer). "
        "The like-for-like ratio is `titans_sci core + projections` (both sides map "
        f"x: [B, T, {DIM}] to [B, T, {DIM}] with their projections); `titans_sci core only` "
        "excludes all projections. GFLOP are matmul FLOPs of one forward + backward counted by "
        "`FlopCounterMode`.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2, help="B (default 2)")
    parser.add_argument("--seq-len", type=int, default=1024, help="T (default 1024)")
    parser.add_argument("--reps", type=int, default=7, help="timed reps per row (default 7)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed reps first (default 2)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    parser.add_argument("--skip-peer", action="store_true", help="do not run titans-pytorch")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown output path")
    args = parser.parse_args(argv)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    tokens = args.batch * args.seq_len

    peak = matmul_gflops()
    print(f"fp32 torch.mm 2048x2048: {peak:.1f} GFLOP/s", file=sys.stderr)

    peer_name = "titans-pytorch NeuralMemory"
    if args.skip_peer:
        peer_row = Row(peer_name, note="skipped (--skip-peer)")
    elif importlib.util.find_spec("titans_pytorch") is None:
        peer_row = Row(peer_name, note="missing: `pip install torch==2.13.0 titans-pytorch`")
    else:
        peer_row = build_row(peer_name, lambda: peer_step(args.batch, args.seq_len))
    if peer_row.note:
        print(f"titans-pytorch: {peer_row.note}", file=sys.stderr)
    rows = [
        peer_row,
        build_row(
            "titans_sci core + projections",
            lambda: ours_projected_step(args.batch, args.seq_len),
        ),
        build_row("titans_sci core only", lambda: ours_core_step(args.batch, args.seq_len)),
        build_row(
            "titans_sci core + projections, autograd reference",
            lambda: ours_projected_step(args.batch, args.seq_len, "autograd"),
        ),
        build_row(
            "titans_sci core only, autograd reference",
            lambda: ours_core_step(args.batch, args.seq_len, "autograd"),
        ),
    ]
    measure(rows, args.warmup, args.reps)

    header = [
        f"# Memory fwd+bwd on CPU: B={args.batch}, T={args.seq_len}",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} cores, torch threads {args.threads}, "
        f"1-min load avg at start {load:.2f}",
        f"- torch {torch.__version__}, titans-pytorch {package_version('titans-pytorch')}, "
        f"python {platform.python_version()}",
        f"- memory: {HEADS} heads x {HEAD_DIM}, MLP depth {DEPTH} expansion {EXPANSION}, "
        f"chunk {CHUNK} (titans-pytorch batch_size {CHUNK}); loss mean(y**2), fp32",
        f"- timing: median of {args.reps} reps after {args.warmup} warm-up, rows timed "
        "round-robin; "
        f"fp32 torch.mm 2048x2048 rate {peak:.1f} GFLOP/s (median of 10)",
    ]
    table = render(rows, tokens, peak, header)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
