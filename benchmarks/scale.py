"""Scale benchmark (issue 19): app replicas sharing a PostgreSQL gallery, and serving cost measured apart
from the load.

    FACELAB_THREADS=1 python -m benchmarks.scale                 # everything (a few minutes)
    python -m benchmarks.scale --kills 1 --requests 8             # a quick look

Starts a private PostgreSQL cluster (tests/postgres_server.py; Debian's packages, tests/install_postgres.sh)
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
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.datasets import MISC_DIR, REPO_ROOT, SHARED_WEIGHTS_DIR, lfw_pairs

RESULTS = REPO_ROOT / "benchmarks" / "results" / "scale.json"
EXAMPLES = REPO_ROOT / "examples"
ENDPOINTS = ("mask", "emotion", "identify", "verify")


# ------------------------------------------------------------------------------------------------
# A light Gradio HTTP client: one asyncio connection pool, no thread per client

class GradioHttp:
    def __init__(self, base_url: str, timeout_s: float = 120) -> None:
        import httpx

        self.base = base_url.rstrip("/")
        self.http = httpx.AsyncClient(timeout=timeout_s, limits=httpx.Limits(max_connections=64))

    async def upload(self, path: Path) -> dict:
        """The picture in the server's upload cache, as the FileData the app's events accept."""
        response = await self.http.post(f"{self.base}/gradio_api/upload",
                                        files={"files": (path.name, path.read_bytes(), "image/jpeg")})
        response.raise_for_status()
        return {"path": response.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}

    async def call(self, api_name: str, *data) -> list:
        """The endpoint's outputs; raises RuntimeError with the app's message when it answers with an error."""
        response = await self.http.post(f"{self.base}/gradio_api/call/{api_name}", json={"data": list(data)})
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
            await a.call("enroll", name, picture)
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

    from tests.app_server import launch_app
    from tests.test_replicas import enrol_until_killed

    acknowledged = lost = 0
    for round_number in range(kills):
        Client(survivor_url, verbose=False).predict(api_name="/clear")
        victim, victim_url = launch_app(work / f"victim{round_number}.log", FACELAB_GALLERY=database_url)
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


async def server_cpu(url: str, pid: int, requests: int, concurrency: int = 2) -> dict[str, dict]:
    client = GradioHttp(url)
    measured = {}
    try:
        for endpoint, paths in pictures().items():
            arguments = await _arguments(client, endpoint, paths)
            for _ in range(3):  # warm-up: first-call costs are not per-request costs
                await client.call(endpoint, *arguments)
            gate = asyncio.Semaphore(concurrency)

            async def one() -> None:
                async with gate:
                    await client.call(endpoint, *arguments)

            before, started = cpu_seconds(pid), time.perf_counter()
            await asyncio.gather(*(one() for _ in range(requests)))
            wall, cpu = time.perf_counter() - started, cpu_seconds(pid) - before
            measured[endpoint] = {"server_cpu_ms_per_request": round(1000 * cpu / requests, 1),
                                  "requests_per_s": round(requests / wall, 2)}
            print(f"  {endpoint}: {measured[endpoint]}", flush=True)
    finally:
        await client.close()
    return measured


def pipeline_cpu(database_url: str, rounds: int) -> dict[str, float]:
    """The library's CPU time for the same pictures in this process: what a caller of `pipeline` pays."""
    from pipeline import get_facelab, identity
    from pipeline.gallery import PostgresGallery

    lab = get_facelab()
    gallery = PostgresGallery(database_url, listen=False)  # the replicas' gallery, as they see it
    paths = pictures()
    work = {
        "mask": lambda: lab.analyze(paths["mask"][0], mask=True),
        "emotion": lambda: lab.analyze(paths["emotion"][0], emotion=True),
        "identify": lambda: identity.identify(lab, gallery, paths["identify"][0], "balanced"),
        "verify": lambda: identity.verify(lab, *paths["verify"], "balanced"),
    }
    measured = {}
    for endpoint, run in work.items():
        for _ in range(3):
            run()
        times = []
        for _ in range(rounds):
            started = time.process_time()
            run()
            times.append(time.process_time() - started)
        measured[endpoint] = round(1000 * statistics.median(times), 1)
    gallery.close()
    return measured


