"""The shared SQLite gallery survives kill -9 and concurrent writers (issue 6, item 4).

Worker processes enroll in loops and acknowledge each enrollment after it committed; they are SIGKILLed
at random moments. Afterwards the database must open, pass SQLite's integrity check and hold every
acknowledged enrollment with its exact embedding. CI kills 15 workers; `python -m benchmarks.reliability`
kills 100. Embeddings are deterministic pseudo-random unit vectors: what is under test is the storage,
not the face model.
"""

from __future__ import annotations

import pytest

from benchmarks.gallery_kill import concurrent_writers, embedding_for, integrity, run_kills, stored_vectors

pytest.importorskip("pipeline.gallery")
from pipeline.gallery_databases import SqliteGallery  # noqa: E402

CI_KILLS = 15


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_acknowledged_enrollments_survive_sigkill(tmp_path) -> None:
    path = tmp_path / "gallery.sqlite"
    report = run_kills(path, kills=CI_KILLS, workers_per_round=3, seed=6, deadline_s=240)
    assert report.runs == CI_KILLS
    assert report.acknowledged > CI_KILLS, "the workers should have enrolled people before being killed"
    assert report.problems == []
    assert report.lost == 0 and report.integrity_failures == 0 and report.stale_reader == 0
    # And the file is still a working gallery: search finds an acknowledged person by their embedding.
    gallery = SqliteGallery(path)
    some_name = next(name for name in stored_vectors(path) if name != "Shared")
    assert gallery.search(embedding_for(some_name), k=1)[0].name == some_name
    gallery.add("After the crashes", embedding_for("after"))
    assert "After the crashes" in gallery
    gallery.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_concurrent_writers_lose_no_update(tmp_path) -> None:
    path = tmp_path / "gallery.sqlite"
    processes, adds = 4, 25
    result = concurrent_writers(path, processes=processes, adds=adds)
    assert result["exit_codes"] == [0] * processes
    assert result["people"]["Everyone"] == processes * adds
    for index in range(processes):
        assert result["people"][f"writer{index}"] == adds
    # Each writer's own view, taken when it finished, already held its own writes and the shared person.
    for people, embeddings in result["finals"]:
        assert people >= 2 and embeddings >= 2 * adds
    assert integrity(path) == "ok"


def test_a_corrupt_gallery_file_gets_a_clear_message(tmp_path) -> None:
    from pipeline.gallery import GalleryError

    path = tmp_path / "gallery.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(GalleryError, match="cannot be opened"):
        SqliteGallery(path)
