"""Does warm-up work? For every model of the default registry: load it (warm-up included), then time
the first real request against the median of the next ones. The first should cost no more than the
others: compilation, allocator growth and graph capture belong to the load.

    python bench/first_request.py [--device auto|cpu|cuda] [--repeat 5] [--data-dir DIR]
                                  [--only NAME ...] [--source NAME=PATH ...]

--source points a model at another folder or file (e.g. a same-shape LLM where the real weights
cannot travel); --only measures some of the models.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from altlas.generation.sampling import SamplingParams
from altlas.orchestrator.manager import ModelManager
from altlas.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def requests(manager: ModelManager) -> dict[str, Callable[[], Any]]:
    """One realistic request per task, through a lease of the loaded models as the endpoints take."""
    photo = (ROOT / "tests" / "data" / "images" / "chelsea.jpg").read_bytes()

    def embed() -> Any:
        lease = manager.loaded.lease("all-minilm-l6-v2", "embedding")
        return lease.backend.embedder.encode(["Chrome'u aç ve hava durumunu ara", "take a screenshot"])  # type: ignore[attr-defined]

    def chat() -> Any:
        lease = manager.loaded.lease("smollm2-135m-instruct", "generation")
        engine = lease.backend.generator  # type: ignore[attr-defined]
        ids = engine.chat_ids([{"role": "user", "content": "What is the capital of France?"}])
        return engine.complete(ids, SamplingParams(max_tokens=16, temperature=0.0))

    def vad() -> Any:
        from altlas.audio.decode import decode_audio

        speech, rate = decode_audio((ROOT / "tests" / "data" / "audio" / "speech_en.wav").read_bytes())
        clip = np.concatenate([np.zeros(rate, np.float32), speech, np.zeros(rate, np.float32)])
        lease = manager.loaded.lease("silero-vad", "audio-vad")
        return lease.backend.detector.segments(clip, rate)  # type: ignore[attr-defined]

    def classify() -> Any:
        from altlas.vision.classifier import decode_image

        lease = manager.loaded.lease("efficientnet-lite0", "image-classification")
        return lease.backend.classifier.classify(decode_image(photo), 5)  # type: ignore[attr-defined]

    return {
        "all-minilm-l6-v2": embed,
        "smollm2-135m-instruct": chat,
        "silero-vad": vad,
        "efficientnet-lite0": classify,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, help="reuse a data dir (its converted-model cache)")
    parser.add_argument("--only", nargs="+", help="model names to measure (default: all)")
    parser.add_argument("--source", nargs="+", default=[], help="NAME=PATH: load NAME from PATH")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="altlas-first-request-"))
    manager = ModelManager.from_settings(Settings(data_dir=data_dir, device=args.device))
    for item in args.source:
        name, _, path = item.partition("=")
        spec = manager.registry.get(name)
        manager.register(replace(spec, versions={**spec.versions, "bench": path}))
        manager.activate(name, "bench")
    columns = ("load ms", "warm-up ms", "first ms", "steady ms", "first/steady")
    print(f"{'model':<24} {'device':<34} " + " ".join(f"{c:>12}" for c in columns))
    for name, request in requests(manager).items():
        if args.only and name not in args.only:
            continue
        status = manager.load(name)
        started = time.perf_counter()
        request()
        first = (time.perf_counter() - started) * 1e3
        steady = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            request()
            steady.append((time.perf_counter() - started) * 1e3)
        median = statistics.median(steady)
        print(f"{name:<24} {status['device']:<34} {status['load_ms']:>12.0f} {status['warmup_ms']:>12.0f} "
              f"{first:>12.1f} {median:>12.1f} {first / median:>11.2f}x")  # fmt: skip
        manager.unload(name)


if __name__ == "__main__":
    main()