async def throughput(urls: list[str], requests: int, concurrency: int) -> float:
    """/mask requests per second with `requests` spread round-robin over `urls`, `concurrency` in flight."""
    clients = [GradioHttp(url) for url in urls]
    try:
        arguments = [await _arguments(client, "mask", pictures()["mask"]) for client in clients]
        for client, args in zip(clients, arguments):
            await client.call("mask", *args)
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int) -> None:
            async with gate:
                await clients[index % len(clients)].call("mask", *arguments[index % len(clients)])

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        return round(requests / (time.perf_counter() - started), 2)
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
            f"| {flow['endpoint']} throughput, {flow['requests']} requests, {flow['in_flight']} in flight: one replica / two "
            f"| {flow['one_replica']} / {flow['two_replicas']} requests/s | |",
            "", "| endpoint | server CPU ms per request | pipeline ms per request | serving overhead ratio | target |",
            "| --- | --- | --- | --- | --- |"]
    rows += [f"| {row['endpoint']} | {row['server_cpu_ms_per_request']} | {row['pipeline_ms_per_request']} "
             f"| {row['serving_overhead_ratio']} | <= 1.2 |" for row in data["serving"]]
    conditions = data["conditions"]
    rows += ["", f"{conditions['machine']}; FACELAB_THREADS={conditions['FACELAB_THREADS']}; measured "
                 f"{conditions['measured_at']}. Server CPU: {conditions['server_cpu']}. Pipeline: {conditions['pipeline']}."]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=40, help="enrollments timed for cross-replica visibility")
    parser.add_argument("--kills", type=int, default=3, help="replicas SIGKILLed mid-enrollment")
    parser.add_argument("--requests", type=int, default=20, help="requests per endpoint for server CPU")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("FACELAB_WEIGHTS_DIR", str(SHARED_WEIGHTS_DIR))
    os.environ.setdefault("FACELAB_BACKBONE", "casia-webface")
    os.environ.setdefault("FACELAB_THREADS", "1")
    from tests.app_server import launch_app, stop_app
    from tests.postgres_server import PostgresServer

    work = Path(tempfile.mkdtemp(prefix="facelab_scale_"))
    server = PostgresServer.start()
    database = server.create_database("scale")
    replicas = []
    results: dict = {}
    try:
        for name in ("a", "b"):
            replicas.append(launch_app(work / f"{name}.log", FACELAB_GALLERY=database))
        (process_a, url_a), (process_b, url_b) = replicas
        print("cross-replica visibility...", flush=True)
        results["cross_replica_visible_ms"] = asyncio.run(cross_replica_visible(url_a, url_b, args.trials))
        print(" ", results["cross_replica_visible_ms"], flush=True)
        print("kill -9 a replica mid-enrollment...", flush=True)
        results["replica_kill"] = replica_kill(database, url_b, args.kills, work)
        print("server CPU per request (replica A)...", flush=True)
        server_side = asyncio.run(server_cpu(url_a, process_a.pid, args.requests))
        print("throughput, one replica vs two...", flush=True)
        one = asyncio.run(throughput([url_a], 2 * args.requests, 4))
        two = asyncio.run(throughput([url_a, url_b], 2 * args.requests, 4))
        for process, _ in replicas:
            stop_app(process)
        replicas = []
        print("pipeline CPU per request, in process...", flush=True)
        in_process = pipeline_cpu(database, rounds=max(5, args.requests // 2))
    finally:
        for process, _ in replicas:
            stop_app(process)
        server.destroy()
    results["serving"] = [
        {"endpoint": f"/{endpoint}", "server_cpu_ms_per_request": server_side[endpoint]["server_cpu_ms_per_request"],
         "pipeline_ms_per_request": in_process[endpoint],
         "serving_overhead_ratio": round(server_side[endpoint]["server_cpu_ms_per_request"] / in_process[endpoint], 2),
         "requests_per_s": server_side[endpoint]["requests_per_s"]}
        for endpoint in ENDPOINTS]
    results["throughput_requests_per_s"] = {"one_replica": one, "two_replicas": two, "endpoint": "/mask",
                                            "requests": 2 * args.requests, "in_flight": 4}
    results["conditions"] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores shared with other jobs (CPU figures are "
                   f"noisy: compare rows measured in the same run)",
        "FACELAB_THREADS": os.environ["FACELAB_THREADS"], "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "server_cpu": "utime + stime of the replica process from /proc over the timed requests (all its threads: "
                      "Gradio, the queue, the gallery listener), 2 in flight, after 3 warm-up requests",
        "pipeline": "time.process_time of the same call in this process (pipeline.FaceLab.analyze, identity.identify "
                    "against the replicas' PostgreSQL gallery, identity.verify), median",
        "pictures": {endpoint: [str(p.relative_to(p.parents[1])) for p in paths] for endpoint, paths in pictures().items()},
        "targets": {"cross_replica_visible_ms.p95": "<= 1000", "replica_kill.lost": 0, "serving_overhead_ratio": "<= 1.2"},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    sys.exit(0)


if __name__ == "__main__":
    main()
