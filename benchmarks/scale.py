"""Scale benchmark (issue 19): app replicas sharing a PostgreSQL gallery, and serving cost measured apart
from the load.

    FACELAB_THREADS=1 python -m benchmarks.scale                 # everything (a few minutes)
    python -m benchmarks.scale --kills 1 --requests 8             # a quick look

Starts a private PostgreSQL cluster (benchmarks/postgres_server.py; Debian's packages, tests/install_postgres.sh)
and two `python app.py` replicas on loopback ports with FACELAB_GALLERY on it, then measures:

- cross_replica_visible_ms: enroll through replica A (the call returned), then ask replica B's /people
  until the name is there; p50 / p95 of ack -> visible on B (B's /people reads through the same index
  sync that search uses). Upper bound: it includes B's own request time.
- replica_kill: a third replica enrolls from two clients at once and is SIGKILLed mid-way; every
  acknowledged enrollment must be on B afterwards (acknowledged / lost, summed over --kills rounds).
- serving: per endpoint, server CPU per request (the replica's own utime + stime from /proc, over
  --requests requests after a warm-up) beside the pipeline's in-process CPU time for the same picture
  (this process, same FACELAB_THREADS); serving_overhead_ratio = server CPU / pipeline time.
- throughput: the same /mask load sent to one replica, then spread over two (requests/s).
- idle server CPU, and /mask and /emotion once more on a replica with Gradio's own 1 ms queue polling
  (FACELAB_QUEUE_POLL_SECONDS=0.001; serving/gradio_fixes.py makes it 10 ms): what that fix saves.

The load generator is plain HTTP with asyncio (httpx.AsyncClient): each picture is uploaded once (POST
/gradio_api/upload) and passed as gradio.FileData to POST /gradio_api/call/<api>, whose result is read
from the event stream. Writes benchmarks/results/scale.json. CPU figures are noisy on a machine shared
with other jobs: the JSON says how it was measured and when.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from shared_data import MISC_DIR, REPO_ROOT, SHARED_WEIGHTS_DIR, lfw_pairs
from pipeline.settings import reload as reload_settings
from benchmarks import machine
from benchmarks.harness import write_results

RESULTS = REPO_ROOT / "benchmarks" / "results" / "scale.json"
EXAMPLES = REPO_ROOT / "examples"
OPERATOR_TOKEN = "scale operator"  # the shared gallery's clear needs it (serving/access.py)
ENDPOINTS = ("mask", "emotion", "identify", "verify")


# ------------------------------------------------------------------------------------------------
# A light Gradio HTTP client: one asyncio connection pool, no thread per client

class GradioHttp:
    def __init__(self, base_url: str, timeout_s: float = 120) -> None:
        import httpx

        self.base = base_url.rstrip("/")
        self.http = httpx.AsyncClient(timeout=timeout_s, limits=httpx.Limits(max_connections=64))
        # One visitor: one Gradio session for all its calls, as a browser tab or a gradio_client has (without
        # it every call is a new session, and Gradio builds a session's state for each: ~10 ms of CPU).
        self.session_hash = uuid.uuid4().hex[:11]

    async def upload(self, path: Path) -> dict:
        """The picture in the server's upload cache, as the FileData the app's events accept."""
        response = await self.http.post(f"{self.base}/gradio_api/upload",
                                        files={"files": (path.name, path.read_bytes(), "image/jpeg")})
        response.raise_for_status()
        return {"path": response.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}

    async def call(self, api_name: str, *data) -> list:
        """The endpoint's outputs; raises RuntimeError with the app's message when it answers with an error."""
        response = await self.http.post(f"{self.base}/gradio_api/call/{api_name}", json={"data": list(data), "session_hash": self.session_hash})
        response.raise_for_status()
        event_id = response.json()["event_id"]
        event = None
        async with self.http.stream("GET", f"{self.base}/gradio_api/call/{api_name}/{event_id}") as stream:
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    payload = json.loads(line[5:])
                    if event == "error":
                        raise RuntimeError(f"{api_name}: {payload}")
                    return payload
        raise RuntimeError(f"{api_name}: the event stream ended without a result")

    async def close(self) -> None:
        await self.http.aclose()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# ------------------------------------------------------------------------------------------------
# Replicas

async def cross_replica_visible(url_a: str, url_b: str, trials: int) -> dict:
    a, b = GradioHttp(url_a), GradioHttp(url_b)
    try:
        picture = await a.upload(EXAMPLES / "astronaut.jpg")
        await b.call("people")  # warm-up: B's first call is not what is measured
        delays = []
        for trial in range(trials):
            name = f"visible {trial} {time.time_ns()}"
            await a.call("enroll", name, picture, "", True)  # token, enroll anyway: one photo under many names
            acknowledged = time.perf_counter()
            polls = 0
            while True:
                polls += 1
                (people,) = await b.call("people")
                if any(person["name"] == name for person in people):
                    delays.append(1000 * (time.perf_counter() - acknowledged))
                    break
                if time.perf_counter() - acknowledged > 30:
                    raise RuntimeError(f"{name} not visible on B after 30 s")
        return {"p50": round(percentile(delays, 0.5), 1), "p95": round(percentile(delays, 0.95), 1),
                "max": round(max(delays), 1), "trials": trials, "all": [round(d, 1) for d in delays]}
    finally:
        await a.close(), await b.close()


def replica_kill(database_url: str, survivor_url: str, kills: int, work: Path) -> dict:
    from gradio_client import Client

    from benchmarks.app_server import launch_app

    acknowledged = lost = 0
    for round_number in range(kills):
        Client(survivor_url, verbose=False).predict(OPERATOR_TOKEN, api_name="/clear")
        victim, victim_url = launch_app(work / f"victim{round_number}.log", FACELAB_GALLERY=database_url,
                                        FACELAB_ADMIN_TOKEN=OPERATOR_TOKEN)
        names = enrol_until_killed(victim, victim_url, kill_after=8 + 4 * round_number)
        people = {p["name"]: p["photos"] for p in Client(survivor_url, verbose=False).predict(api_name="/people")}
        acknowledged += len(names)
        lost += sum(people.get(name) != 1 for name in names)
        print(f"  kill {round_number + 1}: {len(names)} acknowledged, {sum(people.get(n) != 1 for n in names)} lost",
              flush=True)
    return {"acknowledged": acknowledged, "lost": lost, "kills": kills}


# ------------------------------------------------------------------------------------------------
# Serving

def pictures() -> dict[str, list[Path]]:
    pair = next(p for p in lfw_pairs() if p.same)
    return {"mask": [EXAMPLES / "astronaut_mask.jpg"], "emotion": [EXAMPLES / "astronaut.jpg"],
            "identify": [MISC_DIR / "multiple_faces_group_photo.jpg"], "verify": [pair.first, pair.second]}


async def _arguments(client: GradioHttp, endpoint: str, paths: list[Path]) -> list:
    files = [await client.upload(path) for path in paths]
    return files + (["balanced"] if endpoint in ("identify", "verify") else [])


async def _load(clients: list[GradioHttp], endpoint: str, arguments: list[list], requests: int) -> float:
    """`requests` calls spread over the clients, each client one call at a time (a visitor waits for their
    answer; Gradio's /call stream also expects one event in flight per session). Returns the seconds taken."""
    async def visitor(index: int) -> None:
        for _ in range(index, requests, len(clients)):
            await clients[index].call(endpoint, *arguments[index])

    started = time.perf_counter()
    await asyncio.gather(*(visitor(index) for index in range(len(clients))))
    return time.perf_counter() - started


class PipelineWork:
    """The library's work for each endpoint's picture, in this process: what a caller of `pipeline` pays."""

    def __init__(self, database_url: str) -> None:
        from pipeline import get_facelab, identity
        from pipeline.gallery_databases import PostgresGallery

        lab = get_facelab()
        self.gallery = PostgresGallery(database_url, listen=False)  # the replicas' gallery, as they see it
        paths = pictures()
        self.work = {
            "mask": lambda: lab.analyze(paths["mask"][0], mask=True),
            "emotion": lambda: lab.analyze(paths["emotion"][0], emotion=True),
            "identify": lambda: identity.identify(lab, self.gallery, paths["identify"][0], "balanced"),
            "verify": lambda: identity.verify(lab, *paths["verify"], "balanced"),
        }

    def cpu_ms(self, endpoint: str, calls: int) -> float:
        started = time.process_time()
        for _ in range(calls):
            self.work[endpoint]()
        return 1000 * (time.process_time() - started) / calls


def models_ready(log: Path, timeout_s: float = 120) -> None:
    """Wait for a replica's background model loading to finish (its CPU is not serving's)."""
    deadline = time.monotonic() + timeout_s
    while "face embedder ready" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.5)


