"""Galleries of enrolled people: names, 512-d embeddings and a small thumbnail each. Never photos.

Usage (the app goes through pipeline.identity, which adds face detection and quality checks)::

    gallery = open_gallery()          # FACELAB_GALLERY=path -> shared SqliteGallery, =postgresql://... ->
                                      # shared PostgresGallery, unset -> a fresh InMemoryGallery
    gallery.add("Ada Lovelace", embedding, thumbnail_jpeg)   # more calls with the same name add embeddings
    gallery.search(embedding, k=3)   # -> [Candidate(name, similarity), ...] best first
    gallery.people()                 # -> [Person(name, embeddings, thumbnail), ...]
    gallery.delete("Ada Lovelace"); gallery.clear()

Three implementations behind one interface (`Gallery`):
- `InMemoryGallery`, the default: one per visitor session (the app keeps it in gr.State), gone when the
  session ends, so visitors never see each other's people. It survives `copy.deepcopy` (Gradio copies
  State values) and an empty one costs a few hundred bytes.
- `SqliteGallery(path)` (pipeline/gallery_databases.py), for an operator who wants a persistent gallery shared by every visitor:
  stdlib sqlite3 in WAL mode, one transaction per change, embeddings as float32 blobs. Safe across threads
  (one lock per object) and processes (SQLite locking; each process follows the others' commits).
- `PostgresGallery(url)`, the same shared gallery on PostgreSQL for several app replicas (psycopg 3): each
  replica keeps its own index and follows the others' commits through LISTEN/NOTIFY and a change counter.
  Both database galleries share their statements and catch-up logic (`_DatabaseGallery`).

Every gallery searches its own in-memory index (pipeline/search_index.py); a person's score is the max over
their embeddings.
"""

from __future__ import annotations

import copy
import os
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from typing import ContextManager, Literal

import numpy as np

from .errors import FaceLabError, InvalidNameError
from .search_index import EMBEDDING_SIZE, SearchIndex
from .settings import current as current_settings

MAX_NAME_LENGTH = 64
MAX_THUMBNAIL_BYTES = 64 * 1024

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


@dataclass(frozen=True)
class Candidate:
    """A search hit: a person and the cosine similarity of their best-matching embedding."""

    name: str
    similarity: float


def normalize_name(name: object) -> str:
    """A person's name as stored: NFC unicode, trimmed, inner whitespace collapsed to one space.

    Raises InvalidNameError for empty names, names over 64 characters and names with control characters.
    HTML is kept as text ("<b>Bob</b>" is a valid name); the UI escapes it where it shows it.
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


class Gallery:
    """The interface the app uses. Subclasses store people; this class holds the search index."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._index = SearchIndex()
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
        with self._access():
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

    # -- storage hooks (subclasses) -------------------------------------------------------------------
    def _access(self) -> ContextManager[object]:
        """Held around every public operation: the lock (one operation at a time per object); a database
        gallery also (re)connects here and turns a lost connection into a message."""
        return self._lock

    def _sync(self) -> None:
        """Catch up with changes made elsewhere (other processes). Nothing to do in memory."""

    def _add(self, name: str, vectors: np.ndarray, thumbnail: bytes | None, backbone: str | None) -> None:
        raise NotImplementedError

    def _people(self) -> list[Person]:
        raise NotImplementedError

    def _person(self, name: str) -> Person | None:
        raise NotImplementedError

    def _person_id(self, name: str) -> int | None:
        raise NotImplementedError

    def _delete(self, person_id: int) -> None:
        raise NotImplementedError

    def _clear(self) -> None:
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------------------------------
    def _check_backbone(self, backbone: str | None) -> None:
        # Embeddings of different backbones are not comparable: refuse to mix them rather than mismatch.
        if backbone and self.backbone and backbone != self.backbone and self._names:
            raise GalleryError(
                f"This gallery holds {self.backbone} embeddings but faces are now embedded with {backbone}; "
                f"they cannot be compared. Clear the gallery and enroll again, or switch the backbone back."
            )


class InMemoryGallery(Gallery):
    """One visitor's gallery, in this process's memory only. Cheap to create and to deep-copy.

    It holds at most `max_embeddings` embeddings (None: no bound); by default as many as the settings say when
    one is added (FACELAB_SESSION_GALLERY_MAX, a per-visitor bound on server memory: 2 kB per embedding)."""

    def __init__(self, max_embeddings: int | None | Literal["setting"] = "setting") -> None:
        super().__init__()
        self._max_embeddings = max_embeddings
        self._thumbnails: dict[int, bytes | None] = {}
        self._counts: dict[int, int] = {}  # embeddings per person
        self._by_name: dict[str, int] = {}
        self._next_id = 1

    @property
    def max_embeddings(self) -> int | None:
        if self._max_embeddings == "setting":
            return current_settings().session_gallery_max
        return self._max_embeddings

    def _person_id(self, name: str) -> int | None:
        return self._by_name.get(name)

    def _add(self, name: str, vectors: np.ndarray, thumbnail: bytes | None, backbone: str | None) -> None:
        limit = self.max_embeddings
        if limit is not None and self._index.size + len(vectors) > limit:
            raise GalleryError(f"This session's gallery is full ({limit} face embeddings). Delete someone first.")
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

    def _delete(self, person_id: int) -> None:
        self._index.remove_owners([person_id])
        del self._by_name[self._names.pop(person_id)], self._thumbnails[person_id], self._counts[person_id]

    def _clear(self) -> None:
        self._index = SearchIndex()
        self._names.clear(), self._by_name.clear(), self._thumbnails.clear(), self._counts.clear()
        self.backbone = None

    def __deepcopy__(self, memo: dict) -> "InMemoryGallery":
        # Gradio deep-copies State values; locks cannot be copied, so build a fresh one.
        with self._lock:
            clone = InMemoryGallery(self._max_embeddings)
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


def open_gallery(path: str | os.PathLike | None = None) -> Gallery:
    """The shared gallery named by `path` or FACELAB_GALLERY when set (a postgresql:// URL: PostgreSQL;
    anything else: an SQLite file), else a fresh in-memory one."""
    path = path or current_settings().gallery
    if not path:
        return InMemoryGallery()
    from .gallery_databases import PostgresGallery, SqliteGallery, is_postgres_url  # they build on this module

    return PostgresGallery(str(path)) if is_postgres_url(str(path)) else SqliteGallery(path)
