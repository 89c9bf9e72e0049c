"""An embedding engine behind a dynamic batcher, the way every embedding request reaches a model.

Concurrent requests share forward passes (altlas.scheduling.batcher); a request over the batch's
token budget runs in pieces (`TextPieces`) that take turns with the other requests, and a request
whose caller gives up (its future cancelled) drops its pieces not yet run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from altlas.embeddings.engine import Embedder, StagedRequests, TextPieces, TextRequest
from altlas.errors import InvalidInputError
from altlas.scheduling.batcher import BatchPolicy, DynamicBatcher

__all__ = ["TextBatcher", "text_batcher", "text_request"]

TextBatcher = DynamicBatcher[TextRequest, StagedRequests, np.ndarray]


def text_batcher(embedder: Embedder, name: str, policy: BatchPolicy, *, device: str = "") -> TextBatcher:
    """Requests of texts to `embedder`, batched by `policy`; each caller gets its texts' vectors
    (L2-normalised unless its request says otherwise). Texts are tokenized with their batch, on
    the batcher's thread."""
    max_length = embedder.tokenizer.max_length
    return DynamicBatcher(
        name,
        prepare=embedder.stage_requests,
        run=embedder.run_requests,
        cost=lambda request: request.estimated_tokens(max_length),
        policy=policy,
        size=lambda request: len(request.texts),
        device=device,
        pieces=TextPieces(max_length),
    )


def text_request(texts: Sequence[str], field: str, normalize: bool = True) -> TextRequest:
    """A request of these texts (for L2-normalised vectors, unless `normalize` is False); a text
    the tokenizer cannot take (not valid Unicode) is refused here, naming `field`, so that it
    never fails the batch of other requests it would join."""
    texts = texts if isinstance(texts, list) else list(texts)
    try:
        "".join(texts).encode("utf-8")  # one call for all: this may run on the event loop
    except UnicodeEncodeError:
        for i, text in enumerate(texts):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidInputError(
                    "is not valid Unicode (it holds a lone surrogate)", field=f"{field}[{i}]"
                ) from None
    return TextRequest(texts, normalize)
