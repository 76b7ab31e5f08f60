"""Galleries of enrolled people: names, 512-d embeddings and a small thumbnail each. Never photos.

Usage (the app goes through pipeline.identity, which adds face detection and quality checks)::

    gallery = open_gallery()          # FACELAB_GALLERY=path -> shared SqliteGallery, =postgresql://... ->
                                      # shared PostgresGallery, unset -> a fresh InMemoryGallery
    gallery.add("Ada Lovelace", embedding, thumbnail_jpeg)   # more calls with the same name add embeddings
    gallery.search(embedding, k=3)   # -> [Candidate(name, similarity), ...] best first
    gallery.people()                 # -> [Person(name, embeddings, thumbnail), ...]
    gallery.rename("Ada Lovelace", "Ada"); gallery.delete("Ada"); gallery.clear()
    data = gallery.export_json(); other.import_json(data)

Three implementations behind one interface (`Gallery`):
- `InMemoryGallery`, the default: one per visitor session (the app keeps it in gr.State), gone when the
  session ends, so visitors never see each other's people. It survives `copy.deepcopy` (Gradio copies
  State values) and an empty one costs a few hundred bytes.
- `SqliteGallery(path)`, for an operator who wants a persistent gallery shared by every visitor:
  stdlib sqlite3 in WAL mode, one transaction per change, embeddings as float32 blobs. Safe across threads
  (one lock per object) and processes (SQLite locking; each process follows the others' commits).
- `PostgresGallery(url)`, the same shared gallery on PostgreSQL for several app replicas (psycopg 3): each
  replica keeps its own index and follows the others' commits through LISTEN/NOTIFY and a change counter.
  Both database galleries share their statements and catch-up logic (`_DatabaseGallery`).

Search is a vectorised cosine over an in-memory (N, 512) float32 matrix of unit vectors, grown and shrunk
in place on add/delete (no rebuild); a person's score is the max over their embeddings. Large galleries
are scanned in int8 (a quarter of the memory traffic) and the best rows re-scored in float32, so results
are exactly the float32 ones (see `_Index.scan_error`).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import html
import json
import logging
import os
import re
import sqlite3
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Iterable, Iterator

import numpy as np

from .device import model_call
from .errors import FaceLabError, InvalidNameError
from .settings import current as current_settings

log = logging.getLogger(__name__)

EMBEDDING_SIZE = 512
MAX_NAME_LENGTH = 64
MAX_THUMBNAIL_BYTES = 64 * 1024
# Per-visitor bound on memory (an in-memory gallery lives in server RAM): 2 kB per embedding.
MAX_SESSION_EMBEDDINGS = current_settings().session_gallery_max
MAX_IMPORT_BYTES = 100 * 1024 * 1024
EXPORT_FORMAT = "facelab-gallery"
EXPORT_VERSION = 1

# Bidirectional-text overrides can make a name display as something else ("Trojan Source"); refuse them.
_BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class GalleryError(FaceLabError):
    """A gallery operation the user asked for cannot be done (unknown person, full, bad import file...)."""


@dataclass(frozen=True)
class Person:
    """One enrolled person as the UI lists them."""

    name: str
    embeddings: int
    thumbnail: bytes | None = field(default=None, repr=False)  # small JPEG of the first enrolled face

    @property
    def html_name(self) -> str:
        return display_name(self.name)


@dataclass(frozen=True)
class Candidate:
    """A search hit: a person and the cosine similarity of their best-matching embedding."""

    name: str
    similarity: float


def normalize_name(name: object) -> str:
    """A person's name as stored: NFC unicode, trimmed, inner whitespace collapsed to one space.

    Raises InvalidNameError for empty names, names over 64 characters and names with control characters.
    HTML is kept as text ("<b>Bob</b>" is a valid name); escape it where it is shown (`display_name`).
    """
    if not isinstance(name, str):
        raise InvalidNameError("Type a name for this person.")
    name = re.sub(r"\s+", " ", unicodedata.normalize("NFC", name)).strip()
    if not name:
        raise InvalidNameError("Type a name for this person (it cannot be empty).")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(f"Names can be at most {MAX_NAME_LENGTH} characters; this one has {len(name)}.")
    for char in name:
        if unicodedata.category(char) in ("Cc", "Cs", "Co", "Cn") or char in _BIDI_CONTROLS:
            raise InvalidNameError(f"The name contains an invisible control character (U+{ord(char):04X}); remove it.")
    return name


def display_name(name: str) -> str:
    """The name escaped for HTML (Markdown/HTML components); plain-text components need no escaping."""
    return html.escape(name, quote=True)


def _as_unit_vectors(embeddings: np.ndarray) -> np.ndarray:
    vectors = np.asarray(embeddings, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None]
    if vectors.ndim != 2 or vectors.shape[1] != EMBEDDING_SIZE:
        raise ValueError(f"embeddings must have {EMBEDDING_SIZE} values each, got shape {np.shape(embeddings)}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if not np.all(np.isfinite(vectors)) or np.any(norms == 0):
        raise ValueError("embeddings must be finite and non-zero")
    return vectors / norms


def _check_thumbnail(thumbnail: bytes | None) -> bytes | None:
    if thumbnail is None:
        return None
    thumbnail = bytes(thumbnail)
    if len(thumbnail) > MAX_THUMBNAIL_BYTES or not thumbnail.startswith(b"\xff\xd8"):
        raise GalleryError(f"A thumbnail must be a JPEG of at most {MAX_THUMBNAIL_BYTES // 1024} kB.")
    return thumbnail


# From this many rows on, search scans an int8 copy of the matrix (a quarter of the memory traffic, which
# is what search costs) and re-scores the best rows exactly in float32; smaller galleries scan float32.
QUANTISED_SCAN_MIN_ROWS = 20_000
BFLOAT16_UNIT_ROUNDOFF = 2.0 ** -8


class _Index:
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
            return [_best_distinct(row, owner, k) for row in similarities]
        approximate = self.scan(queries)
        error = self.scan_error()  # after the scan, which brings the row errors up to date
        return [_best_distinct(scores, owner, k, exact=lambda rows, q=query: matrix[rows] @ q, error=error)
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

    def __deepcopy__(self, memo: dict) -> "_Index":
        clone = _Index()
        clone.append(self.matrix[: self.size], self.owner[: self.size])
        return clone


def _best_distinct(scores: np.ndarray, owner: np.ndarray, k: int,
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


class Gallery:
    """The interface the app uses. Subclasses store people; this class holds the search index."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._index = _Index()
        self._names: dict[int, str] = {}  # person id -> name
        self.backbone: str | None = None  # the embedder the stored embeddings came from

    # -- the interface -------------------------------------------------------------------------------
    def add(self, name: str, embedding: np.ndarray, thumbnail: bytes | None = None, backbone: str | None = None) -> Person:
        """Store one more embedding under `name` (a new person if the name is new). Returns that person."""
        name = normalize_name(name)
        vectors = _as_unit_vectors(embedding)
        thumbnail = _check_thumbnail(thumbnail)
        with self._access():
            self._sync()
            self._check_backbone(backbone)
            self._add(name, vectors, thumbnail, backbone)
            return self._person(name)

    def people(self) -> list[Person]:
        """Everyone enrolled, sorted by name (case-insensitive)."""
        with self._access():
            self._sync()
            return sorted(self._people(), key=lambda person: (person.name.casefold(), person.name))

    def person(self, name: str) -> Person | None:
        with self._access():
            self._sync()
            return self._person(normalize_name(name))

    def rename(self, old: str, new: str) -> Person:
        old, new = normalize_name(old), normalize_name(new)
        with self._access():
            self._sync()
            if self._person_id(old) is None:
                raise GalleryError(f"No one named {old!r} is enrolled.")
            if old != new and self._person_id(new) is not None:
                raise GalleryError(f"{new!r} is already enrolled; delete or rename that person first.")
            self._rename(old, new)
            return self._person(new)

    def delete(self, name: str) -> bool:
        """Remove a person and all their embeddings. Returns False if no one had that name."""
        name = normalize_name(name)
        with self._access():
            self._sync()
            person_id = self._person_id(name)
            if person_id is None:
                return False
            self._delete(person_id)
            return True

    def clear(self) -> None:
        """Remove everyone."""
        with self._access():
            self._clear()

    def search(self, embedding: np.ndarray, k: int = 3, backbone: str | None = None) -> list[Candidate]:
        """The k people most similar to one embedding, best first (empty list for an empty gallery)."""
        return self.search_many(_as_unit_vectors(embedding), k, backbone)[0]

    def search_many(self, embeddings: np.ndarray, k: int = 3, backbone: str | None = None) -> list[list[Candidate]]:
        """`search` for several faces at once (one pass over the matrix)."""
        queries = _as_unit_vectors(embeddings)
        with self._access():
            self._sync()
            self._check_backbone(backbone)
            hits = self._index.top_people(queries, k)
            return [[Candidate(self._names[pid], similarity) for pid, similarity in row] for row in hits]

    def sample(self, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to `limit` stored embeddings (unit vectors) and the person id of each: enough to tell how much
        different enrolled people resemble each other (pipeline.identity), without reading a large gallery."""
        with self._lock:
            self._sync()
            rows = min(limit, self._index.size)
            return self._index.matrix[:rows].copy(), self._index.owner[:rows].copy()

    def __len__(self) -> int:
        """Number of people."""
        with self._access():
            self._sync()
            return len(self._names)

    def __contains__(self, name: object) -> bool:
        try:
            return self.person(name) is not None  # type: ignore[arg-type]
        except InvalidNameError:
            return False

    @property
    def embedding_count(self) -> int:
        with self._access():
            self._sync()
            return self._index.size

    def export_json(self) -> bytes:
        """Every person with their embeddings and thumbnail, as UTF-8 JSON (vectors base64 float32)."""
        with self._access():
            self._sync()
            people = []
            for person in self.people():
                person_id = self._person_id(person.name)
                rows = self._index.matrix[: self._index.size][self._index.owner[: self._index.size] == person_id]
                people.append({
                    "name": person.name,
                    "thumbnail_jpeg": base64.b64encode(person.thumbnail).decode() if person.thumbnail else None,
                    "embeddings_float32_le": [base64.b64encode(row.astype("<f4").tobytes()).decode() for row in rows],
                })
            document = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "backbone": self.backbone,
                        "embedding_size": EMBEDDING_SIZE, "people": people}
        return json.dumps(document, ensure_ascii=False).encode("utf-8")

    def import_json(self, data: bytes | str) -> int:
        """Add the people of an `export_json` file (merging into people of the same name). Returns how many.

        The whole file is checked before anything is stored; a bad file raises GalleryError.
        """
        backbone, people = _parse_export(data)
        with self._access():
            self._sync()
            self._check_backbone(backbone)
            self._import(people, backbone)
        return len(people)

    # -- storage hooks (subclasses) -------------------------------------------------------------------
    def _access(self) -> ContextManager[object]:
        """Held around every public operation: the lock (one operation at a time per object); a database
        gallery also (re)connects here and turns a lost connection into a message."""
        return self._lock

    def _sync(self) -> None:
        """Catch up with changes made elsewhere (other processes). Nothing to do in memory."""

    def _add(self, name: str, vectors: np.ndarray, thumbnail: bytes | None, backbone: str | None) -> None:
        raise NotImplementedError

    def _import(self, people: list[tuple[str, np.ndarray, bytes | None]], backbone: str | None) -> None:
        for name, vectors, thumbnail in people:
            self._add(name, vectors, thumbnail, backbone)

    def _people(self) -> list[Person]:
        raise NotImplementedError

    def _person(self, name: str) -> Person | None:
        return next((person for person in self._people() if person.name == name), None)

    def _rename(self, old: str, new: str) -> None:
        raise NotImplementedError

    def _delete(self, person_id: int) -> None:
        raise NotImplementedError

    def _clear(self) -> None:
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------------------------------
    def _person_id(self, name: str) -> int | None:
        return next((pid for pid, known in self._names.items() if known == name), None)

    def _check_backbone(self, backbone: str | None) -> None:
        # Embeddings of different backbones are not comparable: refuse to mix them rather than mismatch.
        if backbone and self.backbone and backbone != self.backbone and self._names:
            raise GalleryError(
                f"This gallery holds {self.backbone} embeddings but faces are now embedded with {backbone}; "
                f"they cannot be compared. Clear the gallery and enroll again, or switch the backbone back."
            )


class InMemoryGallery(Gallery):
    """One visitor's gallery, in this process's memory only. Cheap to create and to deep-copy."""

    def __init__(self, max_embeddings: int | None = MAX_SESSION_EMBEDDINGS) -> None:
        super().__init__()
        self.max_embeddings = max_embeddings
        self._thumbnails: dict[int, bytes | None] = {}
        self._counts: dict[int, int] = {}  # embeddings per person
        self._by_name: dict[str, int] = {}
        self._next_id = 1

    def _person_id(self, name: str) -> int | None:
        return self._by_name.get(name)

    def _add(self, name: str, vectors: np.ndarray, thumbnail: bytes | None, backbone: str | None) -> None:
        if self.max_embeddings is not None and self._index.size + len(vectors) > self.max_embeddings:
            raise GalleryError(
                f"This session's gallery is full ({self.max_embeddings} face embeddings). Delete someone first."
            )
        person_id = self._by_name.get(name)
        if person_id is None:
            person_id = self._next_id
            self._next_id += 1
            self._by_name[name], self._names[person_id] = person_id, name
            self._thumbnails[person_id], self._counts[person_id] = thumbnail, 0
        elif self._thumbnails[person_id] is None:
            self._thumbnails[person_id] = thumbnail
        self._index.append(vectors, np.full(len(vectors), person_id))
        self._counts[person_id] += len(vectors)
        self.backbone = backbone or self.backbone

    def _people(self) -> list[Person]:
        return [Person(name, self._counts[pid], self._thumbnails[pid]) for pid, name in self._names.items()]

    def _person(self, name: str) -> Person | None:
        person_id = self._by_name.get(name)
        return None if person_id is None else Person(name, self._counts[person_id], self._thumbnails[person_id])

    def _rename(self, old: str, new: str) -> None:
        person_id = self._by_name.pop(old)
        self._by_name[new], self._names[person_id] = person_id, new

    def _delete(self, person_id: int) -> None:
        self._index.remove_owners([person_id])
        del self._by_name[self._names.pop(person_id)], self._thumbnails[person_id], self._counts[person_id]

    def _clear(self) -> None:
        self._index = _Index()
        self._names.clear(), self._by_name.clear(), self._thumbnails.clear(), self._counts.clear()
        self.backbone = None

    def __deepcopy__(self, memo: dict) -> "InMemoryGallery":
        # Gradio deep-copies State values; locks cannot be copied, so build a fresh one.
        with self._lock:
            clone = InMemoryGallery(self.max_embeddings)
            clone._index = copy.deepcopy(self._index, memo)
            clone._names, clone._by_name = dict(self._names), dict(self._by_name)
            clone._thumbnails, clone._counts = dict(self._thumbnails), dict(self._counts)
            clone._next_id, clone.backbone = self._next_id, self.backbone
            return clone

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()


# The schema's version, kept in meta('schema_version'); a gallery written by a newer Face Lab is refused
# rather than misread. Version 1 is the original SQLite layout (files without the key are version 1).
SCHEMA_VERSION = 1

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    thumbnail BLOB,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS embeddings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids never reused, so "id > last seen" finds new rows
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    vector BLOB NOT NULL,                  -- 512 float32, little-endian
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS embeddings_person ON embeddings(person_id);
"""

# The same tables in their own PostgreSQL schema (search_path), plus the change counter every writer
# increments first (see PostgresGallery).
_POSTGRES_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS facelab;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS people (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    thumbnail BYTEA,
    created DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS embeddings (
    id BIGSERIAL PRIMARY KEY,
    person_id BIGINT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    vector BYTEA NOT NULL,                 -- 512 float32, little-endian
    created DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS embeddings_person ON embeddings(person_id);
CREATE TABLE IF NOT EXISTS changes (id INTEGER PRIMARY KEY CHECK (id = 1), counter BIGINT NOT NULL);
INSERT INTO changes (id, counter) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
"""


class _DatabaseGallery(Gallery):
    """What the SQLite and PostgreSQL galleries share: every statement that reads or changes people (written
    once, with '?' placeholders), the schema version check, and the incremental catch-up of this process's
    search index with other processes' commits: new embedding rows by id (ids grow in commit order: SQLite
    has one writer at a time, PostgreSQL writers queue on the change counter), deleted people by id.

    Subclasses give the connection (`self._db`, with `execute`), a write transaction, a consistent read
    snapshot, and a cheap marker that changes whenever anyone commits.
    """

    def __init__(self) -> None:
        super().__init__()
        self._last_embedding_id = 0
        self._seen: object = None  # the change marker the index was last synced at

    # -- what subclasses provide ------------------------------------------------------------------------
    def _transaction(self) -> ContextManager[object]:
        raise NotImplementedError

    def _snapshot(self) -> ContextManager[object]:
        raise NotImplementedError

    def _change_marker(self) -> object:
        raise NotImplementedError

    def _sql(self, query: str) -> str:
        return query

    # -- shared ---------------------------------------------------------------------------------------
    def _execute(self, query: str, params: tuple = ()):
        return self._db.execute(self._sql(query), params)

    def _create_schema(self, schema: str) -> None:
        """Create the tables if missing and check the schema version; call inside a transaction."""
        for statement in schema.split(";"):
            if statement.strip():
                self._execute(statement)
        self._execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO NOTHING",
                      (str(SCHEMA_VERSION),))
        version = int(self._execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise GalleryError(f"This gallery was written by a newer Face Lab (schema {version}; this one knows "
                               f"{SCHEMA_VERSION}). Upgrade Face Lab to use it.")

    def _reset_index(self) -> None:
        """Forget the index, so the next sync reloads every row (after a reconnect: the database may have
        been restored from a backup, where 'id > last seen' would not hold)."""
        self._index, self._names, self._last_embedding_id, self._seen = _Index(), {}, 0, None

    def _sync(self, force: bool = False) -> None:
        marker = self._change_marker()
        if marker == self._seen and not force:
            return  # no one committed since we last looked
        with self._snapshot():  # one consistent view of people and embeddings
            names = dict(self._execute("SELECT id, name FROM people").fetchall())
            rows = self._execute("SELECT id, person_id, vector FROM embeddings WHERE id > ? ORDER BY id",
                                 (self._last_embedding_id,)).fetchall()
            backbone = self._execute("SELECT value FROM meta WHERE key = 'backbone'").fetchone()
        self._index.remove_owners(set(self._names) - set(names))
        self._names = names
        if rows:
            vectors = np.frombuffer(b"".join(row[2] for row in rows), dtype="<f4").reshape(len(rows), EMBEDDING_SIZE)
            self._index.append(vectors, np.array([row[1] for row in rows]))
            self._last_embedding_id = rows[-1][0]
        self.backbone = backbone[0] if backbone else None
        self._seen = marker

    def _person_id(self, name: str) -> int | None:
        row = self._execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def _store(self, name: str, vectors: np.ndarray, thumbnail: bytes | None, backbone: str | None) -> None:
        now = time.time()
        self._execute("INSERT INTO people (name, thumbnail, created) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
                      (name, thumbnail, now))
        person_id, stored_thumbnail = self._execute("SELECT id, thumbnail FROM people WHERE name = ?", (name,)).fetchone()
        if stored_thumbnail is None and thumbnail is not None:
            self._execute("UPDATE people SET thumbnail = ? WHERE id = ?", (thumbnail, person_id))
        for vector in vectors:  # a handful per call: one statement each keeps the code dialect-free
            self._execute("INSERT INTO embeddings (person_id, vector, created) VALUES (?, ?, ?)",
                          (person_id, vector.astype("<f4").tobytes(), now))
        if backbone:
            self._execute("INSERT INTO meta (key, value) VALUES ('backbone', ?) ON CONFLICT (key) DO NOTHING", (backbone,))

    def _add(self, name: str, vectors: np.ndarray, thumbnail: bytes | None, backbone: str | None) -> None:
        with self._transaction():
            self._store(name, vectors, thumbnail, backbone)
        self._sync(force=True)

    def _import(self, people: list[tuple[str, np.ndarray, bytes | None]], backbone: str | None) -> None:
        with self._transaction():  # all or nothing
            for name, vectors, thumbnail in people:
                self._store(name, vectors, thumbnail, backbone)
        self._sync(force=True)

    _PEOPLE = ("SELECT p.name, COUNT(e.id), p.thumbnail FROM people p LEFT JOIN embeddings e ON e.person_id = p.id "
               "{where} GROUP BY p.id")

    def _people(self) -> list[Person]:
        rows = self._execute(self._PEOPLE.format(where="")).fetchall()
        return [Person(name, count, _bytes(thumbnail)) for name, count, thumbnail in rows]

    def _person(self, name: str) -> Person | None:
        row = self._execute(self._PEOPLE.format(where="WHERE p.name = ?"), (name,)).fetchone()
        return Person(row[0], row[1], _bytes(row[2])) if row else None

    def _rename(self, old: str, new: str) -> None:
        with self._transaction():
            self._execute("UPDATE people SET name = ? WHERE name = ?", (new, old))
        self._sync(force=True)

    def _delete(self, person_id: int) -> None:
        with self._transaction():
            self._execute("DELETE FROM people WHERE id = ?", (person_id,))  # embeddings go by ON DELETE CASCADE
        self._sync(force=True)

    def _clear(self) -> None:
        with self._transaction():
            self._execute("DELETE FROM people")
            self._execute("DELETE FROM meta WHERE key = 'backbone'")
        self._sync(force=True)

    def __deepcopy__(self, memo: dict) -> "_DatabaseGallery":
        return self  # one shared resource: copies would be the same people anyway


def _bytes(value: object) -> bytes | None:
    return None if value is None else bytes(value)  # drivers may hand back memoryview


class SqliteGallery(_DatabaseGallery):
    """A persistent gallery shared by every visitor of this server (and other processes on the file).

    Every change is one transaction (BEGIN IMMEDIATE ... COMMIT) with synchronous=FULL in WAL mode, so a
    crash or kill -9 loses at most the change in flight and leaves the file readable. Each process keeps
    its own search index and catches up with other processes' commits (PRAGMA data_version) before
    reading, incrementally.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout = 30000")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
            # Deleted people's embeddings and thumbnails are overwritten on disk, not just unlinked.
            self._db.execute("PRAGMA secure_delete = ON")
            with self._transaction():
                self._create_schema(_SQLITE_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"The gallery file {self.path} cannot be opened as a gallery: {exc}") from None
        self._sync(force=True)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        # BEGIN IMMEDIATE takes the write lock up front, so two writers queue instead of failing halfway.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    def _change_marker(self) -> object:
        return self._db.execute("PRAGMA data_version").fetchone()[0]  # changes when another connection commits


# psycopg errors that mean the connection is gone (server restarted, network): reconnect, do not crash.
def _connection_errors() -> tuple[type[BaseException], ...]:
    import psycopg

    return psycopg.OperationalError, psycopg.InterfaceError


class PostgresGallery(_DatabaseGallery):
    """The shared gallery on PostgreSQL (FACELAB_GALLERY=postgresql://...), for several app replicas.

    Same tables as SQLite in a `facelab` schema, created and versioned here; embeddings as float32 bytea;
    one transaction per change. Every writer first increments the one-row `changes` counter: the row lock
    makes writers queue, so embedding ids are assigned (and committed) in order and "id > last seen" finds
    every new row, and the counter tells a replica cheaply whether anything changed. A commit also sends
    NOTIFY facelab_gallery: a listener thread per replica then updates this replica's in-memory index at
    once (incrementally, no rebuild), before the next request; the counter check before every read covers
    a notification that never came.

    A lost connection (database restarted, network) is logged and re-opened on the next use; searches keep
    answering from the in-memory index meanwhile, changes fail with a message until the database is back.
    """

    CHANNEL = "facelab_gallery"

    def __init__(self, url: str, listen: bool = True) -> None:
        super().__init__()
        self.url = url
        self._lost_since: float | None = None
        self._last_attempt = 0.0
        self._closing = threading.Event()
        try:
            self._open()  # connects, creates the schema, loads the index
        except _connection_errors() as exc:
            raise GalleryError(f"The shared gallery's database {_redacted(url)} cannot be reached: "
                               f"{str(exc).strip() or type(exc).__name__}") from None
        self._listener = None
        if listen:
            self._listener = threading.Thread(target=self._listen, name="facelab-gallery-listen", daemon=True)
            self._listener.start()

    def __repr__(self) -> str:
        return f"PostgresGallery({_redacted(self.url)!r})"

    # -- connection ---------------------------------------------------------------------------------
    def _connect(self):
        try:
            import psycopg
        except ImportError:
            raise GalleryError("FACELAB_GALLERY names a PostgreSQL database, but psycopg is not installed "
                               "(python -m pip install -r requirements.txt).") from None

        # search_path: the gallery's tables live in their own schema, beside whatever else the database holds.
        return psycopg.connect(self.url, autocommit=True, connect_timeout=5, options="-c search_path=facelab")

    def _open(self) -> None:
        self._db = self._connect()
        with self._db.transaction():
            # Replicas starting together would race on CREATE TABLE IF NOT EXISTS: one at a time.
            self._db.execute("SELECT pg_advisory_xact_lock(7260419)")
            self._create_schema(_POSTGRES_SCHEMA)
        self._reset_index()
        self._sync(force=True)
        if self._lost_since is not None:
            log.warning("shared gallery: reconnected to the database after %.1f s; index reloaded (%d people)",
                        time.monotonic() - self._lost_since, len(self._names))
            self._lost_since = None

    def _connection_lost(self, error: BaseException) -> None:
        if self._lost_since is None:
            self._lost_since = time.monotonic()
            log.warning("shared gallery: lost the connection to the database (%s); reconnecting on next use",
                        str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
        self._db.close()

    @contextlib.contextmanager
    def _access(self) -> Iterator[None]:
        errors = _connection_errors()
        with self._lock:
            if (self._db.closed or self._db.broken) and time.monotonic() - self._last_attempt > 1.0:
                self._last_attempt = time.monotonic()  # at most one attempt a second while it is away
                try:
                    self._open()
                except errors as exc:
                    self._connection_lost(exc)  # go on: a search can still answer from the index
            try:
                yield
            except errors as exc:
                self._connection_lost(exc)
                raise GalleryError("The shared gallery's database cannot be reached right now; "
                                   "try again in a moment.") from None

    def close(self) -> None:
        self._closing.set()
        if self._listener is not None:
            self._listener.join(5)
        with self._lock:
            self._db.close()

    # -- the hooks ----------------------------------------------------------------------------------
    def _sql(self, query: str) -> str:
        return query.replace("?", "%s")  # psycopg's placeholders; no statement here has a literal ? or %

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._db.transaction():
            self._execute("UPDATE changes SET counter = counter + 1 WHERE id = 1")  # queue behind other writers
            yield
            self._execute("SELECT pg_notify(?, '')", (self.CHANNEL,))  # delivered at commit

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        with self._db.transaction():
            self._execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield

    def _change_marker(self) -> object:
        if self._db.closed:
            return self._seen  # the database is away: answer from the index we have
        try:
            return self._execute("SELECT counter FROM changes WHERE id = 1").fetchone()[0]
        except _connection_errors() as exc:
            # The database is away: answer from the index we have (a search still works); the next
            # access reconnects and reloads.
            self._connection_lost(exc)
            return self._seen

    # -- NOTIFY listener ----------------------------------------------------------------------------
    def _listen(self) -> None:
        """Apply other replicas' commits to this replica's index as soon as they are notified."""
        errors = _connection_errors()
        while not self._closing.is_set():
            try:
                with self._connect() as connection:
                    connection.execute(f"LISTEN {self.CHANNEL}")
                    self._last_attempt = 0.0  # the database is back: re-open the main connection now, not in a second
                    self._refresh()  # whatever was committed while we were not listening
                    while not self._closing.is_set():
                        for _ in connection.notifies(timeout=1.0, stop_after=1):
                            self._refresh()
            except errors as exc:
                with self._lock:
                    self._connection_lost(exc)  # the main connection went with the server: re-open it too
                self._closing.wait(0.5)

    def _refresh(self) -> None:
        try:
            with self._access():
                self._sync()
        except GalleryError:
            pass  # logged by _connection_lost; the listener retries


def _redacted(url: str) -> str:
    return re.sub(r"://([^:@/]*):[^@/]*@", r"://\1:***@", url)  # never log a password


def is_postgres_url(value: str) -> bool:
    return value.startswith(("postgresql://", "postgres://"))


def _parse_export(data: bytes | str) -> tuple[str | None, list[tuple[str, np.ndarray, bytes | None]]]:
    if len(data) > MAX_IMPORT_BYTES:
        raise GalleryError(f"The gallery file is over {MAX_IMPORT_BYTES // 2**20} MB.")
    try:
        document = json.loads(data)
        if document.get("format") != EXPORT_FORMAT or document.get("version") != EXPORT_VERSION:
            raise ValueError("not a Face Lab gallery export (format/version)")
        if document.get("embedding_size") != EMBEDDING_SIZE:
            raise ValueError(f"embeddings are not {EMBEDDING_SIZE}-d")
        people = []
        for entry in document["people"]:
            vectors = np.stack([np.frombuffer(base64.b64decode(v, validate=True), dtype="<f4")
                                for v in entry["embeddings_float32_le"]])
            thumbnail = entry.get("thumbnail_jpeg")
            people.append((
                normalize_name(entry["name"]),
                _as_unit_vectors(vectors),
                _check_thumbnail(base64.b64decode(thumbnail, validate=True) if thumbnail else None),
            ))
        backbone = document.get("backbone")
    except FaceLabError as exc:
        raise GalleryError(f"The gallery file has an unusable entry: {exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise GalleryError(f"This is not a Face Lab gallery file ({exc}).") from None
    return (backbone if isinstance(backbone, str) else None), people


def open_gallery(path: str | os.PathLike | None = None) -> Gallery:
    """The shared gallery named by `path` or FACELAB_GALLERY when set (a postgresql:// URL: PostgreSQL;
    anything else: an SQLite file), else a fresh in-memory one."""
    path = path or current_settings().gallery
    if not path:
        return InMemoryGallery()
    return PostgresGallery(str(path)) if is_postgres_url(str(path)) else SqliteGallery(path)
