"""What API processes and engines say to each other: msgspec structs sent as MessagePack.

Each message is one frame, tagged with its type (a union decodes to the right struct) and laid
out as an array (no field names on the wire). Vectors travel beside their header as a second
frame of raw float32 bytes: never through MessagePack's per-number encoding. Every request
carries an `id` the client chose (unique per client), which its replies and a Cancel name.
An Embed, DetectSpeech or Classify has one reply (Vectors, Speech or Labels; or Failed); a
Generate a stream: Begun, then Tokens up to the one with a finish reason, or Failed at any point.
The collections' requests and Admin have one reply each, made on a worker thread of the engine.
Uploads (an audio file, an image) travel as the request's second frame, as they came.
"""

from __future__ import annotations

from typing import Any

import msgspec

from altlas.generation.params import SamplingParams

__all__ = [
    "REPLIES", "REQUESTS", "AddDocuments", "Admin", "Batched", "Begun", "Cancel", "Classify", "Collecting",
    "Dedupe", "DetectSpeech", "Done", "Embed", "Failed", "Generate", "Hits", "Indexes", "Labels",
    "ListIndexes", "OnThread", "RemoveDocuments", "Reply", "Request", "Result", "Search", "Served",
    "SimilarCommands", "Speech", "Stats", "Token", "Vectors", "encode",
]  # fmt: skip


