"""All pairs of vectors with cosine similarity at or above a threshold (near-duplicates).

The similarity matrix is computed in square blocks of the upper triangle only, and
each block is reduced to its matches at once, so memory stays O(N + block² + pairs).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from altlas.errors import InvalidInputError
from altlas.search.topk import as_tensor, check_finite, compute_dtype

__all__ = ["similar_pairs"]


def similar_pairs(
    vectors: torch.Tensor | np.ndarray,
    threshold: float,
    *,
    block: int = 4096,
    check_finite_values: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, score) for every pair i < j with cosine(v_i, v_j) >= threshold, sorted by (i, j)."""
    numpy_out = isinstance(vectors, np.ndarray)
    v = as_tensor(vectors, "vectors")
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not -1 <= threshold <= 1:
        raise InvalidInputError(f"must be a number from -1 to 1, got {threshold!r}", field="threshold")
    if check_finite_values:
        check_finite(v, "vectors")
    unit = F.normalize(v.float(), dim=1).to(compute_dtype(v))
    found_i, found_j, found_s = [], [], []
    n = unit.shape[0]
    for row in range(0, n, block):
        left = unit[row : row + block]
        for col in range(row, n, block):
            sims = (left @ unit[col : col + block].T).float()
            if col == row:  # diagonal block: keep i < j only
                sims = torch.triu(sims, diagonal=1) + torch.tril(torch.full_like(sims, -2.0))
            hits = (sims >= threshold).nonzero()
            if hits.numel():
                found_i.append(hits[:, 0] + row)
                found_j.append(hits[:, 1] + col)
                found_s.append(sims[hits[:, 0], hits[:, 1]])
    device = unit.device
    if found_i:
        i, j, s = torch.cat(found_i), torch.cat(found_j), torch.cat(found_s)
        order = torch.argsort(i * max(n, 1) + j)
        i, j, s = i[order], j[order], s[order]
    else:
        i = j = torch.zeros(0, dtype=torch.int64, device=device)
        s = torch.zeros(0, dtype=torch.float32, device=device)
    if numpy_out:
        return i.cpu().numpy(), j.cpu().numpy(), s.cpu().numpy()
    return i, j, s
