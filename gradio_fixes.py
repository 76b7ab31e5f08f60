"""Workarounds for Gradio bugs that Face Lab's hardening tests hit. Imported by app.py before the UI is built.

Gradio 6.31 `processing_utils.save_pil_to_cache` (every picture output: results, thumbnails) names the cached
file by the hash of its bytes and then *rewrites it in place* with `Path.write_bytes`. When several visitors get
an identical picture at the same moment (a class pressing the same example), one request truncates and
rewrites the file while another visitor's browser or client is downloading it: the download ends short
("peer closed connection without sending complete message body"; tests/test_hardening_sessions.py,
test_a_class_pressing_the_same_example_at_once_gets_every_result). Gradio's own `save_file_to_cache` already
writes under a temporary name and renames into place; this does the same for pictures. Identical bytes
give the identical path, so replacing an existing file is skipped (and would be harmless: same content).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gradio import processing_utils, queueing

_original_save_pil_to_cache = processing_utils.save_pil_to_cache


def save_pil_to_cache(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:  # noqa: A002
    data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    target = (folder / f"{name}.{format}").resolve()
    if target.exists() and target.stat().st_size == len(data):
        os.utime(target)  # delete_cache ages files by time: a file handed out again starts its age again
        return str(target)
    descriptor, staging = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(staging, target)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return str(target)


# Gradio 6.31's queue looks for new work every millisecond while it has none (`Queue.sleep_when_free`; 50 ms
# on Windows) and for progress updates every 10 ms: an idle Face Lab burned 70-80 ms of CPU per second on
# that loop alone, which benchmarks/scale.py saw as server CPU per request. 10 ms / 50 ms wake it an order of
# magnitude less often; a request may wait up to 10 ms more to start, beside the 60-400 ms its analysis takes.
# Face Lab shows no progress bars, so 50 ms is plenty for those.
QUEUE_POLL_SECONDS = float(os.environ.get("FACELAB_QUEUE_POLL_SECONDS", 0.01))
_original_queue_init = queueing.Queue.__init__


def _queue_init(self, *args, **kwargs) -> None:
    _original_queue_init(self, *args, **kwargs)
    self.sleep_when_free = QUEUE_POLL_SECONDS
    self.progress_update_sleep_when_free = max(QUEUE_POLL_SECONDS, 0.05)


def apply() -> None:
    """Install the fixes (idempotent). `save_img_array_to_cache` looks `save_pil_to_cache` up at call time."""
    processing_utils.save_pil_to_cache = save_pil_to_cache
    queueing.Queue.__init__ = _queue_init


apply()
