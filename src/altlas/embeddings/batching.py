"""Tokenize texts and plan GPU batches by a token budget.

Texts are tokenized by the Rust fast tokenizer in parallel (the call releases the
GIL), sorted by length, and cut into batches whose padded size (sequences x
longest) stays under `batch_tokens`. Sorting keeps padding small; a batch whose
sequences all have one length needs no attention mask at all.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

__all__ = ["Batch", "TextTokenizer", "TokenizerPool", "plan_batches"]

# Up to this many texts are encoded one by one. A batch call hands even one text to rayon's
# pool and releases the GIL while it waits; on a busy server (one request = one sentence)
# getting the GIL back cost more than the text, and the released GIL let the batcher's threads
# run smaller batches. Measured under load: -15..30% server CPU per request.
_ONE_BY_ONE = 4


@dataclass(frozen=True, slots=True)
class Batch:
    """Sequences of one batch: their positions in the input, token ids padded with 0, lengths."""

    positions: np.ndarray  # [B] int64: where each row's text sits in the input
    ids: np.ndarray  # [B, S] int32, padded with pad_id
    lengths: np.ndarray  # [B] int32
    uniform: bool  # all sequences have length S: no attention mask needed

    @property
    def real_tokens(self) -> int:
        return int(self.lengths.sum())

    @property
    def padded_tokens(self) -> int:
        return int(self.ids.size)


class TextTokenizer:
    """The model's fast tokenizer, set to truncate like sentence-transformers and never pad."""

    def __init__(self, tokenizer_file: Path, max_length: int) -> None:
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length)
        self.max_length = max_length
        self._fast = hasattr(self._tokenizer, "encode_batch_fast")  # no offsets: about twice as fast

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of every text, flattened, and the length of each: (ids [T] int32, lengths [N] int32)."""
        texts = list(texts)
        if not texts:
            return np.zeros(0, np.int32), np.zeros(0, np.int32)
        if len(texts) <= _ONE_BY_ONE:
            rows = [self._tokenizer.encode(text, add_special_tokens=True).ids for text in texts]
        else:
            encode = self._tokenizer.encode_batch_fast if self._fast else self._tokenizer.encode_batch
            rows = [e.ids for e in encode(texts, add_special_tokens=True)]
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int32, count=len(rows))
        flat = np.fromiter((i for r in rows for i in r), dtype=np.int32, count=int(lengths.sum()))
        return flat, lengths


class TokenizerPool:
    """Tokenizer worker processes for large inputs.

    One Rust call is parallel already, but turning its results into arrays is Python
    work that holds the GIL; spread over processes, each doing both for its slice,
    it stops being the wall. Workers are spawned (never forked: the parent may hold a
    CUDA context) and import only this module, not torch.
    """

    def __init__(self, tokenizer_file: Path, max_length: int, workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.workers = workers
        self._pool = context.Pool(
            workers, initializer=_init_worker, initargs=(str(tokenizer_file), max_length)
        )

    def imap(self, slices: Iterator[list[str]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(flat ids, lengths) per slice, in order."""
        return self._pool.imap(_tokenize_in_worker, slices)

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()


_worker_tokenizer: TextTokenizer | None = None


def _init_worker(tokenizer_file: str, max_length: int) -> None:
    from altlas.runtime.process import configure_tokenizer_worker

    configure_tokenizer_worker()
    global _worker_tokenizer
    _worker_tokenizer = TextTokenizer(Path(tokenizer_file), max_length)


def _tokenize_in_worker(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    assert _worker_tokenizer is not None, "worker not initialised"
    return _worker_tokenizer(texts)


def plan_batches(
    flat_ids: np.ndarray, lengths: np.ndarray, batch_tokens: int, *, first_position: int = 0
) -> Iterator[Batch]:
    """Batches over sequences sorted by length, each with at most `batch_tokens` padded tokens."""
    if lengths.size == 0:
        return
    starts = np.zeros(lengths.size, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    order = np.argsort(lengths, kind="stable")
    i = 0
    while i < order.size:
        longest = int(lengths[order[i]])
        # Sorted ascending, so the batch's longest is its last: grow while the padded size fits.
        count = max(1, batch_tokens // max(longest, 1))
        j = min(order.size, i + count)
        while j > i + 1 and int(lengths[order[j - 1]]) * (j - i) > batch_tokens:
            j -= 1
        rows = order[i:j]
        row_lengths = lengths[rows]
        width = int(row_lengths.max())
        ids = np.zeros((rows.size, width), dtype=np.int32)
        columns = np.arange(width)
        valid = columns[None, :] < row_lengths[:, None]
        ids[valid] = flat_ids[(starts[rows][:, None] + columns[None, :])[valid]]
        yield Batch(
            rows.astype(np.int64) + first_position, ids, row_lengths, bool(row_lengths.min() == width)
        )
        i = j
