"""Galleries: isolation between sessions, persistence, delete, concurrency, crash safety, names.

Embeddings are real: a handful of real photos embedded once by the real casia model.
"""

from __future__ import annotations

import contextlib
import copy
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from shared_data import REPO_ROOT, central_face, lfw_people
from pipeline.errors import InvalidNameError
from pipeline.gallery import MAX_NAME_LENGTH, GalleryError, InMemoryGallery, normalize_name, open_gallery
from pipeline.gallery_databases import PostgresGallery, SqliteGallery

PEOPLE = ["George_W_Bush", "Colin_Powell", "Tony_Blair", "Serena_Williams", "Gerhard_Schroeder", "Laura_Bush"]


@pytest.fixture(scope="module")
def faces(lab) -> dict[str, np.ndarray]:
    """name -> (2, 512): embeddings of two different LFW pictures of that person."""
    people = lfw_people(min_images=2)
    return {
        name: np.stack([central_face(lab.analyze(path, embed=True)).embedding for path in people[name][:2]])
        for name in PEOPLE
    }


def enroll_all(gallery, faces, names=PEOPLE) -> None:
    for name in names:
        gallery.add(name.replace("_", " "), faces[name][0])


KINDS = ["memory", "sqlite", "postgres"]


@pytest.fixture()
def make_gallery(request, tmp_path):
    """make_gallery(kind) -> a new, empty gallery of that kind; make_gallery(kind, again=True) -> a second
    object on the same storage (another process's view: its own connection and index)."""
    made = []
    storage: dict[str, object] = {}

    def make(kind: str, again: bool = False):
        if kind == "memory":
            gallery = InMemoryGallery()
        elif kind == "sqlite":
            gallery = SqliteGallery(tmp_path / "g.db")
        else:
            if "url" not in storage or not again:
                storage["url"] = request.getfixturevalue("postgres_server").create_database()
            gallery = PostgresGallery(storage["url"])
        made.append(gallery)
        return gallery

    yield make
    for gallery in made:
        if hasattr(gallery, "close"):
            gallery.close()


def best(gallery, vector) -> str | None:
    hits = gallery.search(vector, k=3)
    return hits[0].name if hits else None


@pytest.mark.parametrize("kind", KINDS)
def test_second_picture_finds_the_enrolled_person(kind, faces, make_gallery) -> None:
    gallery = make_gallery(kind)
    enroll_all(gallery, faces)
    for name in PEOPLE:
        hits = gallery.search(faces[name][1], k=3)
        assert hits[0].name == name.replace("_", " "), hits
        assert len(hits) == 3 and hits[0].similarity > hits[1].similarity >= hits[2].similarity


def test_sessions_are_isolated_including_gradio_state_copies(faces) -> None:
    # gr.State deep-copies its initial value for every session.
    template = InMemoryGallery()
    alice_session, bob_session = copy.deepcopy(template), copy.deepcopy(template)
    enroll_all(alice_session, faces, PEOPLE[:3])
    assert len(alice_session) == 3
    assert len(bob_session) == 0 and len(template) == 0
    assert bob_session.search(faces[PEOPLE[0]][1]) == []
    # A copy of a filled gallery is independent too.
    copied = copy.deepcopy(alice_session)
    copied.delete(PEOPLE[0].replace("_", " "))
    assert len(copied) == 2 and len(alice_session) == 3
    assert best(alice_session, faces[PEOPLE[0]][1]) == PEOPLE[0].replace("_", " ")


def test_open_gallery_is_private_unless_configured(monkeypatch, tmp_path, faces) -> None:
    from pipeline.settings import current as current_settings

    monkeypatch.delenv("FACELAB_GALLERY", raising=False)
    first, second = open_gallery(), open_gallery()
    first.add("Someone", faces[PEOPLE[0]][0])
    assert isinstance(second, InMemoryGallery) and len(second) == 0
    monkeypatch.setenv("FACELAB_GALLERY", str(tmp_path / "shared.db"))
    current_settings.cache_clear()  # settings are read once per process: this stands for a new one
    shared_a, shared_b = open_gallery(), open_gallery()
    shared_a.add("Someone", faces[PEOPLE[0]][0])
    assert isinstance(shared_b, SqliteGallery) and [p.name for p in shared_b.people()] == ["Someone"]