async def idle_cpu_ms_per_s(pid: int, seconds: float = 5.0) -> float:
    """CPU the server burns with no request at all (its event loop's polling), per second."""
    before = cpu_seconds(pid)
    await asyncio.sleep(seconds)
    return round(1000 * (cpu_seconds(pid) - before) / seconds, 1)


async def serving(url: str, pid: int, work: PipelineWork, rounds: int, per_round: int, visitors: int = 2,
                  endpoints: tuple[str, ...] = ENDPOINTS) -> list[dict]:
    """Per endpoint, `rounds` alternations of `per_round` requests to the replica (its CPU time per request)
    and `per_round` calls of the same work in this process (CPU time per call): both see the same machine
    conditions, which drift here within minutes. Medians over the rounds, with their spread."""
    clients = [GradioHttp(url) for _ in range(visitors)]
    rows = []
    try:
        for endpoint in endpoints:
            arguments = [await _arguments(client, endpoint, pictures()[endpoint]) for client in clients]
            await _load(clients, endpoint, arguments, 2 * visitors)  # warm-up: first calls are not per-request costs
            work.cpu_ms(endpoint, 2)
            server, pipeline, wall = [], [], 0.0
            for _ in range(rounds):
                before = cpu_seconds(pid)
                wall += await _load(clients, endpoint, arguments, per_round)
                server.append(1000 * (cpu_seconds(pid) - before) / per_round)
                pipeline.append(work.cpu_ms(endpoint, per_round))
            server_ms, pipeline_ms = statistics.median(server), statistics.median(pipeline)
            rows.append({"endpoint": f"/{endpoint}", "server_cpu_ms_per_request": round(server_ms, 1),
                         "pipeline_ms_per_request": round(pipeline_ms, 1),
                         "serving_overhead_ratio": round(server_ms / pipeline_ms, 2),
                         "server_cpu_ms_range": [round(min(server), 1), round(max(server), 1)],
                         "pipeline_ms_range": [round(min(pipeline), 1), round(max(pipeline), 1)],
                         "requests_per_s": round(rounds * per_round / wall, 2)})
            print(f"  {rows[-1]}", flush=True)
    finally:
        for client in clients:
            await client.close()
    return rows


