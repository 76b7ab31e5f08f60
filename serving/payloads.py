"""What a request's picture payload may name: the one gate between a visitor's request and the server's disk.

The app's events run with `preprocess=False` (our limits, our messages), so Gradio hands the handlers the
raw payload a client sent. A payload's "path" is only opened when Gradio itself stored that file for an
upload (`Blocks.upload_file_set`, inside its upload folder) or when it is one of the app's own examples;
a `data:` URL is decoded only after its encoded length passed the inline limit. Everything else (a server
path, `..` segments, a symlink, another visitor's result picture, an http URL, an int) gets one and the
same message, whatever exists on disk: the answer says nothing about the server's files.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import stat
from collections.abc import Callable
from typing import BinaryIO

from pipeline.errors import InvalidImageError
from pipeline.images import max_file_bytes, size_text

# Pictures sent inline (a data: URL in the JSON body: live webcam frames, some API clients). Larger
# pictures go through Gradio's upload route, which streams them to disk and applies max_file_bytes().
MAX_INLINE_BYTES = 8 * 1024 * 1024
MAX_INLINE_CHARS = 4 * -(-MAX_INLINE_BYTES // 3) + 256  # base64 of that, plus a "data:image/...;base64," header

NOT_STORED = ("This picture was not uploaded to this app. Send the picture itself: upload it, use the webcam, "
              "or in gradio_client pass handle_file(path).")
GONE = "This upload is no longer on the server (uploads are deleted after about 15 minutes). Please upload it again."

StoredCheck = Callable[[str], bool]


def picture_bytes(payload: object, stored: StoredCheck, upload_root: str | os.PathLike) -> bytes:
    """The bytes of the picture a payload carries, or InvalidImageError with a message for the visitor.

    `stored(path)` says whether the app itself stored exactly this path (an upload, an example); the file
    must also lie inside `upload_root` after resolving links, and be a regular file no larger than the
    upload limit.
    """
    with picture_file(payload, stored, upload_root) as handle:
        return handle.read(max_file_bytes() + 1)


def picture_file(payload: object, stored: StoredCheck, upload_root: str | os.PathLike) -> BinaryIO:
    """`picture_bytes`' file, open and not yet read (an inline picture: its decoded bytes in memory), past the
    same checks: for a look at its header alone. Close it (a `with` block)."""
    if not isinstance(payload, dict):
        raise InvalidImageError(NOT_STORED)
    path, url = payload.get("path"), payload.get("url")
    if isinstance(path, str) and path:
        return _stored_file(path, stored, upload_root)
    if isinstance(url, str) and url.startswith("data:"):
        return io.BytesIO(_data_url(url))
    raise InvalidImageError(NOT_STORED)


def _stored_file(path: str, stored: StoredCheck, upload_root: str | os.PathLike) -> BinaryIO:
    if not stored(path):  # a set lookup first: nothing about an unknown path touches the disk
        raise InvalidImageError(NOT_STORED)
    # Inside the upload folder, with no link anywhere below it: a link there is never followed. The folder
    # itself may lie behind one (GRADIO_TEMP_DIR=/data/tmp with /data a link: Gradio does not resolve it).
    below = os.path.relpath(os.path.abspath(path), os.path.abspath(upload_root))
    if (below == os.curdir or below.split(os.sep)[0] == os.pardir
            or os.path.realpath(path) != os.path.join(os.path.realpath(upload_root), below)):
        raise InvalidImageError(NOT_STORED)
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise InvalidImageError(GONE) from None
    except OSError:
        raise InvalidImageError(NOT_STORED) from None
    handle = os.fdopen(descriptor, "rb")
    info, limit = os.fstat(handle.fileno()), max_file_bytes()
    refusal = (NOT_STORED if not stat.S_ISREG(info.st_mode)
               else _too_large(info.st_size, limit) if info.st_size > limit else None)
    if refusal:
        handle.close()
        raise InvalidImageError(refusal)
    return handle


def _data_url(url: str) -> bytes:
    if len(url) > MAX_INLINE_CHARS:  # checked on the encoded text, before a byte is decoded
        raise InvalidImageError(_too_large(len(url) * 3 // 4, MAX_INLINE_BYTES, inline=True))
    header, _, encoded = url.partition(",")
    if not header.endswith(";base64"):
        raise InvalidImageError("The picture could not be read (an inline picture must be base64-encoded).")
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise InvalidImageError("The picture could not be read (its data is not valid base64).") from None


def _too_large(size: int, limit: int, inline: bool = False) -> str:
    how = " Upload it as a file instead." if inline else ""
    kind = "an inline picture" if inline else "a file"
    return f"The picture is {size_text(size)}; the limit for {kind} is {size_text(limit)}.{how}"