def stored_vector_bytes(gallery) -> bytes:
    """One embedding as the database holds it, read with the driver directly (not through the gallery)."""
    if isinstance(gallery, SqliteGallery):
        return bytes(sqlite3.connect(gallery.path).execute("SELECT vector FROM embeddings LIMIT 1").fetchone()[0])
    import psycopg

    with psycopg.connect(gallery.url) as connection:
        return bytes(connection.execute("SELECT vector FROM facelab.embeddings LIMIT 1").fetchone()[0])


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_persistence_round_trip(kind, make_gallery, faces) -> None:
    gallery = make_gallery(kind)
    enroll_all(gallery, faces)
    gallery.add("George W Bush", faces["George_W_Bush"][1], backbone="casia-webface")
    gallery.close()

    reopened = make_gallery(kind, again=True)
    people = {p.name: p.embeddings for p in reopened.people()}
    assert people["George W Bush"] == 2 and len(people) == len(PEOPLE)
    assert reopened.embedding_count == len(PEOPLE) + 1 and reopened.backbone == "casia-webface"
    assert len(stored_vector_bytes(reopened)) == 512 * 4  # float32 blobs / bytea

    # The reopened database answers as a visitor's in-memory gallery of the same people does.
    session = InMemoryGallery()
    enroll_all(session, faces)
    for name in PEOPLE:
        assert best(session, faces[name][1]) == best(reopened, faces[name][1]) == name.replace("_", " ")


def test_a_full_disk_is_a_message_and_the_gallery_goes_on(make_gallery, faces, caplog) -> None:
    """SQLite's own errors (here "database or disk is full": the file may not grow by a page, as on a full disk)
    reached the visitor as a traceback (and SQLite's own rollback made ours fail, hiding the reason); now a
    GalleryError says what happened, nothing is half-written, and the people already there are still listed
    and found."""
    gallery = make_gallery("sqlite")
    gallery.add("Tony Blair", faces["Tony_Blair"][0])
    pages = gallery._db.execute("PRAGMA page_count").fetchone()[0]
    gallery._db.execute(f"PRAGMA max_page_count = {pages}")  # this connection may not grow the file any more
    with pytest.raises(GalleryError, match=r"cannot be used right now \(database or disk is full\); nothing was changed"):
        for name in PEOPLE:  # a few rows fit in the last page's free space; sooner or later one does not
            gallery.add(name.replace("_", " ") + " 2", faces[name][0])
    assert any(str(gallery.path) in record.getMessage() for record in caplog.records)
    names = [person.name for person in gallery.people()]
    assert "Tony Blair" in names and all(gallery.person(name).embeddings == 1 for name in names)
    assert best(gallery, faces["Tony_Blair"][1]) == "Tony Blair"
    assert len(gallery.sample(10)[0]) == gallery.embedding_count == len(names)


def test_a_failure_after_the_commit_says_the_change_was_saved(make_gallery, faces, monkeypatch) -> None:
    """Reading the gallery back after a commit can fail too (an I/O error, after which SQLite rolls back the read
    by itself): the visitor was told "nothing was changed" while the person was stored, the search then missed
    them until someone else wrote, and the read's own COMMIT failed and hid the reason. Fault injected at the
    read-back, the one place a test cannot make a real disk fail on cue."""
    gallery = make_gallery("sqlite")
    gallery.add("Tony Blair", faces["Tony_Blair"][0])
    statement = gallery._execute
    failures = iter([True])

    def read_back_fails_once(query: str, params: tuple = ()):
        if query.startswith("SELECT id, name FROM people") and next(failures, False):
            gallery._db.execute("ROLLBACK")  # what SQLite does by itself on SQLITE_IOERR
            raise sqlite3.OperationalError("disk I/O error")
        return statement(query, params)

    monkeypatch.setattr(gallery, "_execute", read_back_fails_once)
    with pytest.raises(GalleryError, match=r"\(disk I/O error\); your change was saved, but the gallery could not "
                                           r"be read back"):
        gallery.add("George W Bush", faces["George_W_Bush"][0])
    assert [person.name for person in gallery.people()] == ["George W Bush", "Tony Blair"]
    assert best(gallery, faces["George_W_Bush"][1]) == "George W Bush"  # the index caught up at once


