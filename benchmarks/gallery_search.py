"""Gallery search latency and memory at 1k, 10k, 100k and 1M embeddings (synthetic unit vectors).

    python -m benchmarks.gallery_search [--sizes 1000 10000 100000 1000000] [--queries 50]
    # -> benchmarks/results/gallery_search.json

Search is one (N, 512) matrix-vector product plus an O(N) partial sort, so it is bound by how fast one
core reads the matrix from memory; from pipeline.gallery.QUANTISED_SCAN_MIN_ROWS rows on, the matrix read is an
int8 copy (a quarter of the bytes) and the best rows are re-scored in float32 (exact results). Beside each
search figure, the same run times a plain streaming read of the float32 matrix (numpy sum over it):
`ratio_vs_streaming_read` below 1 means the search reads less than the float32 matrix. Also timed:
adding one embedding and deleting one person
(incremental, no rebuild). Two embeddings per person, as after two enrollments. Threads as in the app
(pipeline.device: FACELAB_THREADS, default 1), with the same searches on every core
(FACELAB_THREADS=auto) alternating with them in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np

from shared_data import REPO_ROOT
from benchmarks import machine
from benchmarks.harness import write_results
from benchmarks.latency import alternating_ms, with_threads
from pipeline.device import configure_cpu_threads
from pipeline.gallery import InMemoryGallery
from pipeline.search_index import EMBEDDING_SIZE

RESULTS = REPO_ROOT / "benchmarks" / "results" / "gallery_search.json"


def unit_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.standard_normal((count, EMBEDDING_SIZE), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def timings_ms(function, repeats: int) -> np.ndarray:
    function()  # warm
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return np.array(times) * 1000


def median_ms(function, repeats: int) -> float:
    return float(np.median(timings_ms(function, repeats)))


def measure(size: int, queries: int, rng: np.random.Generator) -> dict:
    gallery = InMemoryGallery(max_embeddings=None)
    started = time.perf_counter()
    chunk = 2  # two embeddings per person
    vectors = unit_vectors(rng, size)
    for person, start in enumerate(range(0, size, chunk)):
        gallery.add(f"person {person}", vectors[start : start + chunk])
    build_s = time.perf_counter() - started
    del vectors
    probes = unit_vectors(rng, queries)
    index = gallery._index  # the matrix the search reads, for the streaming-read baseline
    matrix = index.matrix[: index.size]

    probe_iter = iter(np.tile(probes, (8, 1)))
    threads, cores = configure_cpu_threads(), configure_cpu_threads("auto")
    times = alternating_ms({count: with_threads(count, lambda: gallery.search(next(probe_iter), k=3))
                            for count in {threads, cores}}, queries)
    configure_cpu_threads(threads)
    searches, all_cores = np.array(times[threads]), np.array(times[cores])
    streams = timings_ms(lambda: matrix.sum(axis=0), queries)
    search, stream = float(np.median(searches)), float(np.median(streams))
    batch = median_ms(lambda: gallery.search_many(probes[:8], k=3), max(3, queries // 8)) / 8
    extra = unit_vectors(rng, 1)[0]
    add = median_ms(lambda: gallery.add("late arrival", extra), 20)
    victims = iter(f"person {i}" for i in range(10**9))
    delete = median_ms(lambda: gallery.delete(next(victims)), 20)
    return {
        "embeddings": size,
        "people": size // chunk,
        "search_ms_median": round(search, 3),
        "search_ms_min": round(float(searches.min()), 3),
        "torch_threads": threads,
        "all_cores": cores,
        "search_ms_median_all_cores": round(float(np.median(all_cores)), 3),
        "streaming_read_ms_median": round(stream, 3),
        "streaming_read_ms_min": round(float(streams.min()), 3),
        "ratio_vs_streaming_read": round(search / stream, 2),
        "search_ms_per_face_batch_of_8": round(batch, 3),
        "add_one_embedding_ms": round(add, 3),
        "delete_one_person_ms": round(delete, 3),
        "index_memory_mb": round(sum(array.nbytes for array in index.arrays()) / 2**20, 1),
        "matrix_mb_float32": round(size * EMBEDDING_SIZE * 4 / 2**20, 1),
        "build_s_one_add_per_person": round(build_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for size in args.sizes:
        row = measure(size, args.queries, rng)
        rows.append(row)
        print(json.dumps(row))
    document = {
        "method": __doc__.split("\n\n")[2].replace("\n", " "),
        "machine": f"{machine.description()} (shared)",
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "target": "100k embeddings searched in <= 10 ms",
        "results": rows,
    }
    write_results(RESULTS, document)


if __name__ == "__main__":
    main()
