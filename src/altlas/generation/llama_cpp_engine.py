"""Text generation through llama.cpp (llama-cpp-python), for GGUF files as they are: quantised
weights stay quantised, so a model takes a fraction of the memory the transformers path needs.

Optional: used when the registry names backend `llama-cpp` and llama-cpp-python is installed
(built with CUDA it offloads every layer to the GPU; otherwise it runs on the CPU). It speaks the
same interface as `TextGenerator` (chat_ids, text_ids, stream, complete, warmup), so the
endpoints do not know which engine answers.
"""

from __future__ import annotations

import codecs
import threading
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any, cast

from altlas.errors import InvalidInputError
from altlas.generation.engine import Completion, StopScanner, TokenEvent, answer_budget, collect, last_event
from altlas.generation.sampling import MIN_DIVISOR, SamplingParams

__all__ = ["LlamaCppGenerator"]


class LlamaCppGenerator:
    def __init__(self, path: Path, *, gpu: bool, max_context: int | None = None) -> None:
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError:
            raise InvalidInputError(
                "the llama-cpp backend needs llama-cpp-python (pip install llama-cpp-python)", field="backend"
            ) from None
        if path.suffix.lower() != ".gguf":
            raise InvalidInputError(f"{path.name}: the llama-cpp backend reads .gguf files", field="source")
        self.llm = Llama(
            model_path=str(path),
            n_ctx=max_context or 2048,
            n_gpu_layers=-1 if gpu else 0,
            verbose=False,
            seed=0,
        )
        self.max_context = int(self.llm.n_ctx())
        metadata = self.llm.metadata
        template = metadata.get("tokenizer.chat_template")
        vocab = self._vocab_piece
        self.formatter = (
            Jinja2ChatFormatter(
                template, eos_token=vocab(self.llm.token_eos()), bos_token=vocab(self.llm.token_bos())
            )
            if template
            else None
        )
        self.eos_ids = frozenset({int(self.llm.token_eos())})
        self.decode_path = "llama.cpp " + ("(GPU offload)" if gpu else "(CPU)")
        self.completion_tokens = 0
        self.lock = threading.Lock()

    def _vocab_piece(self, token: int) -> str:
        return str(self.llm.detokenize([token], special=True).decode("utf-8", errors="replace"))

    def chat_ids(self, messages: Sequence[dict[str, str]]) -> list[int]:
        if self.formatter is None:
            raise InvalidInputError("this model has no chat template; use completions", field="messages")
        prompt = self.formatter(messages=cast(Any, list(messages))).prompt
        return self.text_ids(prompt, special=True)

    def text_ids(self, prompt: str, special: bool = False) -> list[int]:
        return [int(t) for t in self.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=special)]

    def stream(
        self, ids: Sequence[int], params: SamplingParams, field: str = "prompt"
    ) -> Generator[TokenEvent, None, None]:
        return self._stream(list(ids), params, answer_budget(ids, params, self.max_context, field))

    def _stream(
        self, ids: list[int], params: SamplingParams, budget: int
    ) -> Generator[TokenEvent, None, None]:
        started = time.perf_counter()
        first_token_at = 0.0
        if params.seed is not None:
            self.llm.set_seed(params.seed)
        text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopScanner(params.stop)
        generated: list[int] = []
        finish = "length"
        tokens = self.llm.generate(
            ids, top_k=params.top_k if params.top_k > 0 else 0, top_p=params.top_p,
            # llama.cpp divides by both: the sampler's floor (altlas.generation.sampling) applies here too
            temp=params.temperature and max(params.temperature, MIN_DIVISOR),
            repeat_penalty=max(params.repetition_penalty, MIN_DIVISOR), reset=True,
        )  # fmt: skip
        for token in tokens:
            first_token_at = first_token_at or time.perf_counter()
            if token in self.eos_ids:
                finish = "stop"
                break
            generated.append(int(token))
            self.completion_tokens += 1
            emit, stopped = stops.feed(text.decode(self.llm.detokenize([token])))
            if emit:
                yield TokenEvent(emit)
            if stopped:
                finish = "stop"
                break
            if len(generated) >= budget:
                break
        if not stops.stopped:
            rest = stops.flush() + text.decode(b"", final=True)
            if rest:
                yield TokenEvent(rest)
        yield last_event(finish, generated, started, first_token_at)

    def complete(self, ids: Sequence[int], params: SamplingParams) -> Completion:
        return collect(self.stream(ids, params), len(ids))

    def warmup(self, prompts: Sequence[str]) -> None:
        for prompt in prompts or ["Hello"]:
            ids = (
                self.chat_ids([{"role": "user", "content": prompt}])
                if self.formatter
                else self.text_ids(prompt)
            )
            self.complete(ids, SamplingParams(max_tokens=4, temperature=0.0))