async def fixed_cost_ms(url: str, pid: int, requests: int, visitors: int = 2) -> float:
    """Server CPU per /people call (the names in the shared gallery: little work of the app's own), close to
    what Gradio itself costs per request (HTTP, queue, event stream, JSON)."""
    clients = [GradioHttp(url) for _ in range(visitors)]
    try:
        arguments = [[] for _ in clients]
        await _load(clients, "people", arguments, 2 * visitors)
        before = cpu_seconds(pid)
        await _load(clients, "people", arguments, requests)
        return round(1000 * (cpu_seconds(pid) - before) / requests, 1)
    finally:
        for client in clients:
            await client.close()


async def throughput(urls: list[str], requests: int, visitors: int) -> float:
    """/mask requests per second from `visitors` clients spread round-robin over the replicas at `urls`."""
    clients = [GradioHttp(urls[index % len(urls)]) for index in range(visitors)]
    try:
        arguments = [await _arguments(client, "mask", pictures()["mask"]) for client in clients]
        await _load(clients, "mask", arguments, visitors)  # warm-up
        return round(requests / await _load(clients, "mask", arguments, requests), 2)
    finally:
        for client in clients:
            await client.close()


# ------------------------------------------------------------------------------------------------

def scale_table() -> str:
    """The README's table from scale.json (registered in benchmarks/readme_tables.py)."""
    if not RESULTS.exists():
        return "_not measured yet: run `python -m benchmarks.scale`_"
    data = json.loads(RESULTS.read_text())
    visible, kill, flow = data["cross_replica_visible_ms"], data["replica_kill"], data["throughput_requests_per_s"]
    rows = ["| measure | measured | target |", "| --- | --- | --- |",
            f"| enroll on replica A -> visible on replica B, p50 / p95 ({visible['trials']} enrollments) "
            f"| {visible['p50']} / {visible['p95']} ms | p95 <= 1,000 ms |",
            f"| replica SIGKILLed mid-enrollment ({kill['kills']} times): acknowledged / lost "
            f"| {kill['acknowledged']} / {kill['lost']} | lost 0 |",
            f"| {flow['endpoint']} throughput, {flow['requests']} requests from {flow['visitors']} visitors at once: one replica / two "
            f"(median of {len(flow.get('one_replica_runs', [0]))} alternated runs) "
            f"| {flow['one_replica']} / {flow['two_replicas']} requests/s | |",
            "", "| endpoint | server CPU ms per request (rounds' range) | pipeline ms per request (range) "
                "| serving overhead ratio | target |",
            "| --- | --- | --- | --- | --- |"]

    def spread(row: dict, key: str) -> str:
        low, high = row.get(key, (None, None))
        return f" ({low}-{high})" if low is not None else ""

    rows += [f"| {row['endpoint']} | {row['server_cpu_ms_per_request']}{spread(row, 'server_cpu_ms_range')} "
             f"| {row['pipeline_ms_per_request']}{spread(row, 'pipeline_ms_range')} "
             f"| {row['serving_overhead_ratio']} | <= 1.2 |" for row in data["serving"]]
    idle, gradio = data.get("idle_server_cpu_ms_per_s"), data.get("gradio_cpu_ms_per_request")
    before = {row["endpoint"]: row for row in data.get("serving_with_gradio_1ms_queue_poll", [])}
    if idle and gradio and before:
        rows += ["", "| where the server's time goes | measured |", "| --- | --- |",
                 f"| idle replica, CPU per second: Gradio's 1 ms queue polling / 10 ms (`serving/gradio_fixes.py`) "
                 f"| {idle['queue_poll_1ms_gradio_default']} / {idle['queue_poll_10ms']} ms |",
                 f"| a cheap request, {gradio['endpoint']}: Gradio's HTTP, queue, event stream and JSON, plus reading "
                 f"the names from the shared gallery | {gradio['server_cpu_ms_per_request']} ms CPU |"]
        rows += [f"| {endpoint} serving overhead ratio on a replica with Gradio's 1 ms polling (same run) "
                 f"| {row['serving_overhead_ratio']} ({row['server_cpu_ms_per_request']} / {row['pipeline_ms_per_request']} ms) |"
                 for endpoint, row in before.items()]
    conditions = data["conditions"]
    rows += ["", f"{conditions['machine']}; FACELAB_THREADS={conditions['FACELAB_THREADS']}; measured "
                 f"{conditions['measured_at']}. Server CPU: {conditions['server_cpu']}. Pipeline: {conditions['pipeline']}."]
    return "\n".join(rows)


