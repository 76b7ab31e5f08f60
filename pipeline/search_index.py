"""The search index of a gallery: rows of unit embeddings, each with its person's id, scanned in one
vectorised cosine; grows and shrinks in place on add/delete (no rebuild). A person's score is the max over
their embeddings. Large galleries are scanned in int8 (a quarter of the memory traffic) and the best rows
re-scored in float32, so results are exactly the float32 ones (`SearchIndex.scan_error`).
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from .device import model_call

EMBEDDING_SIZE = 512

# From this many rows on, search scans an int8 copy of the matrix (a quarter of the memory traffic, which
# is what search costs) and re-scores the best rows exactly in float32; smaller galleries scan float32.
QUANTISED_SCAN_MIN_ROWS = 20_000
BFLOAT16_UNIT_ROUNDOFF = 2.0 ** -8


class SearchIndex:
    """Rows of unit vectors with the id of the person each belongs to; grows and shrinks in place."""

    def __init__(self) -> None:
        self.matrix = np.zeros((0, EMBEDDING_SIZE), np.float32)
        # The scan copy of `matrix`: row ~= quantised * scale, int8 with one bfloat16 scale per row (kept as
        # its uint16 bits: numpy has no bfloat16), and each row's exact quantisation error (L2 norm). Made
        # when a scan needs it, for the rows from `quantised_rows` on: galleries below
        # QUANTISED_SCAN_MIN_ROWS (every visitor's session gallery) never pay for it.
        self.quantised = np.zeros((0, EMBEDDING_SIZE), np.int8)
        self.scale_bits = np.zeros(0, np.uint16)
        self.row_error = np.zeros(0, np.float32)
        self.owner = np.zeros(0, np.int64)
        self.size = 0
        self.quantised_rows = 0  # rows [0, quantised_rows) have a current scan copy

    def arrays(self) -> tuple[np.ndarray, ...]:
        return self.matrix, self.quantised, self.scale_bits, self.row_error, self.owner

    def append(self, vectors: np.ndarray, owners: np.ndarray) -> None:
        needed = self.size + len(vectors)
        if needed > len(self.matrix):  # amortised O(1): double the capacity
            self._resize(max(needed, 2 * len(self.matrix), 16))
        self.matrix[self.size : needed], self.owner[self.size : needed] = vectors, owners
        self.size = needed

    def _quantise_new_rows(self) -> None:
        import torch  # bfloat16 rounding

        rows = slice(self.quantised_rows, self.size)
        vectors = self.matrix[rows]
        scale = torch.from_numpy(np.abs(vectors).max(axis=1) / 127).to(torch.bfloat16)
        rounded_scale = scale.float().numpy()[:, None]  # quantise with the scale the scan will use
        quantised = np.clip(np.rint(vectors / rounded_scale), -127, 127)
        self.quantised[rows], self.scale_bits[rows] = quantised, scale.view(torch.int16).numpy().view(np.uint16)
        self.row_error[rows] = np.linalg.norm(vectors - quantised * rounded_scale, axis=1)
        self.quantised_rows = self.size

    def _resize(self, capacity: int) -> None:
        resized = []
        for array in self.arrays():
            bigger = np.empty((capacity, *array.shape[1:]), array.dtype)
            bigger[: self.size] = array[: self.size]
            resized.append(bigger)
        self.matrix, self.quantised, self.scale_bits, self.row_error, self.owner = resized

    def scan_error(self) -> float:  # of the rows scanned last
        """Bound on |scanned score - float32 score| for a unit query: the row's quantisation error (at most
        the largest row_error), plus bfloat16 rounding of the query (u |x~| <= u (1 + e)) and of the
        result (u |q~ . x~| <= u (1 + u)(1 + e)), u = 2^-8; the kernel multiplies int8 by the bfloat16
        scale exactly and accumulates in float32 (1e-4 covers that). Rows outside the re-scored window
        cannot beat a result that clears the window's boundary by this much."""
        worst_row = float(self.row_error[: self.size].max())
        u = BFLOAT16_UNIT_ROUNDOFF
        return worst_row + u * (1 + worst_row) * (2 + u) + 1e-4

    def remove_owners(self, owners: Iterable[int]) -> None:
        """Drop every row of these people: the last rows move into the holes (no rebuild)."""
        owners = np.fromiter(owners, np.int64)
        if not len(owners) or not self.size:
            return
        doomed = np.isin(self.owner[: self.size], owners)
        new_size = self.size - int(doomed.sum())
        holes = np.flatnonzero(doomed[:new_size])
        movers = new_size + np.flatnonzero(~doomed[new_size:])
        for array in self.arrays():
            array[holes] = array[movers]
        if len(movers) and movers[-1] >= self.quantised_rows:  # a hole got a row without a scan copy
            self.quantised_rows = min(self.quantised_rows, int(holes[np.argmax(movers >= self.quantised_rows)]))
        self.size = new_size
        self.quantised_rows = min(self.quantised_rows, new_size)
        if self.size < len(self.matrix) // 4 and len(self.matrix) > 64:  # give memory back after big deletes
            self._resize(max(2 * self.size, 16))

    def top_people(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """For each query, the k best people (id, max similarity over their rows), best first."""
        if not self.size:
            return [[] for _ in queries]
        matrix, owner = self.matrix[: self.size], self.owner[: self.size]
        if self.size < QUANTISED_SCAN_MIN_ROWS:
            similarities = queries @ matrix.T  # (Q, N): the one pass over the matrix
            return [best_distinct(row, owner, k) for row in similarities]
        approximate = self.scan(queries)
        error = self.scan_error()  # after the scan, which brings the row errors up to date
        return [best_distinct(scores, owner, k, exact=lambda rows, q=query: matrix[rows] @ q, error=error)
                for scores, query in zip(approximate, queries)]

    def scan(self, queries: np.ndarray) -> np.ndarray:
        """(Q, size) approximate scores from the int8 copy, each within `scan_error()` of the float32 one."""
        import torch  # int8 products: numpy has none that is fast

        if self.quantised_rows < self.size:
            self._quantise_new_rows()
        quantised = torch.from_numpy(self.quantised[: self.size])
        scale = torch.from_numpy(self.scale_bits[: self.size].view(np.int16)).view(torch.bfloat16)
        with model_call():  # the scan is most of the search: it gets the threads a model call gets
            # int8 weights times a bfloat16 input, per-row scales: PyTorch's weight-only int8 CPU kernel.
            return torch._weight_int8pack_mm(torch.from_numpy(queries).to(torch.bfloat16), quantised, scale).float().numpy()

    def __deepcopy__(self, memo: dict) -> "SearchIndex":
        clone = SearchIndex()
        clone.append(self.matrix[: self.size], self.owner[: self.size])
        return clone


def best_distinct(scores: np.ndarray, owner: np.ndarray, k: int,
                   exact: Callable[[np.ndarray], np.ndarray] | None = None, error: float = 0.0) -> list[tuple[int, float]]:
    """The k best distinct owners by score. With `exact`, `scores` are approximations within `error`
    and the rows kept are re-scored exactly; the result is the exact one either way."""
    # The k best people are the first k distinct owners among the rows sorted by score, so only the top
    # few rows need sorting (argpartition is O(N)); widen the window until no row outside it can compete.
    n = len(scores)
    window = min(n, max(4 * k, 32))
    while True:
        if window < n:
            rows = np.argpartition(-scores, window - 1)[:window]
            boundary = float(scores[rows].min())  # no row outside scores more than this
        else:
            rows, boundary = np.arange(n), -np.inf
        row_scores = exact(rows) if exact is not None else scores[rows]
        best: dict[int, float] = {}
        for index in np.argsort(-row_scores, kind="stable"):
            best.setdefault(int(owner[rows[index]]), min(float(row_scores[index]), 1.0))
            if len(best) == k:
                break
        if window == n or (len(best) == k and min(best.values()) >= boundary + error):
            return list(best.items())
        window = min(n, window * 4)
