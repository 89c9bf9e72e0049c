"""What one dependent step costs on this GPU: a chain of kernels launched as programmatic
dependents (PDL) against the phases of one persistent kernel with a grid-wide barrier.

Each step every program reads the whole vector the step before wrote (576 fp32 values: SmolLM2's
hidden size), sums it and writes its share of the next one; 300 steps a CUDA graph, timed over
5 replays. This is the floor under a batch-1 decode step, which chains five such steps a layer
(issue 17: why SmolLM2-135M's step is bound by synchronisation, not by bandwidth). The barrier is
also checked: after 7 phases the vector equals the same chain computed by torch.

    python bench/dependent_steps.py        # on a CUDA GPU (Hopper on for PDL)
"""

from __future__ import annotations

import sys

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

SIZE = 576
BLOCK = 1024
STEPS = 300


@triton.jit  # type: ignore[untyped-decorator]
def chain_kernel(src, dst, SIZE: tl.constexpr, BLOCK: tl.constexpr, PDL: tl.constexpr):  # type: ignore[no-untyped-def]
    """One step as a kernel of its own: program p writes dst[p] (and every num_programs-th after)."""
    if PDL:
        gdc_launch_dependents()
        gdc_wait()
    offs = tl.arange(0, BLOCK)
    total = tl.sum(tl.load(src + offs, mask=offs < SIZE, other=0.0), axis=0) * 1e-3 + 1.0
    for at in range(tl.program_id(0), SIZE, tl.num_programs(0)):
        tl.store(dst + at, total)


@triton.jit  # type: ignore[untyped-decorator]
def grid_barrier(counter, target):  # type: ignore[no-untyped-def]
    """Every program's writes before it visible to every program after it: arrive (release),
    then poll (acquire) until all `target` arrivals are counted."""
    tl.debug_barrier()
    tl.atomic_add(counter, 1, sem="release", scope="gpu")
    seen = tl.atomic_add(counter, 0, sem="acquire", scope="gpu")
    while seen < target:
        seen = tl.atomic_add(counter, 0, sem="acquire", scope="gpu")
    tl.debug_barrier()


@triton.jit  # type: ignore[untyped-decorator]
def persistent_kernel(buf, counter, steps, SIZE: tl.constexpr, BLOCK: tl.constexpr):  # type: ignore[no-untyped-def]
    """`steps` steps in one launch, a grid-wide barrier after each (buf: two vectors in turn)."""
    programs = tl.num_programs(0)
    offs = tl.arange(0, BLOCK)
    for step in range(steps):
        src = buf + (step % 2) * BLOCK
        dst = buf + ((step + 1) % 2) * BLOCK
        total = tl.sum(tl.load(src + offs, mask=offs < SIZE, other=0.0, volatile=True), axis=0) * 1e-3 + 1.0
        for at in range(tl.program_id(0), SIZE, programs):
            tl.store(dst + at, total)
        grid_barrier(counter, (step + 1) * programs)


def graph_us(run: object, reps: int = 5) -> float:
    """µs per call of run() captured once in a CUDA graph and replayed `reps` times."""
    stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        run()  # type: ignore[operator]  # compile
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        run()  # type: ignore[operator]
    graph.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    start.record()
    for _ in range(reps):
        graph.replay()
    end.record()
    torch.cuda.synchronize()
    return float(start.elapsed_time(end)) * 1e3 / reps


def barrier_check(programs: int) -> float:
    """Largest difference between 7 persistent phases and torch's chain."""
    buf = torch.zeros(2 * BLOCK, device="cuda")
    counter = torch.zeros(1, dtype=torch.int32, device="cuda")
    persistent_kernel[(programs,)](buf, counter, 7, SIZE=SIZE, BLOCK=BLOCK, launch_cooperative_grid=True)
    want = torch.zeros(SIZE, device="cuda")
    for _ in range(7):
        want = torch.full_like(want, float(want.sum()) * 1e-3 + 1.0)
    return float((buf[BLOCK : BLOCK + SIZE] - want).abs().max())


def main() -> int:
    if not torch.cuda.is_available():
        print("needs a CUDA GPU", file=sys.stderr)
        return 2
    props = torch.cuda.get_device_properties(0)
    pdl = torch.cuda.get_device_capability(0)[0] >= 9
    versions = f"torch {torch.__version__}, triton {triton.__version__}"
    print(f"{props.name}, {props.multi_processor_count} SMs, {versions}")
    vectors = [torch.zeros(BLOCK, device="cuda") for _ in range(2)]
    rows = []
    for programs in (props.multi_processor_count, 72):
        for with_pdl in (True, False) if pdl else (False,):

            def chain(programs: int = programs, with_pdl: bool = with_pdl) -> None:
                for step in range(STEPS):
                    chain_kernel[(programs,)](
                        vectors[step % 2], vectors[(step + 1) % 2], SIZE=SIZE, BLOCK=BLOCK, PDL=with_pdl,
                        launch_pdl=with_pdl,
                    )  # fmt: skip

            rows.append(
                (f"kernel a step, {'PDL' if with_pdl else 'no PDL'}", programs, graph_us(chain) / STEPS)
            )
    buf = torch.zeros(2 * BLOCK, device="cuda")
    counter = torch.zeros(1, dtype=torch.int32, device="cuda")
    for programs in (props.multi_processor_count, props.multi_processor_count // 2, 32):

        def persistent(programs: int = programs) -> None:
            counter.zero_()
            persistent_kernel[(programs,)](
                buf, counter, STEPS, SIZE=SIZE, BLOCK=BLOCK, launch_cooperative_grid=True
            )

        rows.append(("one kernel, grid barrier a step", programs, graph_us(persistent) / STEPS))
    print("\n| way | programs | us a step |\n|---|---:|---:|")
    for way, programs, micros in rows:
        print(f"| {way} | {programs} | {micros:.2f} |")
    error = barrier_check(props.multi_processor_count)
    print(f"\nbarrier check (7 phases vs torch): largest difference {error:.2e}")
    return 0 if error < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