class Embed(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """Embed `texts` with the embedding model `model` (loaded for it if it is not)."""

    id: int
    request_id: str  # the HTTP request's, for the engine's log lines
    model: str
    texts: list[str]
    normalize: bool = True  # unit vectors (False: as the model's pooling gives them)
    dimensions: int | None = None  # asked for: must be the model's (an error otherwise)
    field: str = "input"  # the texts' name in the caller's terms, for their errors


class Generate(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """Generate with the model `model` (loaded for it if it is not): a chat (`messages`: role and
    content pairs) or else a completion of `prompt`; `sampling` as asked, its max_tokens
    replaced by `max_tokens` or the default (altlas.orchestrator.generations.GenerationAsk);
    `timeout_s` bounds the wait for the model's turn (0: none)."""

    id: int
    request_id: str
    model: str
    sampling: SamplingParams
    timeout_s: float
    max_tokens: int | None = None
    messages: list[tuple[str, str]] | None = None
    prompt: str | None = None


class DetectSpeech(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """Speech segments in the audio file of the next frame (WAV, FLAC, OGG) with the voice
    activity model `model`, with altlas.orchestrator.backends.VadRequest's settings (the
    route's defaults are the only ones)."""

    id: int
    request_id: str
    model: str
    threshold: float
    min_speech_ms: float
    min_silence_ms: float
    pad_ms: float
    field: str = "file"  # the upload's name in the caller's terms, for its errors


class Classify(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """The `top_k` likeliest labels of the image in the next frame with the image model `model`."""

    id: int
    request_id: str
    model: str
    top_k: int
    field: str = "file"  # the upload's name in the caller's terms, for its errors


class Search(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """The `k` documents of collection `index` closest in meaning to each of `queries`; their
    embedding bounded by `timeout_s` (0: none)."""

    id: int
    request_id: str
    index: str
    queries: list[str]
    k: int
    timeout_s: float


class AddDocuments(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """Embed `documents` (id, text) with `model` and store them in collection `index` (made if
    new), their embedding bounded by `timeout_s` (0: none)."""

    id: int
    request_id: str
    index: str
    model: str
    documents: list[tuple[str, str]]
    timeout_s: float


class RemoveDocuments(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """Remove the documents `ids` from collection `index`."""

    id: int
    request_id: str
    index: str
    ids: list[str]


class ListIndexes(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """The collections."""

    id: int
    request_id: str


class Cancel(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """The client left or its time limit passed: work not yet gathered into a batch never runs."""

    id: int


class Served(msgspec.Struct, array_like=True, frozen=True):
    """How a batched request was served (altlas.scheduling.batcher.Served's facts) and the
    model's lease facts: what the answer's X-Altlas-* headers and cost object say."""

    run_ms: float
    queue_ms: float
    batch_size: int
    batch_requests: int
    device: str  # where the batch ran
    model_device: str  # the lease's: where the model lives
    gpu_bytes: int


class Vectors(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """An Embed's answer: `rows` x `dim` float32 values in the next frame, and what the texts
    cost."""

    id: int
    rows: int
    dim: int
    tokens: int
    served: Served


class Speech(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """A DetectSpeech's answer: the file's rate and duration (s), its speech segments (start,
    end, mean probability)."""

    id: int
    rate: int
    duration: float
    segments: list[tuple[float, float, float]]
    served: Served


class Labels(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """A Classify's answer: the image's size and its predictions (label, index, score), likeliest
    first."""

    id: int
    width: int
    height: int
    predictions: list[tuple[str, int, float]]
    served: Served


class Begun(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """A Generate under way (its prefill done): the prompt's tokens, the wait for the model, the
    time from the end of that wait to the first token, and the lease's facts."""

    id: int
    prompt_tokens: int
    queue_ms: float
    first_ms: float
    model_device: str
    gpu_bytes: int


class Token(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """A piece of a Generate's answer (altlas.generation.engine.TokenEvent's fields); the last
    one has a finish reason and the totals."""

    id: int
    text: str
    finish_reason: str | None = None
    completion_tokens: int = 0
    token_ids: tuple[int, ...] = ()
    prefill_ms: float = 0.0
    decode_ms: float = 0.0
    queue_ms: float = 0.0


class Hits(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """A Search's answer: the collection's model, each query's hits (id, text, score), closest
    first; `served`: the whole search's time, its embedding's wait, the queries as the batch."""

    id: int
    model: str
    results: list[list[tuple[str, str, float]]]
    served: Served


class Done(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """An AddDocuments' or RemoveDocuments' answer: how many were added or removed, and the
    collection's size after (AddDocuments; -1 for RemoveDocuments)."""

    id: int
    count: int
    size: int = -1


class Indexes(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """A ListIndexes' answer: each collection's name, embedding model and size."""

    id: int
    indexes: list[tuple[str, str, int]]


class Admin(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """An operation on the model registry (altlas.orchestrator.manager.ModelManager): `op` one of
    list, status, register (`spec`: the registration's body), load, unload, activate
    (`version`); `name` the model's."""

    id: int
    request_id: str
    op: str
    name: str = ""
    version: str = ""
    spec: str = ""  # register's body as JSON text: any JSON travels (MessagePack's ints stop at 64 bits)


class SimilarCommands(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """The `k` stored plans' commands closest in meaning to `command`
    (altlas.search.service.CommandSimilarity)."""

    id: int
    request_id: str
    command: str
    k: int


class Dedupe(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """The near-duplicate pairs and groups among `commands` (cosine >= `threshold`)."""

    id: int
    request_id: str
    commands: list[str]
    threshold: float


class Stats(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """The serving process's metrics of its models (Prometheus text format, as bytes)."""

    id: int
    request_id: str = ""


class Result(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """An Admin's, SimilarCommands', Dedupe's or Stats' answer: the (JSON-like) data the work made."""

    id: int
    payload: Any


class Failed(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """A request's error: altlas.errors.error_kind's name, built again on the other side."""

    id: int
    kind: str
    message: str
    field: str | None = None
    retry_after_s: float | None = None


Batched = Embed | DetectSpeech | Classify  # requests a model's batcher answers (altlas.engine.work)
Collecting = Search | AddDocuments | RemoveDocuments | ListIndexes  # the search collections' requests
OnThread = Collecting | Admin | SimilarCommands | Dedupe | Stats  # answered once, from a worker thread
Request = Embed | Generate | DetectSpeech | Classify | OnThread | Cancel
Reply = Vectors | Speech | Labels | Begun | Token | Hits | Done | Indexes | Result | Failed
REQUESTS = msgspec.msgpack.Decoder(Request)
REPLIES = msgspec.msgpack.Decoder(Reply)
encode = msgspec.msgpack.Encoder().encode