def enrol_until_killed(process, url: str, kill_after: int) -> list[str]:
    """Enrol 'person i' through `url` from two clients at once; SIGKILL the server once `kill_after`
    enrolments were acknowledged (others are then in flight). Returns the acknowledged names."""
    from gradio_client import Client, handle_file

    acknowledged: list[str] = []
    lock = threading.Lock()

    def client_loop(worker: int) -> None:
        client = Client(url, verbose=False)
        for index in range(1000):
            name = f"person {worker}-{index}"
            try:
                # one photo under many names: "Enroll anyway" (the app refuses a known face under a new name)
                client.predict(name, handle_file(str(EXAMPLES / "astronaut.jpg")), "", True, api_name="/enroll")
            except Exception:  # noqa: BLE001 - the server is gone: this one was never acknowledged
                return
            with lock:
                acknowledged.append(name)

    threads = [threading.Thread(target=client_loop, args=(worker,), daemon=True) for worker in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    while len(acknowledged) < kill_after and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    for thread in threads:
        thread.join(60)
    with lock:
        return list(acknowledged)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=40, help="enrollments timed for cross-replica visibility")
    parser.add_argument("--kills", type=int, default=3, help="replicas SIGKILLed mid-enrollment")
    parser.add_argument("--requests", type=int, default=6, help="requests per round and endpoint for server CPU")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of server requests and in-process calls")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("FACELAB_WEIGHTS_DIR", str(SHARED_WEIGHTS_DIR))
    os.environ.setdefault("FACELAB_BACKBONE", "casia-webface")
    os.environ.setdefault("FACELAB_THREADS", "1")
    reload_settings()  # pipeline read the settings when it was imported
    from benchmarks.app_server import launch_app, stop_app
    from benchmarks.postgres_server import PostgresServer

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a plain kill still stops replicas and the database
    work = Path(tempfile.mkdtemp(prefix="facelab_scale_"))
    server = PostgresServer.start()
    database = server.create_database("scale")
    replicas = []
    results: dict = {}
    try:
        for name in ("a", "b"):
            replicas.append(launch_app(work / f"{name}.log", FACELAB_GALLERY=database, FACELAB_ADMIN_TOKEN=OPERATOR_TOKEN))
        (process_a, url_a), (process_b, url_b) = replicas
        models_ready(work / "a.log"), models_ready(work / "b.log")
        print("cross-replica visibility...", flush=True)
        results["cross_replica_visible_ms"] = asyncio.run(cross_replica_visible(url_a, url_b, args.trials))
        print(" ", results["cross_replica_visible_ms"], flush=True)
        print("kill -9 a replica mid-enrollment...", flush=True)
        results["replica_kill"] = replica_kill(database, url_b, args.kills, work)
        print("server CPU per request (replica A) beside the pipeline's in this process...", flush=True)
        pipeline_work = PipelineWork(database)
        results["serving"] = asyncio.run(serving(url_a, process_a.pid, pipeline_work, args.rounds, args.requests))
        # The same for a replica with Gradio's own 1 ms queue polling (gradio_fixes.QUEUE_POLL_SECONDS): what
        # the fix saves, measured in the same run.
        results["gradio_cpu_ms_per_request"] = {"endpoint": "/people",
                                                "server_cpu_ms_per_request": asyncio.run(fixed_cost_ms(url_a, process_a.pid, 60))}
        results["idle_server_cpu_ms_per_s"] = {"queue_poll_10ms": asyncio.run(idle_cpu_ms_per_s(process_a.pid))}
        replicas.append(launch_app(work / "poll1ms.log", FACELAB_GALLERY=database, FACELAB_QUEUE_POLL_SECONDS="0.001",
                                   FACELAB_ADMIN_TOKEN=OPERATOR_TOKEN))
        process_c, url_c = replicas[-1]
        models_ready(work / "poll1ms.log")
        results["idle_server_cpu_ms_per_s"]["queue_poll_1ms_gradio_default"] = asyncio.run(idle_cpu_ms_per_s(process_c.pid))
        results["serving_with_gradio_1ms_queue_poll"] = asyncio.run(
            serving(url_c, process_c.pid, pipeline_work, args.rounds, args.requests, endpoints=("mask", "emotion")))
        stop_app(replicas.pop()[0])
        pipeline_work.gallery.close()
        print("throughput, one replica vs two...", flush=True)
        one, two = [], []
        for _ in range(3):  # alternated: the machine's speed drifts
            one.append(asyncio.run(throughput([url_a], args.requests * args.rounds, 4)))
            two.append(asyncio.run(throughput([url_a, url_b], args.requests * args.rounds, 4)))
    finally:
        for process, _ in replicas:
            stop_app(process)
        server.destroy()
    results["throughput_requests_per_s"] = {"one_replica": statistics.median(one), "two_replicas": statistics.median(two),
                                            "one_replica_runs": one, "two_replicas_runs": two, "endpoint": "/mask",
                                            "requests": args.requests * args.rounds, "visitors": 4}
    results["conditions"] = {
        "machine": f"{machine.description()}, shared with other jobs (CPU figures are "
                   f"noisy: compare rows measured in the same run)",
        "FACELAB_THREADS": os.environ["FACELAB_THREADS"], "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "server_cpu": "utime + stime of the replica process from /proc over the timed requests (all its threads: "
                      "Gradio, the queue, the gallery listener), from 2 visitors (Gradio sessions) one request "
                      "at a time each, after 4 warm-up requests; rounds of server requests alternate with rounds "
                      "of in-process calls, medians over the rounds",
        "pipeline": "time.process_time of the same call in this process (pipeline.FaceLab.analyze, identity.identify "
                    "against the replicas' PostgreSQL gallery, identity.verify)",
        "pictures": {endpoint: [str(p.relative_to(p.parents[1])) for p in paths] for endpoint, paths in pictures().items()},
        "targets": {"cross_replica_visible_ms.p95": "<= 1000", "replica_kill.lost": 0, "serving_overhead_ratio": "<= 1.2"},
    }
    print(json.dumps(results, indent=2))
    write_results(args.out, results)
    sys.exit(0)


if __name__ == "__main__":
    main()
