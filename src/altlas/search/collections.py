"""Named collections of texts, searchable by meaning: the vector indexes behind POST /v1/search.

A collection holds documents (id, text), their vectors from one embedding model, and a
`VectorIndex` (exact cosine top-k; the fused GPU kernels when the vectors live on CUDA). It
is kept on disk under `<data dir>/collections/<name>/` (the index as .npz, the texts and the
model's name as JSON, both written atomically) and loaded back at start. Adding a document
with an id that exists replaces it. Embedding is the caller's: a function from texts to
unit vectors, so this module knows nothing of models or HTTP.

A collection whose files cannot be read at start stops it with DamagedStoreError, naming the
file and what to do; the files are left as they are (a collection skipped instead would be
overwritten by the next document added under its name).
"""

from __future__ import annotations

import json
import re
import threading
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from altlas.errors import InvalidInputError, NotFoundError
from altlas.search.index import VectorIndex
from altlas.storage.atomic import write_atomically, write_file_atomically
from altlas.storage.damage import DamagedStoreError

__all__ = ["Collections", "Document", "Hit"]

Embed = Callable[[Sequence[str]], np.ndarray]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Document:
    id: str
    text: str


@dataclass(frozen=True)
class Hit:
    id: str
    text: str
    score: float


class _Collection:
    def __init__(self, model: str, dim: int, device: str) -> None:
        self.model = model
        self.index = VectorIndex(dim, metric="cosine", device=device)
        self.texts: dict[str, str] = {}
        self.lock = threading.Lock()  # writers; searches read the index's snapshot


class Collections:
    def __init__(self, root: Path, device: str = "cpu") -> None:
        self.root = root
        self.device = device
        self._collections: dict[str, _Collection] = {}
        self._lock = threading.Lock()
        for folder in sorted(root.glob("*/")) if root.exists() else []:
            if (folder / "collection.json").exists():
                self._collections[folder.name] = self._read(folder)

    def names(self) -> list[dict[str, object]]:
        with self._lock:
            items = list(self._collections.items())
        return [{"name": n, "model": c.model, "documents": len(c.index)} for n, c in items]

    def add(self, name: str, documents: Sequence[Document], model: str, embed: Embed) -> int:
        """Embed and store the documents; returns the collection's size."""
        if not _NAME.fullmatch(name):
            raise InvalidInputError("must be 1-64 letters, digits, '.', '_' or '-'", field="name")
        if not documents:
            raise InvalidInputError("must hold at least one document", field="documents")
        ids = [d.id for d in documents]
        if len(set(ids)) != len(ids):
            raise InvalidInputError("ids must be unique within a request", field="documents")
        vectors = embed([d.text for d in documents])
        with self._lock:
            collection = self._collections.get(name)
            if collection is None:
                collection = self._collections[name] = _Collection(model, vectors.shape[1], self.device)
        if collection.model != model:
            raise InvalidInputError(
                f"collection {name!r} holds vectors of {collection.model!r}, not {model!r}", field="model"
            )
        with collection.lock:
            collection.index.remove([i for i in ids if i in collection.texts])
            collection.index.add(ids, vectors)
            collection.texts.update({d.id: d.text for d in documents})
            self._write(name, collection)
            return len(collection.index)

    def remove(self, name: str, ids: Sequence[str]) -> int:
        collection = self._get(name)
        with collection.lock:
            removed = collection.index.remove(list(ids))
            for i in ids:
                collection.texts.pop(i, None)
            self._write(name, collection)
        return removed

    def search(self, name: str, queries: Sequence[str], k: int, embed: Embed) -> list[list[Hit]]:
        collection = self._get(name)
        if not 1 <= k <= 1024:
            raise InvalidInputError(f"must be 1 to 1024, got {k}", field="k")
        vectors = embed(list(queries))
        results = collection.index.search(vectors, k)
        texts = collection.texts
        return [[Hit(h.id, texts.get(h.id, ""), round(h.score, 6)) for h in hits] for hits in results]

    def model_of(self, name: str) -> str:
        return self._get(name).model

    def _get(self, name: str) -> _Collection:
        with self._lock:
            collection = self._collections.get(name)
        if collection is None:
            raise NotFoundError(f"no collection named {name!r}", field="index")
        return collection

    def _write(self, name: str, collection: _Collection) -> None:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        write_file_atomically(folder / "vectors.npz", collection.index.save)
        meta = {"model": collection.model, "texts": collection.texts}
        write_atomically(folder / "collection.json", json.dumps(meta, ensure_ascii=False))

    def _read(self, folder: Path) -> _Collection:
        """The collection kept in `folder`, or DamagedStoreError naming the file that fails."""
        path = folder / "collection.json"
        try:
            meta = json.loads(path.read_bytes())
            model, texts = meta["model"], dict(meta["texts"])
            if not isinstance(model, str) or not all(isinstance(t, str) for t in texts.values()):
                raise ValueError("model and texts must be strings")
            path = folder / "vectors.npz"
            if not zipfile.is_zipfile(path):  # np.load leaves the file open on a bad archive
                raise ValueError("not an .npz archive")
            index = VectorIndex.load(path, device=self.device)
        except Exception as exc:  # whatever the damage, start-up answers with one line
            raise DamagedStoreError(
                f"collection {folder.name!r} cannot be read: {path} is damaged ({str(exc)[:200]});"
                " nothing was changed. Move the folder aside (the server then starts without this"
                " collection) or restore it from a backup"
            ) from exc
        collection = _Collection(model, index.dim, self.device)
        collection.index = index
        collection.texts = texts
        return collection
