"""Crash-safety harness for the shared SQLite gallery (pipeline.gallery.SqliteGallery).

Worker processes run enrollment loops on one database file and acknowledge each enrollment (over a
pipe) only after `gallery.add` returned, i.e. after its transaction committed. The harness SIGKILLs
them at random moments (while opening the file, mid-transaction, between transactions), then checks
that the database still opens, passes SQLite's integrity check, and holds every acknowledged
enrollment with its exact embedding. Used by tests/test_hardening_gallery.py (a few kills) and
benchmarks/reliability.py (100 kills).

Workers are forked from a forkserver that has imported the pipeline once, so a kill run costs
milliseconds instead of a fresh interpreter importing torch.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

EMBEDDING_SIZE = 512


def embedding_for(name: str, copy: int = 0) -> np.ndarray:
    """The embedding a worker enrolls under `name` (its `copy`-th one): deterministic, so it can be checked."""
    seed = int.from_bytes(f"{name}/{copy}".encode()[-32:].ljust(32, b"\0"), "little") % 2**63
    vector = np.random.default_rng(seed).standard_normal(EMBEDDING_SIZE).astype(np.float32)
    return vector / np.linalg.norm(vector)


def _enroll_loop(path: str, worker: str, conn, shared_every: int, limit: int) -> None:
    """Enroll `worker-i` for i = 0, 1, ... and, every `shared_every`, one more embedding of "Shared"."""
    from pipeline.gallery_databases import SqliteGallery

    gallery = SqliteGallery(path)
    conn.send(("open", worker))
    for index in range(limit):
        name = f"{worker}-{index}"
        gallery.add(name, embedding_for(name))
        conn.send(("ack", name))  # only after add() returned: the transaction is committed
        if shared_every and index % shared_every == 0:
            person = gallery.add("Shared", embedding_for(name, copy=1))
            conn.send(("shared", name, person.embeddings))
    conn.send(("done", worker))
    conn.close()


@dataclass
class KillReport:
    runs: int = 0  # processes killed
    acknowledged: int = 0  # enrollments acknowledged by those processes before they died
    lost: int = 0  # acknowledged enrollments missing (or altered) in the database afterwards
    opened: int = 0  # times the database was re-opened after a kill round, all of which must succeed
    integrity_failures: int = 0
    stale_reader: int = 0  # times a long-lived reader's view differed from a fresh open
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"runs": self.runs, "acknowledged": self.acknowledged, "lost": self.lost, "reopened": self.opened,
                "integrity_failures": self.integrity_failures, "stale_reader": self.stale_reader}


def _context():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pipeline.gallery", "numpy"])
    return context


def _drain(conn, messages: list) -> None:
    try:
        while conn.poll(0):
            messages.append(conn.recv())
    except (EOFError, OSError):
        pass


def stored_vectors(path: Path) -> dict[str, list[bytes]]:
    """name -> raw float32 blobs, read straight from the file with sqlite3 (not through the class under test)."""
    db = sqlite3.connect(path, timeout=30)
    try:
        rows = db.execute("SELECT p.name, e.vector FROM people p JOIN embeddings e ON e.person_id = p.id").fetchall()
    finally:
        db.close()
    found: dict[str, list[bytes]] = {}
    for name, vector in rows:
        found.setdefault(name, []).append(bytes(vector))
    return found


def integrity(path: Path) -> str:
    db = sqlite3.connect(path, timeout=30)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def run_kills(path: Path, kills: int, workers_per_round: int = 3, max_delay_s: float = 0.6,
              seed: int = 0, deadline_s: float = 600) -> KillReport:
    """Kill `kills` workers in rounds of `workers_per_round` concurrent ones; check the file after each round."""
    from pipeline.gallery_databases import SqliteGallery

    rng = random.Random(seed)
    context = _context()
    report = KillReport()
    acknowledged: dict[str, np.ndarray] = {}
    shared_acks = 0
    reader = SqliteGallery(path)  # a long-lived reader: must follow every other process's commits
    started = time.monotonic()
    round_number = 0
    while report.runs < kills and time.monotonic() - started < deadline_s:
        round_number += 1
        batch = min(workers_per_round, kills - report.runs)
        procs = []
        for slot in range(batch):
            parent, child = context.Pipe(duplex=False)
            worker = f"r{round_number}w{slot}"
            process = context.Process(target=_enroll_loop, args=(str(path), worker, child, 3, 100_000), daemon=True)
            process.start()
            child.close()
            procs.append((process, parent, rng.uniform(0.0, max_delay_s), []))
        begun = time.monotonic()
        for process, parent, delay, messages in sorted(procs, key=lambda p: p[2]):
            while time.monotonic() - begun < delay:
                _drain(parent, messages)
                time.sleep(0.002)
            os.kill(process.pid, signal.SIGKILL)
        for process, parent, _, messages in procs:
            process.join(10)
            _drain(parent, messages)
            parent.close()
            report.runs += 1
            for message in messages:
                if message[0] == "ack":
                    acknowledged[message[1]] = embedding_for(message[1])
                elif message[0] == "shared":
                    acknowledged[f"Shared<-{message[1]}"] = embedding_for(message[1], copy=1)
                    shared_acks += 1
        # The file must open (through the class and raw sqlite3) and hold every acknowledged enrollment.
        try:
            fresh = SqliteGallery(path)
            report.opened += 1
        except Exception as exc:  # noqa: BLE001 - any failure to open is the finding
            report.problems.append(f"round {round_number}: the gallery did not open: {exc}")
            continue
        check = integrity(path)
        if check != "ok":
            report.integrity_failures += 1
            report.problems.append(f"round {round_number}: integrity_check says {check}")
        stored = stored_vectors(path)
        for key, vector in acknowledged.items():
            name = "Shared" if key.startswith("Shared<-") else key
            # The gallery re-normalises what it stores, so compare values (to float32 rounding), not bytes.
            candidates = [np.frombuffer(blob, "<f4") for blob in stored.get(name, [])]
            if not any(np.allclose(candidate, vector, atol=1e-6) for candidate in candidates):
                report.lost += 1
                report.problems.append(f"round {round_number}: acknowledged {key} is missing")
        acknowledged_shared = shared_acks
        if len(stored.get("Shared", [])) < acknowledged_shared:
            report.problems.append(f"round {round_number}: Shared has {len(stored.get('Shared', []))} embeddings, "
                                   f"{acknowledged_shared} were acknowledged")
        if (len(reader), reader.embedding_count) != (len(fresh), fresh.embedding_count):
            report.stale_reader += 1
            report.problems.append(f"round {round_number}: long-lived reader sees {len(reader)} people / "
                                   f"{reader.embedding_count} embeddings, a fresh open {len(fresh)} / {fresh.embedding_count}")
        fresh.close()
    report.acknowledged = len(acknowledged)
    reader.close()
    return report


def _count_loop(path: str, worker: str, adds: int, conn) -> None:
    from pipeline.gallery_databases import SqliteGallery

    gallery = SqliteGallery(path)
    for index in range(adds):
        gallery.add("Everyone", embedding_for(f"{worker}-shared", copy=index))
        gallery.add(f"{worker}", embedding_for(worker, copy=index))
    conn.send((len(gallery), gallery.embedding_count))
    conn.close()


def concurrent_writers(path: Path, processes: int = 4, adds: int = 25, timeout_s: float = 300) -> dict:
    """`processes` processes each add `adds` embeddings to one shared person and `adds` to their own, at once.

    Returns the counts found afterwards and what each process saw at its end; no update may be lost.
    """
    from pipeline.gallery_databases import SqliteGallery

    SqliteGallery(path).close()  # create the schema once, so the workers race on data, not on set-up
    context = _context()
    procs = []
    for index in range(processes):
        parent, child = context.Pipe(duplex=False)
        process = context.Process(target=_count_loop, args=(str(path), f"writer{index}", adds, child), daemon=True)
        process.start()
        child.close()
        procs.append((process, parent))
    finals = []
    for process, parent in procs:
        if parent.poll(timeout_s):
            finals.append(parent.recv())
        process.join(30)
        if process.is_alive():
            process.kill()
    gallery = SqliteGallery(path)
    people = {person.name: person.embeddings for person in gallery.people()}
    gallery.close()
    return {"people": people, "exit_codes": [p.exitcode for p, _ in procs], "finals": finals}
