"""All pairs of vectors with cosine similarity at or above a threshold (near-duplicates).

Two paths with one contract. The fused path (a Triton kernel, `threshold_scan`) computes
the upper triangle tile by tile and appends only the matches, so scores never reach
global memory; the library path computes square blocks of the upper triangle with a
matmul and reduces each block to its matches at once. Memory stays O(N + pairs)
(plus block² for the library path).
"""

from __future__ import annotations

from typing import Literal

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
    backend: Literal["auto", "fused", "library"] = "auto",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, score) for every pair i < j with cosine(v_i, v_j) >= threshold, sorted by (i, j).

    Scores are fp32 accumulations of the vectors normalised and stored in the compute
    precision (fp16 stays fp16 on CUDA). backend: "fused" (Triton), "library" (blocked
    matmul), or "auto": fused on CUDA when triton is there, library otherwise.
    """
    numpy_out = isinstance(vectors, np.ndarray)
    v = as_tensor(vectors, "vectors")
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not -1 <= threshold <= 1:
        raise InvalidInputError(f"must be a number from -1 to 1, got {threshold!r}", field="threshold")
    if check_finite_values:
        check_finite(v, "vectors")
    unit = F.normalize(v.float(), dim=1).to(compute_dtype(v))
    if _use_fused(backend, unit):
        from altlas.search.threshold_scan import threshold_pairs

        i, j, s = threshold_pairs(unit, float(threshold))
    else:
        i, j, s = _library_pairs(unit, float(threshold), block)
    order = torch.argsort(i * max(unit.shape[0], 1) + j)
    i, j, s = i[order], j[order], s[order]
    if numpy_out:
        return i.cpu().numpy(), j.cpu().numpy(), s.cpu().numpy()
    return i, j, s


def _use_fused(backend: str, unit: torch.Tensor) -> bool:
    from altlas.search.fused_topk import fused_available

    if backend not in ("auto", "fused", "library"):
        raise InvalidInputError(f"must be auto, fused or library, got {backend!r}", field="backend")
    if backend == "library":
        return False
    if not fused_available(unit.device):
        if backend == "fused":
            needs = "the fused kernel needs triton (CUDA or TRITON_INTERPRET=1)"
            raise InvalidInputError(needs, field="backend")
        return False
    # One vector has no pairs; "auto" takes the kernel on CUDA only (the interpreter is for tests).
    return unit.shape[0] > 1 and (backend == "fused" or unit.device.type == "cuda")


def _library_pairs(
    unit: torch.Tensor, threshold: float, block: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The blocked matmul path: square blocks of the upper triangle, each reduced to its matches."""
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
    if not found_i:
        empty = torch.zeros(0, dtype=torch.int64, device=unit.device)
        return empty, empty, torch.zeros(0, dtype=torch.float32, device=unit.device)
    return torch.cat(found_i), torch.cat(found_j), torch.cat(found_s)
