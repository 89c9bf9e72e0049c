"""Similarity search: exact top-k, near-duplicate pairs, and a vector index."""

from altlas.search.index import SearchHit, VectorIndex
from altlas.search.pairs import similar_pairs
from altlas.search.topk import MAX_K, Metric, topk

__all__ = ["MAX_K", "Metric", "SearchHit", "VectorIndex", "similar_pairs", "topk"]
