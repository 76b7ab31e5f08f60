"""The shared galleries an operator can configure (FACELAB_GALLERY): `SqliteGallery` (a file, one server) and
`PostgresGallery` (several app replicas). Both share their statements, the schema version check and the
incremental catch-up of the search index with other processes' commits (`_DatabaseGallery`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import ContextManager, Iterator

import numpy as np

from .gallery import Gallery, GalleryError, Person
from .search_index import EMBEDDING_SIZE, SearchIndex

log = logging.getLogger(__name__)

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
        self._committed = False  # whether the current operation's change is committed (for its error message)

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
    def _unusable(self, error: BaseException, where: str) -> GalleryError:
        """The visitor's message for a database error an operation ran into (a full disk, a read-only or locked
        database); the operator's log has `where` (the file or server). Whether the change was saved depends on
        when it failed: before its commit nothing was, after it (reading the gallery back) it was."""
        reason = _reason(error)
        log.error("shared gallery %s: %s: %s", where, type(error).__name__, reason)
        self._seen = None  # read the database again at the next access, whatever this one left half done
        outcome = ("your change was saved, but the gallery could not be read back" if self._committed
                   else "nothing was changed")
        return GalleryError(f"The shared gallery cannot be used right now ({reason}); {outcome}. Try again later; "
                            "the server's operator can see why in its log.")

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
        self._index, self._names, self._last_embedding_id, self._seen = SearchIndex(), {}, 0, None

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

    _PEOPLE = ("SELECT p.name, COUNT(e.id), p.thumbnail FROM people p LEFT JOIN embeddings e ON e.person_id = p.id "
               "{where} GROUP BY p.id")

    def _people(self) -> list[Person]:
        rows = self._execute(self._PEOPLE.format(where="")).fetchall()
        return [Person(name, count, _bytes(thumbnail)) for name, count, thumbnail in rows]

    def _person(self, name: str) -> Person | None:
        row = self._execute(self._PEOPLE.format(where="WHERE p.name = ?"), (name,)).fetchone()
        return Person(row[0], row[1], _bytes(row[2])) if row else None

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
    def _access(self) -> Iterator[None]:
        # A full disk, a file made read-only or locked by another program past the 30 s busy timeout
        # (OperationalError): the visitor reads why, not a traceback. Misuse (a closed connection:
        # ProgrammingError) stays a bug.
        with self._lock:
            self._committed = False
            try:
                yield
            except sqlite3.OperationalError as exc:
                raise self._unusable(exc, str(self.path)) from None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        # BEGIN IMMEDIATE takes the write lock up front, so two writers queue instead of failing halfway.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
            self._committed = True
        except BaseException:
            # SQLite rolls back by itself on some errors (a full disk, I/O); a failed COMMIT may leave it open.
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            if self._db.in_transaction:  # not after SQLite rolled back by itself (I/O error): that hid the reason
                self._db.execute("COMMIT")

    def _change_marker(self) -> object:
        return self._db.execute("PRAGMA data_version").fetchone()[0]  # changes when another connection commits


# psycopg errors that may mean the connection is gone (server restarted, network): reconnect, do not crash.
# OperationalError also covers a healthy connection's failures (a full disk, a timeout, a deadlock); those,
# and a database made read-only or whose rights were taken away, are a message instead (`_access`).
def _connection_errors() -> tuple[type[BaseException], ...]:
    import psycopg

    return psycopg.OperationalError, psycopg.InterfaceError


def _refusal_errors() -> tuple[type[BaseException], ...]:
    from psycopg import errors

    return errors.ReadOnlySqlTransaction, errors.InsufficientPrivilege


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
        except _refusal_errors() as exc:  # a read-only replica, or a role that may not create the tables
            raise GalleryError(f"The shared gallery's database {_redacted(url)} refuses to hold a gallery: "
                               f"{_reason(exc)}") from None
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
                        _reason(error))
        self._db.close()

    @contextlib.contextmanager
    def _access(self) -> Iterator[None]:
        errors = _connection_errors()
        with self._lock:
            if (self._db.closed or self._db.broken) and time.monotonic() - self._last_attempt > 1.0:
                self._last_attempt = time.monotonic()  # at most one attempt a second while it is away
                try:
                    self._open()
                except (*errors, *_refusal_errors()) as exc:
                    self._connection_lost(exc)  # go on: a search can still answer from the index
            self._committed = False
            try:
                yield
            except errors as exc:
                if not (self._db.closed or self._db.broken):
                    raise self._unusable(exc, _redacted(self.url)) from None  # the transaction was rolled back
                self._connection_lost(exc)
                raise GalleryError("The shared gallery's database cannot be reached right now; "
                                   "try again in a moment.") from None
            except _refusal_errors() as exc:
                raise self._unusable(exc, _redacted(self.url)) from None

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
        self._committed = True

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
            # The database is away (or slow: a timeout): answer from the index we have (a search still works);
            # a lost connection is re-opened, and the index reloaded, at the next access.
            if self._db.closed or self._db.broken:
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


def _reason(error: BaseException) -> str:
    """A database error's first line, for a message or the log (its class name where it says nothing)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _redacted(url: str) -> str:
    return re.sub(r"://([^:@/]*):[^@/]*@", r"://\1:***@", url)  # never log a password


def is_postgres_url(value: str) -> bool:
    return value.startswith(("postgresql://", "postgres://"))
