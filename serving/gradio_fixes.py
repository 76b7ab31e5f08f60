"""Workarounds for Gradio 6.31 behaviour that Face Lab's hardening tests hit; app.py calls `apply()` once,
before the UI is built. Each is needed only while the pinned Gradio behaves this way (tests fail without it).

1. Cached result pictures are rewritten in place. Gradio 6.31 `processing_utils.save_pil_to_cache` (every picture output: results, thumbnails) names the cached
file by the hash of its bytes and then *rewrites it in place* with `Path.write_bytes`. When several visitors get
an identical picture at the same moment (a class pressing the same example), one request truncates and
rewrites the file while another visitor's browser or client is downloading it: the download ends short
("peer closed connection without sending complete message body"; tests/test_hardening_sessions.py,
test_a_class_pressing_the_same_example_at_once_gets_every_result). Gradio's own `save_file_to_cache` already
writes under a temporary name and renames into place; this does the same for pictures. Identical bytes
give the identical path, so replacing an existing file is skipped (and would be harmless: same content).

2. A malformed event input (an int, a list or a bare string where a picture belongs) fails Gradio's own
pydantic validation before any handler runs, and a file payload with `meta` naming a file outside the
upload folder fails its path check there: both answered with an empty error and a traceback in the log
(tests/test_security.py). They now get the same message our own payload gate gives, and no traceback.

Any other input a component cannot preprocess (an example index that is a dict) gets a plain message too.

3. An unknown `fn_index` raised KeyError: HTTP 500 with a traceback. Now a 404 that says so.

4. The queue looks for new work every millisecond while it has none (`Queue.sleep_when_free`; 50 ms on
Windows) and for progress updates every 10 ms: an idle Face Lab burned 70-80 ms of CPU per second on that
loop alone, which benchmarks/scale.py saw as server CPU per request. 10 ms / 50 ms
(FACELAB_QUEUE_POLL_SECONDS) wake it an order of magnitude less often; a request may wait up to 10 ms more
to start, beside the 60-400 ms its analysis takes. Face Lab shows no progress bars, so 50 ms is plenty.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import functools

import pydantic
from fastapi import HTTPException
from gradio import Error, processing_utils, queueing, route_utils
from gradio.blocks import Blocks
from gradio.exceptions import ComponentProcessingError, InvalidPathError

from serving.payloads import NOT_STORED

MALFORMED = "This request's inputs are not what this event takes."


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


def _refuse_malformed_inputs(preprocess_data):
    @functools.wraps(preprocess_data)
    async def wrapper(self, *args, **kwargs):
        try:
            return await preprocess_data(self, *args, **kwargs)
        except (pydantic.ValidationError, InvalidPathError):
            raise Error(NOT_STORED, print_exception=False) from None
        except ComponentProcessingError:  # e.g. an example index that is not a number
            raise Error(MALFORMED, print_exception=False) from None
    wrapper.facelab_fix = True
    return wrapper


def _unknown_event_is_404(get_fn):
    @functools.wraps(get_fn)
    def wrapper(blocks, api_name, body):
        try:
            return get_fn(blocks, api_name, body)
        except (KeyError, IndexError):
            raise HTTPException(status_code=404, detail="This app has no such event (fn_index).") from None
    wrapper.facelab_fix = True
    return wrapper


_original_queue_init = queueing.Queue.__init__


def _queue_polling_every(seconds: float):
    def queue_init(self, *args, **kwargs) -> None:
        _original_queue_init(self, *args, **kwargs)
        self.sleep_when_free = seconds
        self.progress_update_sleep_when_free = max(seconds, 0.05)
    return queue_init


def apply(queue_poll_seconds: float = 0.01) -> None:
    """Install the fixes (idempotent). Gradio looks each of these up at call time."""
    processing_utils.save_pil_to_cache = save_pil_to_cache
    queueing.Queue.__init__ = _queue_polling_every(queue_poll_seconds)
    if not getattr(Blocks.preprocess_data, "facelab_fix", False):
        Blocks.preprocess_data = _refuse_malformed_inputs(Blocks.preprocess_data)
    if not getattr(route_utils.get_fn, "facelab_fix", False):
        route_utils.get_fn = _unknown_event_is_404(route_utils.get_fn)
