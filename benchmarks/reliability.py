"""Reliability benchmark (issue 6): hostile inputs, load on loopback, kill -9 during enrollment.

    FACELAB_THREADS=1 python -m benchmarks.reliability            # 20 clients x 50 requests, 100 kills
    python -m benchmarks.reliability --clients 4 --requests 5 --kills 10   # a quick look
    python -m benchmarks.reliability --table                       # README "Reliability" table from the JSON

Writes benchmarks/results/reliability.json:
- bad_inputs_tried / bad_inputs_clean: every case of benchmarks/bad_inputs.py through the pipeline API
  (FaceLab.analyze) and through the app's API (/enroll), counted per API; clean = the expected correct
  answer or a clear message (no traceback, no hang, server alive).
- load: `python app.py` on 127.0.0.1; N gradio_client clients (one session each) x M requests mixed across
  the tabs (enroll, identify, verify, mask, emotion, people), all at once after a warm-up; errors, p50/p95
  latency, server RSS after the warm-up and after the run. Every gallery answer is also checked for
  people of another client (`leaks`). Bounded: each request has a timeout and the run a deadline.
- kill: benchmarks/gallery_kill.py: workers enrolling into one SQLite gallery are SIGKILLed at random
  moments; acknowledged enrollments that are missing afterwards count as lost.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shared_data import REPO_ROOT, SHARED_WEIGHTS_DIR, distinct_people
from pipeline.settings import reload as reload_settings
from benchmarks import machine
from benchmarks.harness import write_results

RESULTS = REPO_ROOT / "benchmarks" / "results" / "reliability.json"
EXAMPLES = REPO_ROOT / "examples"
NOT_YET = ("could not be loaded", "not part of this build", "no verification thresholds")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmRSS")


# ------------------------------------------------------------------------------------------------
# Bad inputs

def bad_inputs_pipeline(folder: Path) -> dict[str, str]:
    from benchmarks.bad_inputs import CASES
    from pipeline import FaceLabError, get_facelab

    lab = get_facelab()
    outcomes = {}
    for case in CASES:
        path = case.write(folder)
        try:
            analysis = lab.analyze(path, embed=True)
            found = len(analysis.faces) + analysis.faces_skipped
            ok = {"faces": found >= case.min_faces, "no_face": found == 0, "either": True}.get(case.expect, False)
            outcomes[case.name] = ("clean" if ok else "wrong") + f": {found} faces"
        except FaceLabError as exc:
            ok = case.expect == "refused" and re.search(case.message, str(exc))
            outcomes[case.name] = ("clean" if ok else "wrong") + f": {exc}"
        except Exception as exc:  # noqa: BLE001 - a crash is what we count
            outcomes[case.name] = f"crash: {type(exc).__name__}: {exc}"
    return outcomes


def bad_inputs_app(url: str, process, folder: Path) -> dict[str, str]:
    import urllib.request

    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from benchmarks.bad_inputs import CASES

    client = Client(url, verbose=False)
    outcomes = {}
    for case in CASES:
        path = case.write(folder)
        client.predict(api_name="/clear")
        try:
            client.submit(case.name, handle_file(str(path)), api_name="/enroll").result(timeout=300)
            message = None
        except AppError as exc:
            message = str(exc)
        except ValueError as exc:  # the client's own upload-size check; the server must refuse it too
            from benchmarks.security import raw_upload

            status, body = raw_upload(url, path.read_bytes(), path.name)
            message = f"{exc} | server: HTTP {status} {body[:120]}" if status == 413 else None
        except Exception as exc:  # noqa: BLE001 - a hang (timeout) or a dropped connection
            outcomes[case.name] = f"crash: {type(exc).__name__}: {exc}"
            continue
        enrolled = [p["name"] for p in client.predict(api_name="/people")]
        traceback = message is not None and ("Traceback" in message or 'File "' in message)
        if case.expect == "refused":
            ok = message is not None and re.search(case.message, message) and not enrolled
        elif case.expect == "faces":
            ok = message is None and enrolled == [case.name]
        elif case.expect == "no_face":
            ok = message is not None and "No face" in message and not enrolled
        else:
            ok = message is None or "No face" in message
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                alive = response.status == 200 and process.poll() is None
        except OSError:
            alive = False
        clean = bool(ok) and not traceback and alive
        outcomes[case.name] = ("clean" if clean else "wrong") + f": {message or 'enrolled'}" + ("" if alive else " (server dead)")
    client.predict(api_name="/clear")
    return outcomes


# ------------------------------------------------------------------------------------------------
# Load

def available(client, api_name: str, *args) -> bool:
    from gradio_client.exceptions import AppError

    try:
        client.submit(*args, api_name=api_name).result(timeout=300)
        return True
    except AppError as exc:
        return not any(reason in str(exc) for reason in NOT_YET)


def run_load(url: str, process, clients: int, requests: int, deadline_s: float, seed: int = 6) -> dict:
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    probe = Client(url, verbose=False)
    photo = handle_file(str(EXAMPLES / "astronaut.jpg"))
    endpoints = ["enroll", "people"]
    for name, args in (("identify", (photo, "balanced")), ("verify", (photo, photo, "balanced")),
                       ("mask", (photo,)), ("emotion", (photo,))):
        if available(probe, f"/{name}", *args):
            endpoints.append(name)
    people = distinct_people(clients)
    sessions = [Client(url, verbose=False) for _ in range(clients)]

    def one_request(index: int, kind: str, rng: random.Random) -> tuple[list[str], str]:
        client = sessions[index]
        own, first, second = people[index]
        other = people[(index + 1) % clients][rng.randrange(1, 3)]
        if kind == "enroll":
            grid, _, _ = client.submit(own, handle_file(str(rng.choice((first, second)))), api_name="/enroll").result(
                timeout=300)
            return [item.get("caption") for item in grid], kind
        if kind == "people":
            return [p["name"] for p in client.submit(api_name="/people").result(timeout=300)], kind
        if kind == "identify":
            _, table = client.submit(handle_file(str(rng.choice((second, other)))), rng.choice(("balanced", "strict")),
                                     api_name="/identify").result(timeout=300)
            return [row[1] for row in table["data"]], kind
        if kind == "verify":
            client.submit(handle_file(str(first)), handle_file(str(rng.choice((second, other)))), "balanced",
                          api_name="/verify").result(timeout=300)
            return [], kind
        picture = EXAMPLES / rng.choice(("astronaut.jpg", "astronaut_mask.jpg", "astronaut_mirror.jpg"))
        client.submit(handle_file(str(picture)), api_name=f"/{kind}").result(timeout=300)
        return [], kind

    # Warm-up: every client enrolls its person once and every endpoint runs, concurrently, so models,
    # thread pools and allocator arenas are at their working size before the baseline RSS.
    warmup_errors: list[str] = []

    def warm(index: int) -> None:
        for kind in ["enroll", *endpoints]:
            try:
                one_request(index, kind, random.Random(index))
            except Exception as exc:  # noqa: BLE001 - reported, not fatal
                warmup_errors.append(f"client {index} /{kind}: {type(exc).__name__}: {str(exc)[:200]}")

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(warm, range(clients)))
    rss_warm = rss_mb(process.pid)

    latencies: list[float] = []
    errors: list[str] = []
    leaks: list[str] = []
    lock = threading.Lock()
    started = time.monotonic()

    def visitor(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        own = people[index][0]
        for _ in range(requests):
            if time.monotonic() - started > deadline_s:
                with lock:
                    errors.append(f"client {index}: deadline reached")
                return
            kind = rng.choice(endpoints)
            begun = time.perf_counter()
            try:
                names, _ = one_request(index, kind, rng)
                elapsed = time.perf_counter() - begun
                strangers = [n for n in names if n not in (own, "unknown")]
                with lock:
                    latencies.append(elapsed)
                    if strangers:
                        leaks.append(f"client {index} ({own}) saw {strangers} in /{kind}")
            except (AppError, Exception) as exc:  # noqa: BLE001 - every failure counts as an error
                with lock:
                    latencies.append(time.perf_counter() - begun)
                    errors.append(f"client {index} /{kind}: {type(exc).__name__}: {str(exc)[:200]}")

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(visitor, range(clients)))
    wall = time.monotonic() - started
    time.sleep(2)
    rss_after = rss_mb(process.pid)
    ordered = sorted(latencies)
    return {
        "clients": clients, "requests_per_client": requests, "endpoints": endpoints,
        "requests": len(latencies), "errors": len(errors), "error_examples": errors[:10],
        "leaks": len(leaks), "leak_examples": leaks[:10], "warmup_errors": warmup_errors[:10],
        "p50_ms": round(1000 * statistics.median(ordered)) if ordered else None,
        "p95_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]) if ordered else None,
        "wall_s": round(wall, 1), "throughput_rps": round(len(latencies) / wall, 2) if wall else None,
        "rss_after_warmup_mb": rss_warm, "rss_after_mb": rss_after,
        "rss_growth_pct": round(100 * (rss_after - rss_warm) / rss_warm, 1),
    }


# ------------------------------------------------------------------------------------------------

def table(results: dict) -> str:
    load, kill = results["load"], results["kill"]
    rows = [
        ("Hostile inputs (pipeline API + app API)", f"{results['bad_inputs_clean']} / {results['bad_inputs_tried']} "
                                                    "got a correct answer or a clear message"),
        (f"Load: {load['clients']} clients x {load['requests_per_client']} requests ({', '.join(load['endpoints'])})",
         f"{load['requests']} requests, {load['errors']} errors, {load['leaks']} cross-session leaks"),
        ("Latency under that load", f"p50 {load['p50_ms']} ms, p95 {load['p95_ms']} ms"),
        ("Server RSS after warm-up -> after the run",
         f"{load['rss_after_warmup_mb']:.0f} MB -> {load['rss_after_mb']:.0f} MB ({load['rss_growth_pct']:+.1f} %)"),
        ("SQLite gallery, workers killed with SIGKILL", f"{kill['runs']} kills, {kill['acknowledged']} acknowledged "
                                                        f"enrollments, {kill['lost']} lost"),
    ]
    lines = ["| check | result |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    machine = results.get("machine", "")
    return "\n".join(lines) + (f"\n\nMeasured on {machine}." if machine else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--deadline", type=float, default=2400, help="seconds for the load phase at most")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--table", action="store_true", help="print the README table from --out and exit")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(args.out.read_text())))
        return

    os.environ.setdefault("FACELAB_WEIGHTS_DIR", str(SHARED_WEIGHTS_DIR))
    os.environ.setdefault("FACELAB_BACKBONE", "casia-webface")
    os.environ.setdefault("FACELAB_THREADS", "1")
    reload_settings()  # pipeline read the settings when it was imported
    from benchmarks.gallery_kill import run_kills
    from benchmarks.app_server import launch_app, stop_app

    work = Path(tempfile.mkdtemp(prefix="facelab_reliability_"))
    results: dict = {"machine": f"{machine.description()}, FACELAB_THREADS="
                                f"{os.environ['FACELAB_THREADS']}, shared with other jobs"}

    print("kill: SIGKILL during enrollment loops...", flush=True)
    report = run_kills(work / "kill.sqlite", kills=args.kills, seed=6, deadline_s=900)
    results["kill"] = report.as_json()
    results["kill_problems"] = report.problems[:10]
    print(results["kill"], flush=True)

    print("bad inputs through the pipeline API...", flush=True)
    pipeline_outcomes = bad_inputs_pipeline(work)
    process, url = launch_app(work / "app.log")
    try:
        print("bad inputs through the app API...", flush=True)
        app_outcomes = bad_inputs_app(url, process, work)
        outcomes = {"pipeline": pipeline_outcomes, "app": app_outcomes}
        results["bad_inputs_tried"] = sum(len(v) for v in outcomes.values())
        results["bad_inputs_clean"] = sum(o.startswith("clean") for v in outcomes.values() for o in v.values())
        results["bad_inputs"] = outcomes
        print(results["bad_inputs_clean"], "/", results["bad_inputs_tried"], "clean", flush=True)
        # A fresh server for the load test, so its RSS baseline is not the bad inputs' aftermath.
    finally:
        stop_app(process)
    process, url = launch_app(work / "app_load.log")
    try:
        print(f"load: {args.clients} clients x {args.requests} requests...", flush=True)
        results["load"] = run_load(url, process, args.clients, args.requests, args.deadline)
        print({k: v for k, v in results["load"].items() if not k.endswith("examples")}, flush=True)
    finally:
        stop_app(process)
    order = ["bad_inputs_tried", "bad_inputs_clean", "load", "kill", "machine", "bad_inputs", "kill_problems"]
    ordered = {key: results[key] for key in order if key in results}
    write_results(args.out, ordered)
    print(table(ordered))
    sys.exit(0)


if __name__ == "__main__":
    main()