def test_a_busy_postgres_gallery_is_a_message_not_a_lost_connection(make_gallery, postgres_server, faces) -> None:
    """Another replica holds the writers' lock past this session's lock timeout (PostgreSQL's OperationalError, as a
    full disk is): it was taken for a lost connection, the healthy connection closed and the visitor told the
    database could not be reached. Now it says what happened, nothing is written, and the next try succeeds."""
    import psycopg

    gallery = make_gallery("postgres")
    gallery.add("Tony Blair", faces["Tony_Blair"][0])
    gallery._db.execute("SET lock_timeout = '200ms'")  # an operator's setting; the default waits for ever
    with psycopg.connect(gallery.url) as other:  # a transaction left open on the writers' row
        other.execute("SELECT counter FROM facelab.changes WHERE id = 1 FOR UPDATE")
        with pytest.raises(GalleryError, match=r"cannot be used right now \(canceling statement due to lock "
                                               r"timeout\); nothing was changed"):
            gallery.add("George W Bush", faces["George_W_Bush"][0])
        assert not gallery._db.closed
    gallery.add("George W Bush", faces["George_W_Bush"][0])
    assert stored_names(gallery) == {"Tony Blair", "George W Bush"}


def test_a_read_only_postgres_gallery_is_a_message(make_gallery, faces) -> None:
    """A database made read-only (a promoted replica, default_transaction_read_only) answered a change with a
    generic apology and a traceback in the log; searches still work from what is there."""
    gallery = make_gallery("postgres")
    gallery.add("Tony Blair", faces["Tony_Blair"][0])
    gallery._db.execute("SET default_transaction_read_only = on")  # as ALTER DATABASE ... sets for new sessions
    with pytest.raises(GalleryError, match=r"\(cannot execute UPDATE in a read-only transaction\); nothing was "
                                           r"changed"):
        gallery.add("George W Bush", faces["George_W_Bush"][0])
    assert best(gallery, faces["Tony_Blair"][1]) == "Tony Blair" and len(gallery) == 1


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_gallery_from_a_newer_schema_is_refused(kind, make_gallery) -> None:
    gallery = make_gallery(kind)
    gallery.close()
    statement = "UPDATE {}meta SET value = '99' WHERE key = 'schema_version'"
    if kind == "sqlite":
        with sqlite3.connect(gallery.path) as connection:
            connection.execute(statement.format(""))
    else:
        import psycopg

        with psycopg.connect(gallery.url, autocommit=True) as connection:
            connection.execute(statement.format("facelab."))
    with pytest.raises(GalleryError, match="newer Face Lab"):
        make_gallery(kind, again=True)


def test_open_gallery_takes_a_postgresql_url(monkeypatch, postgres_url, faces) -> None:
    monkeypatch.setenv("FACELAB_GALLERY", postgres_url)
    shared_a, shared_b = open_gallery(), open_gallery()
    try:
        shared_a.add("Someone", faces[PEOPLE[0]][0])
        assert isinstance(shared_b, PostgresGallery) and [p.name for p in shared_b.people()] == ["Someone"]
    finally:
        shared_a.close(), shared_b.close()


