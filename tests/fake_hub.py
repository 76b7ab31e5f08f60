"""A stand-in for the Hugging Face Hub on 127.0.0.1: enough of its file API for `hf_hub_download`.

It answers HEAD and GET on /{repo_id}/resolve/{revision}/{filename} with the headers the client reads
(X-Repo-Commit, ETag / X-Linked-Etag, X-Linked-Size, Content-Length) and counts GETs so tests can tell
whether a file was downloaded again.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, files: dict[str, Path]) -> None:
        """`files` maps "repo_id/filename" to the local file to serve."""
        self.files = files
        self.downloads: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def _lookup(self) -> Path | None:
                parts = self.path.split("?")[0].strip("/").split("/")
                if "resolve" not in parts:
                    return None
                at = parts.index("resolve")
                key = "/".join(parts[:at]) + "/" + "/".join(parts[at + 2 :])
                return hub.files.get(key)

            def _headers(self, path: Path) -> None:
                data_size = path.stat().st_size
                etag = hashlib.sha256(path.read_bytes()).hexdigest()
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{etag}"')
                self.send_header("X-Linked-Etag", f'"{etag}"')
                self.send_header("X-Linked-Size", str(data_size))
                self.send_header("Content-Length", str(data_size))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()

            def do_HEAD(self) -> None:
                path = self._lookup()
                if path is None:
                    self._not_found()
                    return
                self._headers(path)

            def do_GET(self) -> None:
                path = self._lookup()
                if path is None:
                    self._not_found()
                    return
                hub.downloads.append(self.path)
                self._headers(path)
                self.wfile.write(path.read_bytes())

            def _not_found(self) -> None:
                body = b'{"error": "Entry not found"}'
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("X-Error-Message", "Entry not found")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeHub":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
