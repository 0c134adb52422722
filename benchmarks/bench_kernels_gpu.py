"""GPU benchmark: titans_sci's memory kernels against titans-pytorch, flash-linear-attention, SDPA.

This is a benchmark, not a test. In one run on one CUDA GPU it

1. checks the Triton kernels of the linear Titans memory against the chunked PyTorch path at full
   size (B x T = ``--tokens`` at T = 2048, 8 heads of 64, chunk 64): reads, final state and the
   gradients of q, k, v, the gates and the initial weights, as max relative error
   ``max|a - b| / max|b|``. The reference is fp32 with TF32 off. Columns: fp32 inputs (the
   kernels then use IEEE fp32 products) and bf16 q, k, v (TF32 products, fp32 gates and state);
   then, for the linear and the MLP memory, a forward past ``B x H x T x D = 2**31`` (9 heads at
   T = 4M), whose last head must match the same head run alone (int64 offsets);
2. times one sequence-mixing layer, forward (no autograd graph) and forward + backward (a fixed
   random cotangent on the output), at B x T = ``--tokens`` for each T of ``--seq-lens``: median
   of CUDA-event timed steps after warm-up, tokens/s, and peak ``torch.cuda.max_memory_allocated``
   over the timed steps (inputs included);
3. prints markdown tables and writes them to ``benchmarks/results/kernels_gpu.md`` (``--out``),
   rewritten after every row so that a run cut short still leaves its rows.

Run from the repository root (titans_sci need not be installed; the script finds it)::

    python benchmarks/bench_kernels_gpu.py            # T = 2048, 8192, 32768
    python benchmarks/bench_kernels_gpu.py --quick    # T = 2048, fewer reps

The peers are optional: ``pip install titans-pytorch fla-core``. A missing peer (or
``--skip-peers``) becomes a row that says so. Without CUDA the script exits with code 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gc
import importlib.util
import math
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_memory_cpu import (
    CHUNK,
    DEPTH,
    DIM,
    EXPANSION,
    HEAD_DIM,
    HEADS,
    PEER_MAX_LR,
    ProjectedMemory,
    make_peer,
    package_version,
)
from machine import cpu_model
from torch import Tensor, nn

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "kernels_gpu.md"
CHECK_SEQ_LEN = 2048
MIN_REPS = 3
# Tolerances of the correctness table, on max|a - b| / max|b|. IEEE fp32: both sides accumulate in
# fp32 in a different order (the interpreter tests see ~3e-7). TF32 rounds the kernel's matmul
# inputs to 10 mantissa bits. bf16 rounds q, k, v against the fp32 reference's unrounded values;
# the MLP memory's LayerNorms amplify that rounding (a CPU dry run at T=128 saw up to 4e-2).
TOLERANCES = {"ieee": 1e-4, "tf32": 1e-2, "bf16": 3e-2, "mlp bf16": 1e-1}

Step = Callable[[], object]


_START = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _START:7.1f}s] {message}", flush=True)


def short(error: BaseException) -> str:
    """One line, at most 200 characters, for a table cell."""
    text = f"{type(error).__name__}: {error}".splitlines()[0].replace("|", "/")
    return text if len(text) <= 200 else text[:197] + "..."


def ensure_titans_sci_importable() -> None:
    """Import titans_sci from this checkout when it is not installed. The kernels live in the
    top-level ``kernels/`` folder, which only an install maps to ``titans_sci.kernels``
    (``pyproject.toml``), so a bare checkout gets that mapping here."""
    if importlib.util.find_spec("titans_sci") is not None:
        return
    sys.path.insert(0, str(REPO_ROOT))
    import titans_sci

    folder = REPO_ROOT / "kernels"
    spec = importlib.util.spec_from_file_location(
        "titans_sci.kernels", folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    kernels = importlib.util.module_from_spec(spec)
    sys.modules["titans_sci.kernels"] = kernels
    titans_sci.kernels = kernels
    spec.loader.exec_module(kernels)


# ----------------------------------------------------------------------------- inputs


def memory_config(architecture: str, backend: str = "auto"):
    from titans_sci.memory import MemoryConfig

    extra = {"architecture": "linear"} if architecture == "linear" else {}
    return MemoryConfig.preset(
        "titans", num_heads=HEADS, head_dim=HEAD_DIM, chunk_size=CHUNK, backend=backend, **extra
    )


def memory_inputs(batch: int, seq_len: int, seed: int) -> dict[str, Tensor]:
    """fp32 CUDA inputs of the memory core: ``q, k, v: [B, H, T, D]`` (q, k l2-normalised) and
    gates ``[B, H, T]``: theta ~ 0.1 U, eta ~ U, alpha ~ 0.01 U."""
    gen = torch.Generator(device="cuda").manual_seed(seed)
    shape = (batch, HEADS, seq_len, HEAD_DIM)

    def randn(*size: int) -> Tensor:
        return torch.randn(size, device="cuda", generator=gen)

    def rand(*size: int) -> Tensor:
        return torch.rand(size, device="cuda", generator=gen)

    return {
        "q": F.normalize(randn(*shape), dim=-1),
        "k": F.normalize(randn(*shape), dim=-1),
        "v": randn(*shape),
        "theta": 0.1 * rand(batch, HEADS, seq_len),
        "eta": rand(batch, HEADS, seq_len),
        "alpha": 0.01 * rand(batch, HEADS, seq_len),
    }


def leaves_of(data: dict[str, Tensor], qkv_dtype: torch.dtype) -> dict[str, Tensor]:
    """Fresh leaf copies that require grad: q, k, v in ``qkv_dtype``, gates in fp32."""
    return {
        name: x.to(
            qkv_dtype if name in ("q", "k", "v") else torch.float32, copy=True
        ).requires_grad_()
        for name, x in data.items()
    }


def core_function(backend: str):
    """The chunked memory implementation behind ``MemoryConfig.backend``."""
    if backend == "triton":
        from titans_sci.kernels import triton_chunked

        return triton_chunked
    from titans_sci.memory import chunked

    return chunked


# ----------------------------------------------------------------------------- correctness

CHECK_NAMES = (
    "y",
    "final W",
    "final S",
    "grad q",
    "grad k",
    "grad v",
    "grad theta",
    "grad eta",
    "grad alpha",
    "grad initial W",
)


def run_core_check(
    memory: nn.Module, backend: str, data: dict[str, Tensor], dtype: torch.dtype, seed: int
) -> dict[str, Tensor]:
    """Reads, final state and gradients of ``<y, dy> + <W, dW> + <S, dS>`` (random cotangents;
    for the MLP memory W and S are its first layer's)."""
    from titans_sci.memory import Gates

    leaves = leaves_of(data, dtype)
    batch = data["q"].shape[0]
    state = memory.initial_state(batch)  # fp32, from the learned initial weights
    gates = Gates(theta=leaves["theta"], eta=leaves["eta"], alpha=leaves["alpha"], delta=None)
    y, final = core_function(backend)(
        memory.rule, leaves["q"], leaves["k"], leaves["v"], gates, state
    )
    assert final.momentum is not None
    w, s = final.weights[0], final.momentum[0]
    gen = torch.Generator(device="cuda").manual_seed(seed)
    dy, dw, ds = (torch.randn(x.shape, device="cuda", generator=gen) for x in (y, w, s))
    loss = (y.float() * dy).sum() + (w.float() * dw).sum() + (s.float() * ds).sum()
    order = ["q", "k", "v", "theta", "eta", "alpha"]
    grads = torch.autograd.grad(loss, [leaves[n] for n in order] + [memory.initial_weights[0]])
    values = [y, w, s, *grads]
    return {name: x.detach().float() for name, x in zip(CHECK_NAMES, values, strict=True)}


def max_relative_errors(got: dict[str, Tensor], ref: dict[str, Tensor]) -> dict[str, float]:
    return {
        name: float((got[name] - ref[name]).abs().max() / ref[name].abs().max().clamp_min(1e-30))
        for name in CHECK_NAMES
    }


def correctness(
    tokens: int, with_bf16: bool, architecture: str = "linear"
) -> dict[str, dict[str, float] | str]:
    """Columns of max relative errors (or an error line) against the fp32 chunked PyTorch path."""
    from titans_sci.memory import NeuralMemory

    batch = tokens // CHECK_SEQ_LEN
    torch.manual_seed(0)
    memory = NeuralMemory(memory_config(architecture, backend="triton")).cuda()
    data = memory_inputs(batch, CHECK_SEQ_LEN, seed=1)
    columns: dict[str, dict[str, float] | str] = {}
    fp32_label = f"{architecture} fp32, kernel dots ieee"
    try:
        ref = run_core_check(memory, "torch", data, torch.float32, seed=2)
    except Exception as error:  # reported in the table
        traceback.print_exc()
        return {fp32_label: f"reference failed: {short(error)}"}
    cases = [(fp32_label, torch.float32)]
    if with_bf16:
        cases.append((f"{architecture} bf16 q,k,v, kernel dots tf32", torch.bfloat16))
    for label, dtype in cases:
        try:
            got = run_core_check(memory, "triton", data, dtype, seed=2)
            columns[label] = max_relative_errors(got, ref)
            del got
        except Exception as error:  # reported in the table
            traceback.print_exc()
            columns[label] = f"failed: {short(error)}"
        column = columns[label]
        shown = (
            column
            if isinstance(column, str)
            else ", ".join(f"{n}={e:.1e}" for n, e in column.items())
        )
        log(f"check {label}: {shown}")
    del ref, data, memory
    free_memory()
    return columns


OFFSET_HEADS, OFFSET_SEQ_LEN = 9, 2**22  # B x H x T x D = 9 * 2**28 > 2**31 at 64 per head


def offsets_check(
    architecture: str, heads: int = OFFSET_HEADS, seq_len: int = OFFSET_SEQ_LEN, device="cuda"
) -> str:
    """The kernels past ``B x H x T x D = 2**31`` (forward, no autograd, bf16 q, k, v): the last
    head's reads and final weights in a run of ``heads`` heads (whose offsets pass int32) against
    the same head run alone (whose offsets fit), as the larger max relative error; identical
    programs give 0. Returns a table cell."""
    from titans_sci.kernels import triton_chunked

    from titans_sci.memory import Gates, MemoryConfig, NeuralMemory

    extra = {"architecture": "linear"} if architecture == "linear" else {}
    config = MemoryConfig.preset(
        "titans", num_heads=heads, head_dim=HEAD_DIM, chunk_size=CHUNK, backend="triton", **extra
    )
    try:
        with torch.no_grad():
            memory = NeuralMemory(config).to(device)
            gen = torch.Generator(device=device).manual_seed(4)
            shape = (1, heads, seq_len, HEAD_DIM)
            q, k = (
                F.normalize(torch.randn(shape, device=device, generator=gen), dim=-1).bfloat16()
                for _ in range(2)
            )
            v = torch.randn(shape, device=device, generator=gen).bfloat16()
            u = torch.rand(3, 1, heads, seq_len, device=device, generator=gen)
            gates = Gates(theta=0.1 * u[0], eta=u[1], alpha=0.01 * u[2], delta=None)
            y, final = triton_chunked(memory.rule, q, k, v, gates, memory.initial_state(1))
            y_last, w_last = y[:, -1:].float(), final.weights[0][:, -1:].float()
            del y, final
            alone = Gates(
                theta=gates.theta[:, -1:], eta=u[1][:, -1:], alpha=gates.alpha[:, -1:], delta=None
            )
            state = memory.initial_state(1)
            state = type(state)(
                tuple(w[:, -1:] for w in state.weights),
                None if state.momentum is None else tuple(m[:, -1:] for m in state.momentum),
            )
            rule = NeuralMemory(config.replace(num_heads=1)).to(device).rule
            y_one, final_one = triton_chunked(rule, q[:, -1:], k[:, -1:], v[:, -1:], alone, state)
            errors = [
                float((a - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-30))
                for a, b in ((y_last, y_one), (w_last, final_one.weights[0]))
            ]
    except torch.cuda.OutOfMemoryError:
        return "OOM"
    except Exception as error:  # reported in the table
        traceback.print_exc()
        return f"failed: {short(error)}"
    finally:
        if device == "cuda":
            free_memory()
    size = heads * seq_len * HEAD_DIM
    return (
        f"B x H x T x D = {size:,} ({size / 2**31:.2f} x 2**31): max rel. error {max(errors):.1e}"
    )


# ----------------------------------------------------------------------------- workloads


@dataclass
class Workload:
    """One layer on fixed inputs: ``forward`` without an autograd graph, ``train`` forward and
    backward of a fixed random cotangent on the output."""

    forward: Step
    train: Step


def make_workload(run: Callable[[], Tensor], leaves: list[Tensor]) -> Workload:
    cotangent: list[Tensor] = []

    def forward() -> None:
        with torch.no_grad():
            run()

    def train() -> None:
        for t in leaves:
            t.grad = None
        y = run()
        if not cotangent:
            cotangent.append(torch.randn_like(y))
        y.backward(cotangent[0])

    return Workload(forward, train)


def ours_core(
    architecture: str, backend: str, dtype: torch.dtype
) -> Callable[[int, int], Workload]:
    """titans_sci's memory core on ``[B, H, T, D]`` inputs (no projections, no input checks)."""

    def build(batch: int, seq_len: int) -> Workload:
        from titans_sci.memory import Gates, NeuralMemory

        memory = NeuralMemory(memory_config(architecture, backend)).cuda()
        x = leaves_of(memory_inputs(batch, seq_len, seed=3), dtype)
        gates = Gates(theta=x["theta"], eta=x["eta"], alpha=x["alpha"], delta=None)
        fn = core_function(backend)

        def run() -> Tensor:
            state = memory.initial_state(batch)
            y, _ = fn(memory.rule, x["q"], x["k"], x["v"], gates, state)
            return y

        return make_workload(run, [*x.values(), *memory.parameters()])

    return build


def ours_module(batch: int, seq_len: int) -> Workload:
    """titans_sci's ``NeuralMemory`` module (linear, backend triton) on ``[B, T, H, D]`` inputs:
    its input checks and layout transposes included."""
    from titans_sci.memory import NeuralMemory

    memory = NeuralMemory(memory_config("linear", backend="triton")).cuda()
    x = {
        name: t.transpose(1, 2).contiguous().requires_grad_()
        for name, t in memory_inputs(batch, seq_len, seed=3).items()
    }

    def run() -> Tensor:
        y, _ = memory(x["q"], x["k"], x["v"], theta=x["theta"], eta=x["eta"], alpha=x["alpha"])
        return y

    return make_workload(run, [*x.values(), *memory.parameters()])


def ours_projected(backend: str) -> Callable[[int, int], Workload]:
    """The MLP memory behind bench_memory_cpu's minimal projections: x [B, T, 512] -> [B, T, 512],
    like titans-pytorch's module."""

    def build(batch: int, seq_len: int) -> Workload:
        from titans_sci.memory import NeuralMemory

        model = ProjectedMemory(NeuralMemory(memory_config("mlp", backend))).cuda()
        x = torch.randn(batch, seq_len, DIM, device="cuda", requires_grad=True)
        return make_workload(lambda: model(x), [x, *model.parameters()])

    return build


def titans_pytorch(depth: int, batch_size: int | None) -> Callable[[int, int], Workload]:
    """titans-pytorch's ``NeuralMemory`` as in bench_memory_cpu (its projections, norms and gates
    included), fp32; ``depth`` 1 is a linear memory."""

    def build(batch: int, seq_len: int) -> Workload:
        model = make_peer(depth, batch_size).cuda()
        x = torch.randn(batch, seq_len, DIM, device="cuda", requires_grad=True)
        return make_workload(lambda: model(x)[0], [x, *model.parameters()])

    return build


def fla_inputs(batch: int, seq_len: int) -> dict[str, Tensor]:
    """bf16 ``[B, T, H, D]`` inputs for flash-linear-attention; q, k l2-normalised."""
    shape = (batch, seq_len, HEADS, HEAD_DIM)
    q = F.normalize(torch.randn(shape, device="cuda"), dim=-1)
    k = F.normalize(torch.randn(shape, device="cuda"), dim=-1)
    v = torch.randn(shape, device="cuda")
    return {name: t.bfloat16().requires_grad_() for name, t in (("q", q), ("k", k), ("v", v))}


def fla_gated_delta_rule(batch: int, seq_len: int) -> Workload:
    from fla.ops.gated_delta_rule import chunk_gated_delta_rule

    x = fla_inputs(batch, seq_len)
    u = torch.rand(batch, seq_len, HEADS, device="cuda")
    g = torch.log1p(-0.01 * u).requires_grad_()  # log forget gate, fp32 [B, T, H]
    beta = torch.rand(batch, seq_len, HEADS, device="cuda").bfloat16().requires_grad_()

    def run() -> Tensor:
        o, _ = chunk_gated_delta_rule(x["q"], x["k"], x["v"], g, beta, output_final_state=False)
        return o

    return make_workload(run, [*x.values(), g, beta])


def fla_ttt_linear(batch: int, seq_len: int) -> Workload:
    from fla.ops.ttt import chunk_ttt_linear

    x = fla_inputs(batch, seq_len)
    w = torch.ones(HEADS, HEAD_DIM, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    b = torch.zeros(HEADS, HEAD_DIM, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    eta = (0.01 * torch.rand(batch, seq_len, HEADS, 1, device="cuda")).bfloat16()
    eta.requires_grad_()

    def run() -> Tensor:
        o, _, _ = chunk_ttt_linear(x["q"], x["k"], x["v"], w, b, eta, output_final_state=False)
        return o

    return make_workload(run, [*x.values(), w, b, eta])


def sdpa_causal(batch: int, seq_len: int) -> Workload:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    shape = (batch, HEADS, seq_len, HEAD_DIM)
    q, k, v = (
        torch.randn(shape, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        for _ in range(3)
    )

    def run() -> Tensor:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    return make_workload(run, [q, k, v])


# ----------------------------------------------------------------------------- timing


@dataclass
class Timing:
    ms: list[float]
    peak_gib: float
    first_s: float

    @property
    def median_ms(self) -> float:
        return statistics.median(self.ms)


@dataclass
class Spec:
    """One layer of the table; ``skip`` says why it does not run."""

    key: str
    name: str
    dtype: str
    build: Callable[[int, int], Workload]
    skip: str = ""


@dataclass
class Result:
    spec: Spec
    seq_len: int
    batch: int
    fwd: Timing | None = None
    train: Timing | None = None
    notes: dict[str, str] = field(default_factory=dict)  # "fwd"/"train" -> why no timing


def free_memory() -> None:
    gc.collect()
    torch.cuda.empty_cache()


def measure(step: Step, warmup: int, reps: int, budget_s: float) -> Timing:
    """Warm-up calls (the first compiles and autotunes; one only if it took over ``budget_s``),
    then up to ``reps`` CUDA-event timed calls, stopping after ``budget_s`` once ``MIN_REPS`` ran.
    Peak memory is over the timed calls."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    torch.cuda.synchronize()
    first_s = time.perf_counter() - start
    for _ in range(warmup - 1 if first_s < budget_s else 0):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times: list[float] = []
    began = time.perf_counter()
    for _ in range(reps):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        step()
        end.record()
        end.synchronize()
        times.append(begin.elapsed_time(end))
        if len(times) >= MIN_REPS and time.perf_counter() - began > budget_s:
            break
    return Timing(times, torch.cuda.max_memory_allocated() / 2**30, first_s)


def timed(step: Step, args: argparse.Namespace) -> tuple[Timing | None, str]:
    try:
        return measure(step, args.warmup, args.reps, args.row_budget), ""
    except torch.cuda.OutOfMemoryError:
        return None, "OOM"
    except Exception as error:  # a failing row is reported, not fatal
        traceback.print_exc()
        return None, f"failed: {short(error)}"
    finally:
        free_memory()


def run_row(spec: Spec, seq_len: int, args: argparse.Namespace) -> Result:
    batch = args.tokens // seq_len
    result = Result(spec, seq_len, batch)
    if spec.skip:
        result.notes = {"fwd": spec.skip, "train": spec.skip}
        return result
    workload: Workload | None = None
    try:
        workload = spec.build(batch, seq_len)
    except torch.cuda.OutOfMemoryError:
        result.notes = {"fwd": "OOM (inputs)", "train": "OOM (inputs)"}
    except Exception as error:  # a failing row is reported, not fatal
        traceback.print_exc()
        result.notes = {"fwd": f"failed: {short(error)}", "train": f"failed: {short(error)}"}
    if workload is not None:
        result.fwd, note = timed(workload.forward, args)
        if note:
            result.notes["fwd"] = note
        result.train, note = timed(workload.train, args)
        if note:
            result.notes["train"] = note
    del workload
    free_memory()
    return result


# ----------------------------------------------------------------------------- report


def mtok_s(tokens: int, timing: Timing | None) -> float | None:
    return None if timing is None else tokens / (timing.median_ms / 1e3) / 1e6


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def status(note: str) -> str:
    """A short word for a summary cell from a row's note."""
    for word in ("OOM", "not installed", "skipped", "failed"):
        if note.startswith(word):
            return word
    return "-"


def correctness_table(columns: dict[str, dict[str, float] | str]) -> list[str]:
    if not columns:
        return ["(correctness check not run)"]
    labels = list(columns)

    def tolerance(label: str) -> float:
        if "bf16" in label:
            return TOLERANCES["mlp bf16" if label.startswith("mlp") else "bf16"]
        return TOLERANCES["ieee"] if label.endswith("ieee") else TOLERANCES["tf32"]

    lines = [
        "| tensor | " + " | ".join(labels) + " |",
        "| --- |" + " ---: |" * len(labels),
    ]
    for name in CHECK_NAMES:
        cells = []
        for label in labels:
            column = columns[label]
            if isinstance(column, str):
                cells.append(column if name == CHECK_NAMES[0] else "")
                continue
            err = column[name]
            flag = "" if err <= tolerance(label) else " **over tol**"
            cells.append(f"{err:.1e}{flag}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    tols = ", ".join(f"{label}: {tolerance(label):.0e}" for label in labels)
    lines += ["", f"Tolerances (max relative error): {tols}."]
    return lines


def timing_table(results: list[Result], tokens: int) -> list[str]:
    lines = [
        "| layer | dtype | T | B | fwd ms | fwd Mtok/s | fwd+bwd ms | fwd+bwd Mtok/s "
        "| peak GiB fwd / fwd+bwd | reps | 1st call s | note |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        f, t = r.fwd, r.train
        notes = "; ".join(f"{mode}: {note}" for mode, note in r.notes.items() if note)
        if r.notes.get("fwd") and r.notes.get("fwd") == r.notes.get("train"):
            notes = r.notes["fwd"]
        reps = f"{len(f.ms) if f else 0} / {len(t.ms) if t else 0}"
        first = f"{fmt(f.first_s if f else None, 1)} / {fmt(t.first_s if t else None, 1)}"
        peak = f"{fmt(f.peak_gib if f else None)} / {fmt(t.peak_gib if t else None)}"
        lines.append(
            f"| {r.spec.name} | {r.spec.dtype} | {r.seq_len} | {r.batch} "
            f"| {fmt(f.median_ms if f else None, 3)} | {fmt(mtok_s(tokens, f))} "
            f"| {fmt(t.median_ms if t else None, 3)} | {fmt(mtok_s(tokens, t))} "
            f"| {peak} | {reps} | {first} | {notes} |"
        )
    return lines


def summary_table(results: list[Result], tokens: int, seq_lens: list[int]) -> list[str]:
    """Anchor-style: one line per layer, fwd+bwd (fwd) Mtok/s per T."""
    by_key: dict[str, dict[int, Result]] = {}
    for r in results:
        by_key.setdefault(r.spec.key, {})[r.seq_len] = r
    head = " | ".join(f"T={t}" for t in seq_lens)
    lines = [
        f"| layer | dtype | {head} |",
        "| --- | --- |" + " ---: |" * len(seq_lens),
    ]
    for rows in by_key.values():
        spec = next(iter(rows.values())).spec
        cells = []
        for t in seq_lens:
            r = rows.get(t)
            if r is None:
                cells.append("")
                continue
            train, fwd = mtok_s(tokens, r.train), mtok_s(tokens, r.fwd)
            if train is None and fwd is None:
                cells.append(status(r.notes.get("train", "")))
            else:
                cells.append(f"{fmt(train)} ({fmt(fwd)})")
        lines.append(f"| {spec.name} | {spec.dtype} | " + " | ".join(cells) + " |")
    return lines


RATIOS = [
    ("ours linear Triton bf16 / fla gated delta rule", "ours-linear-triton-bf16", "fla-gdr"),
    ("ours linear Triton bf16 / fla TTT-linear", "ours-linear-triton-bf16", "fla-ttt"),
    ("ours linear Triton fp32 / titans-pytorch linear", "ours-linear-triton-fp32", "tp-linear"),
    ("ours MLP core (Triton) / titans-pytorch MLP", "ours-mlp-triton-fp32", "tp-mlp"),
    ("ours MLP Triton bf16 / fla gated delta rule", "ours-mlp-triton-bf16", "fla-gdr"),
    ("ours MLP + projections (Triton) / titans-pytorch MLP", "ours-mlp-projected-triton", "tp-mlp"),
    ("ours MLP core (PyTorch) / titans-pytorch MLP", "ours-mlp-torch", "tp-mlp"),
]


def ratio_table(results: list[Result], seq_lens: list[int]) -> list[str]:
    """Speed ratios (> 1: ours faster), fwd+bwd and fwd."""
    found = {(r.spec.key, r.seq_len): r for r in results}

    def ratio(a: Timing | None, b: Timing | None) -> str:
        return "-" if a is None or b is None else f"{b.median_ms / a.median_ms:.2f}x"

    head = " | ".join(f"T={t}" for t in seq_lens)
    lines = [f"| ratio, fwd+bwd (fwd) | {head} |", "| --- |" + " ---: |" * len(seq_lens)]
    for label, ours, peer in RATIOS:
        cells = []
        for t in seq_lens:
            a, b = found.get((ours, t)), found.get((peer, t))
            if a is None or b is None:
                cells.append("")
            else:
                cells.append(f"{ratio(a.train, b.train)} ({ratio(a.fwd, b.fwd)})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


@functools.cache
def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return head + (" + uncommitted changes" if dirty else "")


def header(args: argparse.Namespace) -> list[str]:
    import triton

    props = torch.cuda.get_device_properties(0)
    fla_version = package_version("fla-core")
    if fla_version == "not installed":
        fla_version = package_version("flash-linear-attention")
    return [
        f"# Memory layers on one GPU: {torch.cuda.get_device_name()}",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- GPU: {torch.cuda.get_device_name()}, {props.multi_processor_count} SMs, "
        f"{props.total_memory / 2**30:.0f} GiB; host CPU: {cpu_model()}",
        f"- torch {torch.__version__} (CUDA {torch.version.cuda}), triton {triton.__version__}, "
        f"fla-core {fla_version}, titans-pytorch {package_version('titans-pytorch')}, "
        f"python {platform.python_version()}; titans_sci commit {git_commit()}",
        f"- one layer, B x T = {args.tokens:,} tokens per step, {HEADS} heads x {HEAD_DIM}, "
        f"chunk {CHUNK}; MLP memories depth {DEPTH}, expansion {EXPANSION}; titans-pytorch "
        f"batch_size {args.titans_batch_size or 'None'}, max_lr {PEER_MAX_LR}",
        "- precision: torch fp32 matmuls with TF32 off "
        "(`torch.backends.cuda.matmul.allow_tf32 = False`); our Triton kernels take IEEE fp32 "
        "products for fp32 inputs and TF32 products for bf16 q, k, v (converted to fp32 on "
        "load; gates and state fp32)",
        f"- timing: CUDA events, median of up to {args.reps} steps (at least {MIN_REPS}, "
        f"stopping after {args.row_budget:g} s) after {args.warmup} warm-up step(s); "
        "fwd runs under `torch.no_grad()`, fwd+bwd back-propagates a fixed random cotangent "
        "of the output to every input and parameter; peak memory = "
        "`torch.cuda.max_memory_allocated` over the timed steps, inputs included",
    ]


NOTES = [
    "Notes",
    "- `ours ... core` rows call titans_sci's chunked memory function on `[B, H, T, D]` inputs "
    "(no projections, no input checks), with learned initial weights; the module row runs "
    "`NeuralMemory` on `[B, T, H, D]` (its input checks and transposes included).",
    "- titans-pytorch rows run its whole `NeuralMemory` on x: [B, T, 512] (its projections, "
    "norms and gates included); `ours MLP + projections` is the like-for-like row "
    "(bench_memory_cpu's `ProjectedMemory`). With `batch_size` set titans-pytorch commits its "
    "memory every `batch_size` tokens, as the paper does; the anchors' rows used `None`.",
    "- flash-linear-attention rows: bf16, `[B, T, H, D]`, q and k l2-normalised, no initial "
    "state; `chunk_ttt_linear` at its default chunk size 16. On Hopper with Triton in "
    "[3.4, 3.7.1) fla refuses the gated delta rule backward (a wrong-result Triton bug); that "
    "shows as a failed fwd+bwd cell.",
    "- SDPA: `F.scaled_dot_product_attention(is_causal=True)` under "
    "`sdpa_kernel(SDPBackend.FLASH_ATTENTION)`, bf16 `[B, H, T, D]`.",
]


def render(
    args: argparse.Namespace,
    checks: dict[str, dict[str, float] | str],
    results: list[Result],
    seq_lens: list[int],
    offsets: dict[str, str],
) -> str:
    lines = [
        *header(args),
        "",
        f"## Correctness: Triton kernels vs chunked PyTorch (fp32, TF32 off), T={CHECK_SEQ_LEN}, "
        f"B={args.tokens // CHECK_SEQ_LEN}",
        "",
        "Max relative error max|a - b| / max|b| of the Titans memory, linear and MLP (chunk 64; "
        "for the MLP, W and S are its first layer's).",
        "",
        *correctness_table(checks),
        "",
        "## Offsets past 2**31",
        "",
        f"Forward (no autograd), bf16 q, k, v, B = 1, H = {OFFSET_HEADS}, T = {OFFSET_SEQ_LEN:,}: "
        "the last head's reads and final weights against the same head run alone (whose "
        "offsets fit in int32); 0 means the same result.",
        "",
        *([f"- {arch}: {cell}" for arch, cell in offsets.items()] or ["(not run)"]),
        "",
        "## Speed: fwd+bwd Mtok/s (fwd Mtok/s)",
        "",
        *summary_table(results, args.tokens, seq_lens),
        "",
        "## Ratios (> 1: ours faster)",
        "",
        *ratio_table(results, seq_lens),
        "",
        "## All rows",
        "",
        *timing_table(results, args.tokens),
        "",
        *NOTES,
    ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main


def specs(args: argparse.Namespace) -> list[Spec]:
    tp_batch = args.titans_batch_size or None
    peers_off = "skipped (--skip-peers)" if args.skip_peers else ""

    def missing(module: str, pip_name: str) -> str:
        if peers_off:
            return peers_off
        if importlib.util.find_spec(module) is None:
            return f"not installed (`pip install {pip_name}`)"
        return ""

    fla_skip = missing("fla", "fla-core")
    tp_skip = missing("titans_pytorch", "titans-pytorch")
    tp_cfg = f"batch_size {tp_batch}"
    return [
        Spec(
            "ours-linear-triton-bf16",
            "ours linear memory, Triton kernels (core)",
            "bf16 q,k,v",
            ours_core("linear", "triton", torch.bfloat16),
        ),
        Spec(
            "ours-linear-triton-fp32",
            "ours linear memory, Triton kernels (core)",
            "fp32",
            ours_core("linear", "triton", torch.float32),
        ),
        Spec(
            "ours-linear-module",
            "ours linear memory, NeuralMemory module (backend=triton)",
            "fp32",
            ours_module,
        ),
        Spec("fla-gdr", "fla chunk_gated_delta_rule", "bf16", fla_gated_delta_rule, fla_skip),
        Spec("fla-ttt", "fla chunk_ttt_linear (chunk 16)", "bf16", fla_ttt_linear, fla_skip),
        Spec("sdpa", "torch SDPA causal (flash)", "bf16", sdpa_causal),
        Spec(
            "ours-linear-torch",
            "ours linear memory, chunked PyTorch (core)",
            "fp32",
            ours_core("linear", "torch", torch.float32),
        ),
        Spec(
            "ours-mlp-triton-bf16",
            "ours MLP memory depth 2, Triton kernels (core)",
            "bf16 q,k,v",
            ours_core("mlp", "triton", torch.bfloat16),
        ),
        Spec(
            "ours-mlp-triton-fp32",
            "ours MLP memory depth 2, Triton kernels (core)",
            "fp32",
            ours_core("mlp", "triton", torch.float32),
        ),
        Spec(
            "ours-mlp-torch",
            "ours MLP memory depth 2, chunked PyTorch (core)",
            "fp32",
            ours_core("mlp", "torch", torch.float32),
        ),
        Spec(
            "ours-mlp-projected-triton",
            "ours MLP memory depth 2 + projections, Triton kernels",
            "fp32",
            ours_projected("triton"),
        ),
        Spec(
            "ours-mlp-projected",
            "ours MLP memory depth 2 + projections, chunked PyTorch",
            "fp32",
            ours_projected("torch"),
        ),
        Spec(
            "tp-mlp",
            f"titans-pytorch NeuralMemory, MLP depth 2 ({tp_cfg})",
            "fp32",
            titans_pytorch(DEPTH, tp_batch),
            tp_skip,
        ),
        Spec(
            "tp-linear",
            f"titans-pytorch NeuralMemory, linear memory (MemoryMLP depth 1, {tp_cfg})",
            "fp32",
            titans_pytorch(1, tp_batch),
            tp_skip,
        ),
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seq-lens", type=int, nargs="+", default=[2048, 8192, 32768], help="values of T"
    )
    parser.add_argument("--tokens", type=int, default=65536, help="B x T per step (65536)")
    parser.add_argument("--reps", type=int, default=10, help="timed steps per row at most (10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (2)")
    parser.add_argument(
        "--row-budget", type=float, default=2.0, help="seconds of timed steps per row and mode"
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=360.0,
        help="skip the rows left after this many seconds (360)",
    )
    parser.add_argument(
        "--titans-batch-size", type=int, default=CHUNK, help="titans-pytorch batch_size; 0: None"
    )
    parser.add_argument("--skip-peers", action="store_true", help="no titans-pytorch, no fla")
    parser.add_argument("--skip-check", action="store_true", help="no correctness check")
    parser.add_argument("--quick", action="store_true", help="T=2048 only, 5 reps, 1 warm-up")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown output path")
    args = parser.parse_args(argv)
    if args.quick:
        args.seq_lens, args.reps, args.warmup, args.row_budget = [2048], 5, 1, 1.0
    for t in [*args.seq_lens, CHECK_SEQ_LEN]:
        if t % CHUNK or args.tokens % t:
            parser.error(f"T={t} must be a multiple of {CHUNK} and divide --tokens={args.tokens}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print(
            "bench_kernels_gpu: no CUDA device (torch.cuda.is_available() is False); "
            "run it on a machine with an NVIDIA GPU",
            file=sys.stderr,
        )
        return 2
    ensure_titans_sci_importable()
    torch.backends.cuda.matmul.allow_tf32 = False

    log(f"GPU {torch.cuda.get_device_name()}, torch {torch.__version__}")
    results: list[Result] = []
    checks: dict[str, dict[str, float] | str] = {}
    offsets: dict[str, str] = {}

    def write() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(render(args, checks, results, args.seq_lens, offsets))

    if not args.skip_check:
        log("correctness check (in process)")
        checks.update(correctness(args.tokens, with_bf16=True))
        write()
        log("correctness check of the MLP kernels")
        checks.update(correctness(args.tokens, with_bf16=True, architecture="mlp"))
        write()
        for architecture in ("linear", "mlp"):
            log(f"offsets past 2**31, {architecture} memory")
            offsets[architecture] = offsets_check(architecture)
            log(f"  {offsets[architecture]}")
            write()

    rows = specs(args)
    for seq_len in args.seq_lens:
        for spec in rows:
            if time.perf_counter() - _START > args.time_limit:
                skipped = Spec(spec.key, spec.name, spec.dtype, spec.build, "skipped: time limit")
                results.append(run_row(skipped, seq_len, args))
                continue
            log(f"T={seq_len} {spec.name} [{spec.dtype}]")
            result = run_row(spec, seq_len, args)
            results.append(result)
            log(
                f"  fwd {fmt(mtok_s(args.tokens, result.fwd))} Mtok/s, fwd+bwd "
                f"{fmt(mtok_s(args.tokens, result.train))} Mtok/s "
                f"{'; '.join(n for n in result.notes.values() if n)}"
            )
            write()

    table = render(args, checks, results, args.seq_lens, offsets)
    print(table, flush=True)
    write()
    log(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
