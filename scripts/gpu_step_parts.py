"""Where a batch-1 decode step's time goes (issue 17): the step's CUDA graph timed whole and
with parts left out, at several positions, on a GPU. The values are wrong when a part is left
out; only the time is looked at.

    python scripts/gpu_step_parts.py --shape smollm2-135m

Prints µs a step for: the step as the decoder runs it with `near_splits` 8 / 4 / 2 / 1 (1: one
attention program a head), without the greedy choice, without attention, without the LM head
and greedy choice, without each of a layer's products, and the products alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from gpu_families import PROMPT, SHAPES, build, cache_of

from altlas.generation import llama_decoder


class PartialDecoder(llama_decoder.LlamaDecoder):
    """The decoder's step with parts left out (attributes below)."""

    skip_attention = False
    skip: tuple[str, ...] = ()  # products left out
    tail = True  # the LM head and the greedy choice
    pick = True  # the greedy choice

    def _forward(self, split: bool) -> None:
        torch.index_select(self.embed, 0, self.token, out=self.x[None, :])
        for i, w in enumerate(self.weights):
            if "qkv" not in self.skip:
                self._product("qkv", w)
            combine = 0 if self.skip_attention else self._attend(i, w, split)
            if "out" not in self.skip:
                self._product("out", w, combine=combine)
            for kind in ("gate_up", "down"):
                if kind not in self.skip:
                    self._product(kind, w)
        if self.tail:
            self._product("head", {})
            if self.pick:
                self._choose_greedy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="smollm2-135m")
    parser.add_argument("--positions", type=int, nargs="+", default=[40, 160, 400])
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("needs a CUDA GPU", file=sys.stderr)
        return 2
    model = build(SHAPES[args.shape], torch.device("cuda"), torch.bfloat16, 0)
    decoder = PartialDecoder(model, 1024)
    prompt = torch.randint(0, model.config.vocab_size, (1, PROMPT), device="cuda")
    with torch.no_grad():
        out = model(input_ids=prompt, use_cache=True)
        decoder.load_prefill(cache_of(out), PROMPT)
        decoder.step(out.logits[0, -1].argmax(), PROMPT)  # chooses each product's way
    print(
        f"{args.shape} on {torch.cuda.get_device_name()}, torch {torch.__version__}; products "
        f"{ {kind: str(way) for kind, way in (decoder.products or {}).items()} }"
    )
    print("| step | " + " | ".join(f"µs at {p}" for p in args.positions) + " |")
    print("|---|" + "---:|" * len(args.positions))

    def row(label: str, **changes: Any) -> None:
        saved = {name: getattr(decoder, name) for name in changes}
        for name, value in changes.items():
            setattr(decoder, name, value)
        times = []
        for position in args.positions:
            decoder.position.fill_(position)
            times.append(llama_decoder.graph_time(lambda: decoder._forward(False), reps=10))
        print(f"| {label} | " + " | ".join(f"{t:.1f}" for t in times) + " |", flush=True)
        for name, value in saved.items():
            setattr(decoder, name, value)

    with torch.no_grad():
        for splits in (8, 4, 2, 1):
            row(f"near_splits {splits}", near_splits=splits)
        row("no greedy choice", pick=False)
        row("no attention", skip_attention=True)
        row("no LM head, no greedy choice", tail=False)
        for kind in ("qkv", "out", "gate_up", "down"):
            row(f"no {kind} product", skip=(kind,))
        row("products only", skip_attention=True, tail=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
