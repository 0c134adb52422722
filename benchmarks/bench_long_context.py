"""Long-context benchmark: does the memory really remember? Recall against length, to 1M tokens.

Three tasks (``long_context_tasks.py``): passkey retrieval (random or repeated filler), a
BABILong-style single-supporting-fact task, and a long-range motif pair planted in real DNA. A
model reads token ids through an embedding (DNA: then a causal 12-base convolution, the same
for every model), a body and a linear head at the last position. Bodies:

* ``lmm``, ``mac``: Titans LMM / MAC (MAC's ``--mac-form``), with ``--gates`` (``sparse``: gates
  that can be exactly 0, "do not write" and "do not forget"; ``sigmoid``: the old gates) and
  ``--channel-gates r`` (channel-wise step sizes of rank ``r``);
* ``lmm-no-momentum``, ``lmm-no-forgetting``: the paper's two ablations of the LMM (plain
  gradient steps; the forget rate fixed at 0);
* ``cnn``: the library's small CNN baseline (convolutions, global max pool) over the last
  ``--reach`` tokens; ``swa``: sliding-window attention blocks of window ``--reach``. Neither can
  see further than that.

Training is for length: each step draws a length log-uniformly between ``--min-length`` and a cap
that doubles up to ``--train-length`` (mixed lengths; every ``--double-every`` steps, or with
``--advance-at A`` once the last 50 steps' training accuracy reaches ``A``), runs every segment but
the last without gradients, carrying the state, and trains on the last ``--segment`` tokens
(gradients truncated at the segment border, as BABILong fine-tuning does). ``--gate-penalty`` adds
its weight times the mean step size and forget rate to the loss, a sparsity prior on writing and
forgetting (with sparse gates it drives them to exactly 0 on what the answer does not need;
``--penalty-ramp`` grows it with the length cap, so a task is learned before writing is made
sparse). Steps whose gradients are not finite are skipped and counted. Evaluation streams
``--samples`` fresh sequences per length in pieces of 4,096 tokens with the state carried
(constant memory).

One run is one (task, model, seed); its result is merged into
``benchmarks/results/long_context.json`` and the table ``long_context.md`` is rebuilt from all
runs (mean +- std over seeds). With ``--stability N`` it also streams N tokens in float32 pieces
against one call, and runs one float32 call against a float64 copy of the model (how much the
memory amplifies rounding), and records both relative differences. Run from the repository root::

    .venv/bin/python benchmarks/bench_long_context.py --task passkey_random --model lmm --seed 0
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from long_context_tasks import DNAPair, Facts, Passkey
from machine import describe
from store import save
from torch import Tensor, nn

from titans_sci.data.tokens import PAD_ID
from titans_sci.layers.attention import SlidingWindowAttention
from titans_sci.layers.basic import SwiGLU
from titans_sci.memory import MemoryConfig, NonFiniteSurpriseError, recording_gates
from titans_sci.models import LMMConfig, MACConfig, build_backbone
from titans_sci.models.baselines import SmallCNN

REPO = Path(__file__).resolve().parents[1]

RESULTS = REPO / "benchmarks/results"
PIECE = 4096
DEFAULT_LN_EPS = MemoryConfig().ln_eps
TASKS = {
    "passkey_random": lambda: Passkey("random"),
    "passkey_repeated": lambda: Passkey("repeated"),
    "facts": Facts,
    "dna_pair": DNAPair,
}
MODELS = ("lmm", "mac", "lmm-no-momentum", "lmm-no-forgetting", "cnn", "swa")


class CausalConv(nn.Module):
    """``[B, T, D] -> [B, T, D]`` causal convolution that streams: its state is the last
    ``(kernel - 1) * dilation`` inputs ``[B, D, n]``."""

    def __init__(self, dim: int, kernel: int, dilation: int = 1) -> None:
        super().__init__()
        self.context = (kernel - 1) * dilation
        self.conv = nn.Conv1d(dim, dim, kernel, dilation=dilation)

    def forward(self, x: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        x = x.transpose(1, 2)
        if state is None:
            state = x.new_zeros(x.shape[0], x.shape[1], self.context)
        full = torch.cat([state, x], dim=2)
        return self.conv(full).transpose(1, 2), full[:, :, full.shape[2] - self.context :]


class WindowedCNN(nn.Module):
    """The library's :class:`~titans_sci.models.baselines.SmallCNN` (embedding, convolutions
    of kernel 9, global max pool, linear) over the last ``reach`` tokens: ids ``[B, T]`` ->
    logits ``[B, K]``; its streaming state is the last ``reach - 1`` ids."""

    def __init__(self, task: Any, dim: int, reach: int) -> None:
        super().__init__()
        # SmallCNN keeps id PAD_ID for padding: shift the task's ids past it.
        self.cnn = SmallCNN(task.vocab + PAD_ID + 1, task.classes, dim, layers=3, dropout=0.0)
        self.reach = reach

    def forward(self, ids: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        window = ids if state is None else torch.cat([state, ids], dim=1)
        window = window[:, -self.reach :]
        return self.cnn(window + PAD_ID + 1), window[:, 1:]


class WindowBody(nn.Module):
    """``depth`` blocks of sliding-window attention (window ``reach``) and a SwiGLU MLP."""

    def __init__(self, dim: int, depth: int, reach: int) -> None:
        super().__init__()
        self.attention = nn.ModuleList(SlidingWindowAttention(dim, 4, reach) for _ in range(depth))
        self.mlps = nn.ModuleList(SwiGLU(dim, 8 * dim // 3) for _ in range(depth))
        self.norms = nn.ModuleList(nn.RMSNorm(dim) for _ in range(depth))
        self.reach = reach

    def forward(self, x: Tensor, mask: None, state: list | None) -> tuple[Tensor, list]:
        state = state or [None] * len(self.attention)
        new = []
        for attention, mlp, norm, s in zip(
            self.attention, self.mlps, self.norms, state, strict=True
        ):
            y, s = attention(x, None, s)
            x = x + y
            x = x + mlp(norm(x))
            new.append(s)
        return x, new


def _no_forgetting(layer: nn.Module) -> None:
    """The paper's "w/o forget gate" ablation: the memory layer's alpha is fixed at 0."""
    inputs = layer._memory_inputs

    def without_alpha(*args: Any) -> Any:
        qkv, gates, conv = inputs(*args)
        return qkv, {**gates, "alpha": torch.zeros_like(gates["alpha"])}, conv

    layer._memory_inputs = without_alpha


def titans_body(args: argparse.Namespace) -> nn.Module:
    algorithm = "gd" if args.model == "lmm-no-momentum" else "momentum"
    memory = MemoryConfig.preset(
        "titans",
        num_heads=4,
        head_dim=args.dim // 4,
        chunk_size=16,
        algorithm=algorithm,
        architecture=args.architecture,
        ln_eps=args.ln_eps,
    )
    common = dict(
        dim=args.dim, depth=args.depth, memory=memory, gates=args.gates,
        channel_gates=args.channel_gates, memory_persistent=args.persistent,
    )  # fmt: skip
    if args.model == "mac":
        config: Any = MACConfig(**common, segment_len=64, form=args.mac_form)
    else:
        config = LMMConfig(**common)
    body = build_backbone(config)
    if args.model == "lmm-no-forgetting":
        for block in body.blocks:
            _no_forgetting(block.memory)
    return body


class Reader(nn.Module):
    """Token ids ``[B, T]`` -> class logits ``[B, K]`` read at the last position; streams."""

    def __init__(self, task: Any, args: argparse.Namespace) -> None:
        super().__init__()
        self.embed = nn.Embedding(task.vocab, args.dim)
        self.stem = CausalConv(args.dim, DNAPair.motif_length) if task.name == "dna_pair" else None
        if args.model == "swa":
            self.body = WindowBody(args.dim, args.depth, args.reach)
        else:
            self.body = titans_body(args)
        self.norm = nn.RMSNorm(args.dim)
        self.head = nn.Linear(args.dim, task.classes)

    def hidden(self, ids: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        stem_state, body_state = state if state is not None else (None, None)
        x = self.embed(ids)
        if self.stem is not None:
            y, stem_state = self.stem(x, stem_state)
            x = x + F.gelu(y)
        h, body_state = self.body(x, None, body_state)
        return h, (stem_state, body_state)

    def forward(self, ids: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        h, state = self.hidden(ids, state)
        return self.head(self.norm(h[:, -1])), state


def detach(state: Any) -> Any:
    """``state`` with every tensor in it cut from the graph (gradients stop at the border)."""
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, (list, tuple)):
        return type(state)(detach(s) for s in state)
    if state is None:
        return None
    return state.detach()


def stream(model: nn.Module, ids: Tensor, piece: int, state: Any = None) -> tuple[Tensor, Any]:
    """Logits after streaming ``ids`` in pieces, with the state carried."""
    logits = None
    for start in range(0, ids.shape[1], piece):
        logits, state = model(ids[:, start : start + piece], state)
    assert logits is not None
    return logits, state


def draw(task: Any, batch: int, length: int, gen: torch.Generator, distance: int | None = None):
    if task.name == "dna_pair":
        return task.batch(batch, length, gen, distance)
    return task.batch(batch, length, gen)


def penalty_weight(args: argparse.Namespace, cap: int) -> float:
    """The gate penalty's weight at length cap ``cap``: ``--gate-penalty``, or with
    ``--penalty-ramp`` that weight times how far the cap has grown, on a log scale, from
    ``--min-length`` (0) to ``--train-length`` (1): writing is free while a task is learned at
    short lengths and is made sparse as the lengths grow."""
    if not args.penalty_ramp or args.train_length <= args.min_length:
        return args.gate_penalty
    grown = math.log(cap / args.min_length) / math.log(args.train_length / args.min_length)
    return args.gate_penalty * min(1.0, max(0.0, grown))


def train(model: nn.Module, task: Any, args: argparse.Namespace) -> dict:
    gen = torch.Generator().manual_seed(1000 + args.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    low = args.min_length
    start, recent, step, cap = time.perf_counter(), [], 0, low
    tokens = skipped = 0
    since, doublings = 0, []
    for step in range(1, args.steps + 1):
        if not args.advance_at:
            cap = min(args.train_length, low * 2 ** (step // args.double_every))
        elif (
            cap < args.train_length
            and since >= args.double_every
            and len(recent) == 50
            and sum(recent) / 50 >= args.advance_at  # learned at this cap: go longer
        ):
            cap, since, recent = min(args.train_length, 2 * cap), 0, []
            doublings.append(step)
        since += 1
        # Mixed lengths: log-uniform in [low, cap], whole segments when longer than one.
        length = int(math.exp(torch.empty(1).uniform_(math.log(low), math.log(cap), generator=gen)))
        if length > args.segment:
            length = args.segment * round(length / args.segment)
        ids, labels = draw(task, args.batch, length, gen)
        state, prefix = None, ids.shape[1] - min(args.segment, ids.shape[1])
        if prefix:
            with torch.no_grad():
                _, state = stream(model, ids[:, :prefix], args.segment)
        tokens += ids.numel()
        optimizer.zero_grad()
        try:
            with recording_gates(model) as gates:
                logits, _ = model(ids[:, prefix:], detach(state))
            loss = F.cross_entropy(logits, labels)
            if args.gate_penalty and gates:
                # Sparsity of writing and forgetting: only what the loss needs is stored.
                use = torch.stack([g["theta"].mean() + g["alpha"].mean() for g in gates])
                loss = loss + penalty_weight(args, cap) * use.mean()
            loss.backward()
        except NonFiniteSurpriseError:
            skipped += 1  # the inner loop overflowed on this batch: no step, counted
            continue
        if not math.isfinite(float(nn.utils.clip_grad_norm_(model.parameters(), 1.0))):
            skipped += 1
            continue
        optimizer.step()
        recent = (recent + [float((logits.argmax(-1) == labels).float().mean())])[-50:]
        if step % 50 == 0:
            print(f"step {step} cap {cap}: loss {loss.item():.3f}, "
                  f"recent {sum(recent) / max(1, len(recent)):.3f}", flush=True)  # fmt: skip
    trained = {
        "steps": step,
        "seconds": round(time.perf_counter() - start, 1),
        "recent_accuracy": sum(recent) / max(1, len(recent)),
        "tokens": tokens,
        "skipped": skipped,
    }
    if args.advance_at:
        trained.update(doublings=doublings, final_cap=cap)
    return trained


@torch.inference_mode()
def evaluate(model: nn.Module, task: Any, length: int, args: argparse.Namespace) -> dict:
    """Accuracy over ``args.samples`` fresh sequences of ``length`` tokens (DNA: the anchor
    ``length`` bases before the partner), streamed in pieces."""
    gen = torch.Generator().manual_seed(7_000_000 + length)  # the same test set for every model
    distance = None
    if task.name == "dna_pair":
        distance, length = length, length + 3 * DNAPair.motif_length + 64
    correct, start = 0, time.perf_counter()
    for first in range(0, args.samples, args.eval_batch):
        n = min(args.eval_batch, args.samples - first)
        ids, labels = draw(task, n, length, gen, distance)
        logits, _ = stream(model, ids, PIECE)
        correct += int((logits.argmax(-1) == labels).sum())
    seconds = time.perf_counter() - start
    speed = round(args.samples * length / seconds)
    return {"accuracy": correct / args.samples, "tokens_per_s": speed}


@torch.inference_mode()
def stability(model: Reader, task: Any, length: int, piece: int = 1000) -> float:
    """Relative difference between the final hidden states ``[B, D]`` of a float32 stream in
    pieces of ``piece`` tokens (not a multiple of the chunk or segment, so the pieces end
    mid-chunk) and of one call over ``length`` tokens."""
    ids, _ = draw(task, 4, length, torch.Generator().manual_seed(99))
    whole, _ = model.hidden(ids)
    state, last = None, None
    for start in range(0, length, piece):
        last, state = model.hidden(ids[:, start : start + piece], state)
    assert last is not None
    a, b = whole[:, -1], last[:, -1]
    return float((a - b).norm() / b.norm())


@torch.inference_mode()
def precision_drift(model: Reader, task: Any, length: int) -> float:
    """The largest relative difference, over every position of 4 sequences of ``length``
    tokens, between the hidden states ``[B, T, D]`` of one float32 call and one float64 call of
    the same model: how much the trained memory's recurrence amplifies float32 rounding (a
    contractive or bounded one keeps it near 1e-6; a chaotic one turns it into O(1))."""
    ids, _ = draw(task, 4, length, torch.Generator().manual_seed(99))
    single, _ = model.hidden(ids)
    double, _ = copy.deepcopy(model).double().hidden(ids)
    difference = (single.double() - double).norm(dim=-1) / double.norm(dim=-1)
    return float(difference.max())


@torch.inference_mode()
def gate_use(model: nn.Module, task: Any, length: int) -> dict[str, float] | None:
    """The share of (token, head) pairs whose step size and forget rate are nonzero, over 8
    test sequences of ``length`` tokens, all memory layers together (Titans bodies only)."""
    with recording_gates(model) as seen:
        ids, _ = draw(task, 8, length, torch.Generator().manual_seed(5))
        stream(model, ids, PIECE)
    if not seen:
        return None
    theta = torch.cat([g["theta"].flatten() for g in seen])
    alpha = torch.cat([g["alpha"].flatten() for g in seen])
    return {
        "writes": float((theta > 0).float().mean()),
        "forgets": float((alpha > 0).float().mean()),
    }


def key(args: argparse.Namespace) -> str:
    model = args.model
    if args.model in ("lmm", "mac", "lmm-no-momentum", "lmm-no-forgetting"):
        block = f", {args.mac_form} block" if args.model == "mac" else ""
        linear = ", linear memory" if args.architecture == "linear" else ""
        penalty = f", gate penalty {args.gate_penalty:g}" if args.gate_penalty else ""
        penalty += " ramped" if args.gate_penalty and args.penalty_ramp else ""
        channel = f", channel gates rank {args.channel_gates}" if args.channel_gates else ""
        persistent = f", {args.persistent} persistent tokens" if args.persistent else ""
        eps = f", LayerNorm eps {args.ln_eps:g}" if args.ln_eps != DEFAULT_LN_EPS else ""
        model += f" ({args.gates} gates{linear}{eps}{channel}{persistent}{penalty}{block})"
    # Runs of another budget are another row, never seeds of one.
    curriculum = f", cap doubles at {args.advance_at:g} accuracy" if args.advance_at else ""
    model += f" [{args.steps} steps{curriculum}]"
    return f"{args.task}|{model}|seed{args.seed}"


def schedule(args: argparse.Namespace, trained: dict) -> str:
    """How the length cap grew, for the budget line."""
    if not args.advance_at:
        return f"cap doubling every {args.double_every} steps"
    grew = (
        f"reached {args.train_length:,} at step {trained['doublings'][-1]}"
        if trained["final_cap"] >= args.train_length
        else f"never reached {args.train_length:,}: cap {trained['final_cap']:,} at the end"
    )
    return (
        f"cap doubling once the last 50 steps' training accuracy reached {args.advance_at:g}, "
        f"at least {args.double_every} steps apart; {grew}"
    )


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def render(store: dict[str, dict]) -> str:
    """The Markdown table of every run in the store: one section per task, a row per model."""
    lines = [
        "# Long context: does the memory really remember?",
        "",
        "Generated by `benchmarks/bench_long_context.py` from `long_context.json`; every cell is "
        "the test accuracy, mean ± std over the training seeds (n in the row, or in the cell "
        "where fewer seeds were evaluated at that length), on the same fresh "
        "test sequences for every model, streamed in pieces of 4,096 tokens with the state "
        "carried. Lengths are tokens (DNA: the distance in bases between the last anchor and the "
        "partner). '-' = not run.",
        "",
    ]
    tasks: dict[str, dict[str, list[dict]]] = {}
    for name, entry in sorted(store.items()):
        task, model, _ = name.split("|")
        tasks.setdefault(task, {}).setdefault(model, []).append(entry)
    for task, models in tasks.items():
        any_entry = next(iter(models.values()))[0]
        lengths = sorted({int(n) for runs in models.values() for r in runs for n in r["accuracy"]})
        note = f"Chance {any_entry['chance']:.3f}. {any_entry['task_note']}"
        lines += [f"## {task}", "", note, ""]
        lines.append("| model | n | " + " | ".join(f"{n:,}" for n in lengths) + " |")
        lines.append("| --- | ---: |" + " ---: |" * len(lengths))
        for model, runs in sorted(models.items()):
            cells = []
            for n in lengths:
                values = [r["accuracy"][str(n)] for r in runs if str(n) in r["accuracy"]]
                seeds = f" (n={len(values)})" if 0 < len(values) < len(runs) else ""
                cells.append(_mean_std(values) + seeds if values else "-")
            lines.append(f"| {model} | {len(runs)} | " + " | ".join(cells) + " |")
        lines += ["", "Budgets and runs:", ""]
        for model, runs in sorted(models.items()):
            for r in sorted(runs, key=lambda r: r["seed"]):
                extra = ""
                if r.get("stability") is not None:
                    extra = f"; float32 stream vs one call at {r['stability_length']:,}: " \
                            f"{r['stability']:.1e} relative"  # fmt: skip
                if r.get("precision_max") is not None:
                    extra += f"; float32 vs float64, largest over positions: " \
                             f"{r['precision_max']:.1e} relative"  # fmt: skip
                if r.get("gates"):
                    extra += (
                        f"; at the training length {r['gates']['writes']:.2%} of (token, head) "
                        f"pairs write and {r['gates']['forgets']:.2%} forget"
                    )
                lines.append(f"- {model}, seed {r['seed']}: {r['budget']}{extra}")
        lines.append("")
    machines = sorted({r["machine"] for r in store.values()})
    lines += ["Machines: " + "; ".join(machines), ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line; ``build_parser().parse_args([...])`` also gives a notebook its
    settings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="passkey_random")
    parser.add_argument("--model", choices=MODELS, default="lmm")
    parser.add_argument("--gates", choices=["sparse", "sigmoid"], default="sparse")
    parser.add_argument("--architecture", choices=["mlp", "linear"], default="mlp")
    parser.add_argument(
        "--gate-penalty", type=float, default=0.0,
        help="weight of the mean step size and forget rate added to the loss (sparsity)",
    )  # fmt: skip
    parser.add_argument(
        "--penalty-ramp", action="store_true",
        help="grow the gate penalty with the length cap, on a log scale, from 0 at "
        "--min-length to --gate-penalty at --train-length",
    )  # fmt: skip
    parser.add_argument("--mac-form", choices=["paper", "residual"], default="paper")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--reach", type=int, default=512)
    parser.add_argument("--train-length", type=int, default=4096)
    parser.add_argument("--min-length", type=int, default=64)
    parser.add_argument("--segment", type=int, default=512)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--double-every", type=int, default=60)
    parser.add_argument(
        "--advance-at", type=float, default=0.0,
        help="double the length cap once the last 50 steps' training accuracy reaches this "
        "(and at least --double-every steps after the last doubling) instead of on a fixed "
        "schedule (0: fixed)",
    )  # fmt: skip
    parser.add_argument(
        "--ln-eps", type=float, default=DEFAULT_LN_EPS,
        help="epsilon of the MLP memory's LayerNorm (large: the gain 1/sigma stays bounded)",
    )  # fmt: skip
    parser.add_argument(
        "--channel-gates", type=int, default=0,
        help="rank of the channel-wise step sizes (0: one step size per head)",
    )  # fmt: skip
    parser.add_argument(
        "--persistent", type=int, default=0,
        help="learned tokens every memory layer reads before the sequence (a multiple of the "
        "memory's chunk size, 16)",
    )  # fmt: skip
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--lengths", type=int, nargs="+", default=[4096, 65536, 1048576])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--eval-batch", type=int, default=64)
    parser.add_argument("--stability", type=int, default=0, help="tokens (0: skip)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "long_context.md")
    parser.add_argument(
        "--models", type=Path, default=Path("/tmp/long_context_models"),
        help="where trained models are kept: a run whose model is there only evaluates, and "
        "adds its lengths to the stored entry",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    store = args.out.with_suffix(".json")
    before = json.loads(store.read_text()).get(key(args), {}) if store.exists() else {}
    stable = not args.stability or (
        before.get("stability_length") == args.stability and before.get("precision_max") is not None
    )
    if stable and all(str(n) in before.get("accuracy", {}) for n in args.lengths):
        print(f"{key(args)}: already in {store.name} with everything asked; skipped")
        return 0
    task = TASKS[args.task]()
    model: nn.Module = (
        WindowedCNN(task, args.dim, args.reach) if args.model == "cnn" else Reader(task, args)
    )
    params = sum(p.numel() for p in model.parameters())
    print(f"{key(args)}: {params:,} parameters", flush=True)
    saved = args.models / (key(args).replace("|", "_").replace(" ", "") + ".pt")
    if saved.exists():
        checkpoint = torch.load(saved)
        model.load_state_dict(checkpoint["model"])
        trained = checkpoint["trained"]
    else:
        trained = train(model, task, args)
        saved.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model": model.state_dict(), "trained": trained}, saved)
    model.eval()
    if before.get("trained") != trained:
        before = {}  # another training run: start the entry afresh
    accuracy, speed = dict(before.get("accuracy", {})), dict(before.get("tokens_per_s", {}))
    for length in args.lengths:
        if str(length) in accuracy:
            continue  # measured for this training run already
        result = evaluate(model, task, length, args)
        accuracy[str(length)], speed[str(length)] = result["accuracy"], result["tokens_per_s"]
        print(f"length {length:,}: accuracy {result['accuracy']:.3f} "
              f"({result['tokens_per_s']:,} tokens/s)", flush=True)  # fmt: skip
    drift = stability(model, task, args.stability) if args.stability else before.get("stability")
    precision = (
        precision_drift(model, task, args.stability)
        if args.stability
        else before.get("precision_max")
    )
    args.stability = args.stability or before.get("stability_length", 0)
    if drift is not None:
        print(f"float32 stream vs one call at {args.stability:,}: {drift:.2e}", flush=True)
    if precision is not None:
        print(f"float32 vs float64 at {args.stability:,}, largest over positions: "
              f"{precision:.2e}", flush=True)  # fmt: skip
    gates = gate_use(model, task, args.train_length)
    if gates is not None:
        print(f"gates: {gates['writes']:.1%} of token-heads write, {gates['forgets']:.1%} forget")
    reach = getattr(model, "reach", None) or getattr(getattr(model, "body", None), "reach", None)
    budget = (
        f"{params:,} parameters (dim {args.dim}, depth {args.depth}"
        + (f", reach {reach}" if reach else "")
        + f"); {trained['steps']} steps of {args.batch} sequences, mixed lengths "
        f"{args.min_length} to {args.train_length} ({schedule(args, trained)}), gradients on "
        f"the last {args.segment} tokens, AdamW lr {args.lr}"
        + (f", gate penalty {args.gate_penalty:g}" if args.gate_penalty else "")
        + (" (ramped with the log length cap)" if args.gate_penalty and args.penalty_ramp else "")
        + "; "
        f"{trained['tokens']:,} training tokens in {trained['seconds']:.0f} s; final recent "
        f"training accuracy {trained['recent_accuracy']:.2f}; "
        f"{trained.get('skipped', 0)} steps skipped (non-finite); {args.samples} test sequences "
        "per length"
    )
    entry = {
        "seed": args.seed,
        "trained": trained,
        "accuracy": accuracy,
        "tokens_per_s": speed,
        "chance": task.chance,
        "task_note": TASK_NOTES[args.task],
        "budget": budget,
        "stability": drift,
        "precision_max": precision,
        "gates": gates,
        "stability_length": args.stability,
        "machine": describe(args.threads),
        "date": f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    save({key(args): entry}, args.out.with_suffix(".json"), args.out, render)
    return 0


TASK_NOTES = {
    "passkey_random": "Passkey (KEY, digit) hidden at a uniform depth in uniformly random filler "
    "(16 tokens); QUERY at the end; answer: the digit.",
    "passkey_repeated": "Passkey hidden in a repeated filler (the 16 filler tokens in a fixed "
    "cycle from a random phase); answer: the digit.",
    "facts": "BABILong-style: 6 facts 'ACTOR MOVED PLACE' (8 actors, 8 places) at random "
    "positions in random filler, then 'WHERE ACTOR'; answer: the asked actor's last place "
    "(distractors: other actors and its own earlier moves).",
    "dna_pair": "Two anchor and two partner 12-mers (absent from the background) planted in "
    "real DNA (the bundled human_enhancers_cohn sequences end to end): a decoy anchor, then "
    "the last anchor at the given distance before the partner that ends the window; answer: "
    "whether the last anchor matches the partner.",
}


if __name__ == "__main__":
    raise SystemExit(main())