def test_postgres_gallery_outlives_a_database_restart(postgres_server, postgres_url, faces, caplog) -> None:
    """The database restarts under a replica: searches go on from the index, a change made during the
    outage gets a message, and afterwards the replica reconnects, says so in its log, and works."""
    gallery = PostgresGallery(postgres_url)
    try:
        enroll_all(gallery, faces, PEOPLE[:3])
        postgres_server.stop()
        try:
            with caplog.at_level("WARNING", logger="pipeline.gallery"):
                assert best(gallery, faces[PEOPLE[0]][1]) == PEOPLE[0].replace("_", " ")  # from memory
                with pytest.raises(GalleryError, match="cannot be reached"):
                    gallery.add("During the outage", faces["Laura_Bush"][0])
        finally:
            postgres_server.launch()
        with caplog.at_level("WARNING", logger="pipeline.gallery"):
            deadline = time.monotonic() + 30
            while True:
                try:
                    gallery.add("Laura Bush", faces["Laura_Bush"][0])
                    break
                except GalleryError:
                    assert time.monotonic() < deadline, "no reconnection within 30 s"
                    time.sleep(0.2)
        assert "lost the connection" in caplog.text and "reconnected" in caplog.text
        assert best(gallery, faces["Laura_Bush"][1]) == "Laura Bush" and "During the outage" not in gallery
        assert len(gallery) == 4
    finally:
        gallery.close()


def test_deleted_person_leaves_no_face_data_in_the_database_file(faces, tmp_path) -> None:
    path = tmp_path / "g.db"
    gallery = SqliteGallery(path)
    enroll_all(gallery, faces)
    secret_thumbnail = b"\xff\xd8 a thumbnail only Colin has \xff\xd9"
    gallery.add("Colin Powell", faces["Colin_Powell"][1], thumbnail=secret_thumbnail)
    # The embeddings exactly as the gallery stores them (it re-normalises what it is given).
    with contextlib.closing(sqlite3.connect(path)) as database:  # closed: an open reader would keep the WAL
        stored_as = {name: [bytes(vector)] for name, vector in database.execute(
            "SELECT p.name, e.vector FROM people p JOIN embeddings e ON e.person_id = p.id")}
    gallery.delete("Colin Powell")
    gallery.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("g.db"))
    assert all(row[:64] not in stored for row in stored_as["Colin Powell"]) and secret_thumbnail not in stored
    assert stored_as["Tony Blair"][0][:64] in stored  # the check can see embeddings


@pytest.mark.parametrize("kind", KINDS)
def test_delete_removes_a_person_from_results(kind, faces, make_gallery) -> None:
    gallery = make_gallery(kind)
    enroll_all(gallery, faces)
    gallery.add("Colin Powell", faces["Colin_Powell"][1])
    assert gallery.delete("Colin Powell") is True
    assert gallery.delete("Colin Powell") is False
    hits = gallery.search(faces["Colin_Powell"][1], k=len(PEOPLE))
    assert "Colin Powell" not in [hit.name for hit in hits] and len(hits) == len(PEOPLE) - 1
    # The others are still found (rows moved into the holes keep their owners).
    for name in PEOPLE:
        if name != "Colin_Powell":
            assert best(gallery, faces[name][1]) == name.replace("_", " ")
    gallery.clear()
    assert len(gallery) == 0 and gallery.search(faces["Tony_Blair"][1]) == []


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_another_process_sees_changes(kind, faces, make_gallery) -> None:
    writer, reader = make_gallery(kind), make_gallery(kind, again=True)
    enroll_all(writer, faces)
    assert best(reader, faces["Laura_Bush"][1]) == "Laura Bush"
    writer.delete("Laura Bush")
    assert best(reader, faces["Laura_Bush"][1]) != "Laura Bush"
    assert len(reader) == len(PEOPLE) - 1


@pytest.mark.parametrize("kind", KINDS)
def test_eight_threads_enrolling_at_once_are_all_stored(kind, faces, make_gallery) -> None:
    gallery = make_gallery(kind)
    vectors = [v for name in PEOPLE for v in faces[name]]
    start = threading.Barrier(8)
    errors = []

    def worker(index: int) -> None:
        try:
            start.wait()
            for round_ in range(10):
                gallery.add(f"thread {index}", vectors[(index + round_) % len(vectors)])
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert {p.name: p.embeddings for p in gallery.people()} == {f"thread {i}": 10 for i in range(8)}
    assert gallery.embedding_count == 80
    if kind != "memory":
        assert make_gallery(kind, again=True).embedding_count == 80


WRITER = """
import sys, numpy as np
from pipeline.gallery import open_gallery
gallery = open_gallery(sys.argv[1])  # an SQLite path or a postgresql:// URL
vectors = np.load(sys.argv[2])
for i in range(100000):
    gallery.add(f"person {i}", vectors[i % len(vectors)])
    print(i, flush=True)  # printed only after the commit returned
"""


def stored_names(gallery) -> set[str]:
    """The names the database holds, read with the driver directly; SQLite's file must also pass its check."""
    if isinstance(gallery, SqliteGallery):
        connection = sqlite3.connect(gallery.path)
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {row[0] for row in connection.execute("SELECT name FROM people")}
    import psycopg

    with psycopg.connect(gallery.url) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM facelab.people")}


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_sigkill_mid_enrollment_keeps_every_committed_row(kind, make_gallery, tmp_path, faces) -> None:
    gallery = make_gallery(kind)  # creates the storage; the writer process opens it too
    vectors = tmp_path / "v.npy"
    np.save(vectors, np.concatenate(list(faces.values())))
    where = str(gallery.path) if kind == "sqlite" else gallery.url
    process = subprocess.Popen([sys.executable, "-c", WRITER, where, str(vectors)],
                               cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    committed = -1
    deadline = time.monotonic() + 120
    while committed < 30 and time.monotonic() < deadline:
        committed = int(process.stdout.readline())
    process.send_signal(signal.SIGKILL)  # mid-way through the next enrollments
    process.wait()
    assert committed >= 30, "the writer did not get going"

    assert {f"person {i}" for i in range(committed + 1)} <= stored_names(gallery)
    reopened = make_gallery(kind, again=True)
    assert reopened.embedding_count >= committed + 1
    assert reopened.embedding_count == len(reopened)  # no half-written person
    assert gallery.embedding_count == reopened.embedding_count  # the long-lived object followed the writer
    reopened.add("after the crash", faces["Tony_Blair"][0])  # and the database is writable again
    assert reopened.person("after the crash").embeddings == 1


def test_names_refused_with_a_message() -> None:
    for bad in ("", "   ", "\t\n", "x" * (MAX_NAME_LENGTH + 1), "bad\x00name", "evil\u202eeman"):
        with pytest.raises(InvalidNameError) as error:
            normalize_name(bad)
        assert str(error.value)  # a message for the user
    assert normalize_name("x" * MAX_NAME_LENGTH) == "x" * MAX_NAME_LENGTH


def test_names_keep_html_as_text(faces) -> None:
    """A name is stored and found as typed, markup and all; the app escapes it where it shows it (test_app_api)."""
    gallery = InMemoryGallery()
    name = '<script>alert("x")</script> <b>Bob</b>'
    gallery.add(name, faces["Tony_Blair"][0])
    assert gallery.people()[0].name == name
    assert best(gallery, faces["Tony_Blair"][1]) == name


def test_names_are_unicode_normalised(faces) -> None:
    gallery = InMemoryGallery()
    gallery.add("Zoe\u0301   Saldan\u0303a ", faces["Serena_Williams"][0])  # decomposed accents, extra spaces
    gallery.add("Zo\u00e9 Salda\u00f1a", faces["Serena_Williams"][1])  # composed
    assert [(p.name, p.embeddings) for p in gallery.people()] == [("Zo\u00e9 Salda\u00f1a", 2)]
    assert "Zoe\u0301 Saldan\u0303a" in gallery


def test_embeddings_of_another_backbone_are_refused(faces) -> None:
    gallery = InMemoryGallery()
    gallery.add("Tony Blair", faces["Tony_Blair"][0], backbone="casia-webface")
    with pytest.raises(GalleryError, match="vggface2"):
        gallery.add("Tony Blair", faces["Tony_Blair"][1], backbone="vggface2")
    with pytest.raises(GalleryError):
        gallery.search(faces["Tony_Blair"][1], backbone="vggface2")


def test_session_gallery_is_bounded(faces) -> None:
    gallery = InMemoryGallery(max_embeddings=3)
    for i in range(3):
        gallery.add("Tony Blair", faces["Tony_Blair"][i % 2])
    with pytest.raises(GalleryError, match="full"):
        gallery.add("Tony Blair", faces["Tony_Blair"][0])


def test_session_gallery_bound_is_the_settings_as_they_are_now(monkeypatch) -> None:
    """FACELAB_SESSION_GALLERY_MAX changed after pipeline was imported counts once reload() read it, also in the
    sessions copied from the app's template gallery made before (the bound was read once, at import)."""
    from pipeline import settings

    template = open_gallery(None)  # the app's, made at start-up; Gradio deep-copies it for each session
    monkeypatch.setenv("FACELAB_SESSION_GALLERY_MAX", "2")
    settings.reload()
    session = copy.deepcopy(template)
    vectors = np.random.default_rng(3).standard_normal((3, 512)).astype(np.float32)
    session.add("Ada", vectors[0])
    session.add("Grace", vectors[1])
    with pytest.raises(GalleryError, match=r"full \(2 face embeddings\)"):
        session.add("Ada", vectors[2])


def test_large_gallery_search_gives_exactly_the_float32_answer() -> None:
    """Large galleries are scanned in int8 and re-scored in float32: the top 3 people and their
    scores must be exactly those of a plain float32 search, including near-ties."""
    from pipeline.search_index import QUANTISED_SCAN_MIN_ROWS

    rng = np.random.default_rng(7)
    count = QUANTISED_SCAN_MIN_ROWS + 2000
    vectors = rng.standard_normal((count, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    near_twins = vectors[:200] + 0.002 * rng.standard_normal((200, 512)).astype(np.float32)  # scores within int8 noise
    vectors = np.concatenate([vectors, near_twins / np.linalg.norm(near_twins, axis=1, keepdims=True)])
    names = [f"person {row}" for row in range(len(vectors))]
    gallery = InMemoryGallery(max_embeddings=None)
    for name, vector in zip(names, vectors):
        gallery.add(name, vector)
    assert_searches_exact(gallery, names, vectors, rng)
    # Rows added after a scan have no int8 copy yet, and deletes move the last rows (those among them)
    # into the holes: the scan copy must follow both.
    extra = rng.standard_normal((500, 512)).astype(np.float32)
    extra /= np.linalg.norm(extra, axis=1, keepdims=True)
    for row, vector in enumerate(extra):
        gallery.add(f"newcomer {row}", vector)
    doomed = set(range(0, 600, 3)) | set(range(len(vectors) - 300, len(vectors), 2))
    for row in sorted(doomed):
        gallery.delete(names[row])
    kept = [row for row in range(len(vectors)) if row not in doomed]
    assert_searches_exact(gallery, [names[row] for row in kept] + [f"newcomer {row}" for row in range(500)],
                          np.concatenate([vectors[kept], extra]), rng)


def assert_searches_exact(gallery, names: list[str], vectors: np.ndarray, rng) -> None:
    for trial in range(30):
        query = vectors[trial] + 0.3 * (trial % 3) * rng.standard_normal(512).astype(np.float32) / np.sqrt(512)
        query /= np.linalg.norm(query)
        expected = np.argsort(-(vectors @ query), kind="stable")[:3]
        found = gallery.search(query, k=3)
        assert [c.name for c in found] == [names[row] for row in expected]
        np.testing.assert_allclose([c.similarity for c in found], (vectors @ query)[expected], atol=1e-6)


def test_the_int8_scan_stays_within_its_error_bound(faces) -> None:
    """The bound that makes large-gallery search exact, checked on unit vectors of every shape: random,
    spiky (one large component: the coarsest int8 steps) and real LFW embeddings."""
    from pipeline.search_index import SearchIndex

    rng = np.random.default_rng(3)
    random = rng.standard_normal((3000, 512)).astype(np.float32)
    spiky = random[:500].copy()
    spiky[:, 0] = 40.0
    real = np.concatenate(list(faces.values()))
    vectors = np.concatenate([random, spiky, real])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = SearchIndex()
    index.append(vectors, np.arange(len(vectors)))
    queries = np.concatenate([vectors[::97], real])  # self-matches (score 1) and everything else
    error = np.abs(index.scan(queries) - queries @ vectors.T)
    assert error.max() <= index.scan_error() < 0.1, (error.max(), index.scan_error())
