"""Security probe (issue 13): an attacker's requests against a running app, over plain HTTP (no browser, no
gradio_client), each checked for being blocked, with the message the client got and the server's RSS growth.

    python -m benchmarks.security             # three app servers on 127.0.0.1; writes results/security.json

Three servers, because some attacks need a configuration: the default one (per-session galleries), one
with a shared gallery and an operator token, and one whose embedder weights are tampered with and whose
shared gallery file is corrupt. tests/test_security.py runs the same catalogue, one test per attack.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.app_server import EXAMPLES, launch_app, stop_app
from benchmarks.bad_inputs import case
from benchmarks.harness import write_results
from shared_data import REPO_ROOT, SHARED_WEIGHTS_DIR
from pipeline.settings import reload as reload_settings

RESULTS = REPO_ROOT / "benchmarks" / "results" / "security.json"
ASTRONAUT = EXAMPLES / "astronaut.jpg"
ADMIN_TOKEN = "correct horse battery staple"  # the operator token of the shared-gallery server
RSS_BUDGET_MB = 100  # no single request may grow the server by more

# What a refused picture payload answers (serving/payloads.py): one message, whatever exists on disk.
NOT_STORED_START = "This picture was not uploaded to this app."


# ------------------------------------------------------------------------------------------------
# A raw HTTP client of Gradio's queue

@dataclass
class Answer:
    ok: bool  # the event completed successfully
    output: list | None  # its outputs when ok
    message: str  # the error the client was shown, or the HTTP status line

    @property
    def text(self) -> str:
        return self.message or json.dumps(self.output)[:160]


class RawClient:
    """Gradio's HTTP API by hand: /config for event numbers, /upload, /queue/join + the SSE stream."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/") + "/"
        self.session = uuid.uuid4().hex[:12]
        config = json.loads(self._get("config"))
        self.events = {d.get("api_name"): d["id"] for d in config["dependencies"] if d.get("api_name")}

    def _get(self, path: str, timeout: float = 30) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            return response.read()

    def upload(self, data: bytes, filename: str) -> str:
        """The path Gradio stored the file under, as a browser's upload gets it."""
        status, body = raw_upload(self.url, data, filename)
        if status != 200:
            raise RuntimeError(f"upload refused: HTTP {status} {body[:200]}")
        return json.loads(body)[0]

    def call(self, event: str | int, data: list, raw_body: bytes | None = None) -> Answer:
        fn_index = event if isinstance(event, int) else self.events[event]
        body = raw_body if raw_body is not None else json.dumps(
            {"data": data, "fn_index": fn_index, "session_hash": self.session, "event_data": None,
             "trigger_id": None}).encode()
        request = urllib.request.Request(self.url + "gradio_api/queue/join", body, {"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(request, timeout=60).read()
        except urllib.error.HTTPError as exc:
            return Answer(False, None, f"HTTP {exc.code}: {exc.read()[:200].decode(errors='replace')}")
        except (urllib.error.URLError, ConnectionError) as exc:  # a server that hung up on a huge body
            return Answer(False, None, f"connection closed: {exc}")
        with urllib.request.urlopen(self.url + f"gradio_api/queue/data?session_hash={self.session}",
                                    timeout=120) as stream:
            for line in stream:
                line = line.decode().strip()
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    output = message.get("output") or {}
                    if message.get("success"):
                        return Answer(True, output.get("data"), "")
                    return Answer(False, None, output.get("error") or "")
        return Answer(False, None, "no answer")


def raw_upload(url: str, data: bytes, filename: str, timeout_s: float = 300) -> tuple[int, str]:
    """POST a file to the server's upload route as a browser does (no client-side size check): status, body."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url.rstrip("/") + "/gradio_api/upload", body,
                                     {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def file_payload(path: str, meta: bool = False) -> dict:
    payload = {"path": path, "url": None, "orig_name": Path(path).name}
    return {**payload, "meta": {"_type": "gradio.FileData"}} if meta else payload


def data_url(data: bytes, mime: str = "image/jpeg") -> dict:
    return {"path": None, "url": f"data:{mime};base64," + base64.b64encode(data).decode()}


def frame_payload(frame, quality: int = 85) -> dict:
    """An RGB frame (numpy array) as a live webcam client sends it: a JPEG data URL."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return data_url(buffer.getvalue())


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


# ------------------------------------------------------------------------------------------------
# The attacks: each returns (blocked, what the client got)

@dataclass(frozen=True)
class Attack:
    name: str
    item: int  # the numbered finding it belongs to
    server: str  # "default" | "shared" | "broken"
    run: Callable[["Context"], tuple[bool, str]]


@dataclass
class Context:
    url: str
    work: Path  # a folder of server-side files the attacker would like read (outside Gradio's cache)

    def client(self) -> RawClient:
        return RawClient(self.url)


def _refused_as_not_stored(answer: Answer) -> tuple[bool, str]:
    return (not answer.ok and answer.message.startswith(NOT_STORED_START)), answer.text


def _server_path(event: str, path_of: Callable[[Context], str], meta: bool = False, extra: tuple = ()):
    def run(ctx: Context) -> tuple[bool, str]:
        client = ctx.client()
        payload = file_payload(path_of(ctx), meta)
        data = [payload, *extra]
        return _refused_as_not_stored(client.call(event, data))
    return run


def _live_server_path(ctx: Context) -> tuple[bool, str]:
    answer = ctx.client().call("mask_live", [file_payload(str(ASTRONAUT)), None])
    frame = (answer.output or [None])[0]
    return (frame is None), (answer.message or f"frame: {json.dumps(frame)[:120]}")


def _enroll_then_list(ctx: Context) -> tuple[bool, str]:
    client = ctx.client()
    answer = client.call("enroll", ["Mallory", file_payload(str(ASTRONAUT)), "", False, None])
    people = client.call("people", [None])
    blocked = not answer.ok and answer.message.startswith(NOT_STORED_START) and people.output == [[]]
    return blocked, answer.text


def _example_event(ctx: Context) -> tuple[bool, str]:
    """The examples' own event (run on click) with a server path instead of the example's cached copy."""
    client = ctx.client()
    config = json.loads(client._get("config"))
    index = next(d["id"] for d in config["dependencies"]
                 if d.get("api_name") == "mask_check" or (d.get("api_visibility") == "undocumented"
                                                          and str(d.get("api_name", "")).startswith("mask_check")))
    return _refused_as_not_stored(client.call(index, [file_payload(str(ASTRONAUT))]))


def _verify_server_paths(ctx: Context) -> tuple[bool, str]:
    return _refused_as_not_stored(ctx.client().call(
        "verify", [file_payload(str(ASTRONAUT)), file_payload(str(EXAMPLES / "astronaut_mirror.jpg")), "balanced"]))


def _identify_server_path(ctx: Context) -> tuple[bool, str]:
    return _refused_as_not_stored(ctx.client().call("identify", [file_payload(str(ASTRONAUT)), "balanced", None]))


def _big_server_file(ctx: Context) -> str:
    path = ctx.work / "big.bin"
    if not path.exists():
        with path.open("wb") as handle:
            handle.truncate(60 * 1024 * 1024)
    return str(path)


def _symlink_to_passwd(ctx: Context) -> str:
    link = ctx.work / "looks_like_a_photo.jpg"
    if not link.is_symlink():
        link.symlink_to("/etc/passwd")
    return str(link)


def _dot_dot_from_an_upload(ctx: Context) -> tuple[bool, str]:
    client = ctx.client()
    uploaded = client.upload(ASTRONAUT.read_bytes(), "me.jpg")
    escaped = str(Path(uploaded).parent) + "/../../../../../../etc/passwd"
    return _refused_as_not_stored(client.call("mask", [file_payload(escaped)]))


def _url_encoded_upload_path(ctx: Context) -> tuple[bool, str]:
    client = ctx.client()
    uploaded = client.upload(ASTRONAUT.read_bytes(), "me.jpg")
    encoded = uploaded.replace("/", "%2F")
    return _refused_as_not_stored(client.call("mask", [file_payload(encoded)]))


def _file_url(ctx: Context) -> tuple[bool, str]:
    url = ctx.url.rstrip("/") + f"/gradio_api/file={ASTRONAUT}"
    return _refused_as_not_stored(ctx.client().call("mask", [{"path": None, "url": url}]))


def _outside_url(ctx: Context) -> tuple[bool, str]:
    return _refused_as_not_stored(ctx.client().call("mask", [{"path": None, "url": "http://169.254.169.254/latest"}]))


def _another_visitors_result(ctx: Context) -> tuple[bool, str]:
    """Visitor A's annotated result picture (a file in Gradio's cache) named by visitor B."""
    alice, mallory = ctx.client(), ctx.client()
    answer = alice.call("mask", [file_payload(alice.upload(ASTRONAUT.read_bytes(), "alice.jpg"))])
    if not answer.ok:
        return False, f"setup failed: {answer.message}"
    result_path = answer.output[0]["path"]
    return _refused_as_not_stored(mallory.call("mask", [file_payload(result_path, meta=True)]))


def _upload_then_refused(filename: str, data: Callable[[], bytes], expected: str):
    def run(ctx: Context) -> tuple[bool, str]:
        client = ctx.client()
        answer = client.call("mask", [file_payload(client.upload(data(), filename))])
        return (not answer.ok and expected in answer.message), answer.text
    return run


def _huge_data_url(ctx: Context) -> tuple[bool, str]:
    """150 MB of base64 text in an event's JSON body: refused from its declared length before it is read."""
    import http.client
    from urllib.parse import urlsplit

    address = urlsplit(ctx.url)
    prefix = b'{"data": [{"path": null, "url": "data:image/jpeg;base64,'
    suffix = b'"}], "fn_index": ' + str(ctx.client().events["mask"]).encode() + b', "session_hash": "x"}'
    chunk, chunks = b"A" * (1024 * 1024), 150
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    connection.putrequest("POST", "/gradio_api/queue/join")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(len(prefix) + chunks * len(chunk) + len(suffix)))
    connection.endheaders()
    try:  # the server answers at once and hangs up; stop sending when it does
        for piece in (prefix, *([chunk] * chunks), suffix):
            connection.send(piece)
    except (BrokenPipeError, ConnectionResetError):
        pass
    response = connection.getresponse()
    got = f"HTTP {response.status}: {response.read()[:200].decode(errors='replace')}"
    connection.close()
    return response.status == 413, got


def _inline_over_limit(ctx: Context) -> tuple[bool, str]:
    # over the inline limit (8 MB decoded), under the request limit: refused by its length, undecoded
    answer = ctx.client().call("mask", [data_url(b"\xff" * (8 * 1024 * 1024 + 512 * 1024))])
    return (not answer.ok and "limit for an inline picture" in answer.message), answer.text


def _malformed(value: object):
    def run(ctx: Context) -> tuple[bool, str]:
        return _refused_as_not_stored(ctx.client().call("mask", [value]))
    return run


def _bad_fn_index(ctx: Context) -> tuple[bool, str]:
    answer = ctx.client().call(9999, [file_payload(str(ASTRONAUT))])
    return answer.message.startswith("HTTP 404"), answer.text


def _shared_destructive(event: str, token: str):
    def run(ctx: Context) -> tuple[bool, str]:
        client = ctx.client()
        photo = file_payload(client.upload(ASTRONAUT.read_bytes(), "eileen.jpg"))
        client.call("enroll", ["Eileen Collins", photo, "", False, None])
        data = [token, None] if event == "clear" else ["Eileen Collins", token, None]
        answer = client.call(event, data)
        still_there = client.call("people", [None]).output
        kept = bool(still_there and any(p["name"] == "Eileen Collins" for p in still_there[0]))
        return (not answer.ok and "operator token" in answer.message and kept), answer.text
    return run


def _no_server_paths(answer: Answer) -> bool:
    return not any(marker in answer.message for marker in ("/", "\\", "FACELAB_WEIGHTS_DIR"))


def _broken_model_tab(event: str, data: Callable[[RawClient], list]):
    """With a tampered embedder: the identity tabs answer that they are off, without a server path."""
    def run(ctx: Context) -> tuple[bool, str]:
        client = ctx.client()
        answer = client.call(event, data(client))
        return (not answer.ok and "Not available" in answer.message and _no_server_paths(answer)), answer.text
    return run


def _broken_gallery_mask_still_works(ctx: Context) -> tuple[bool, str]:
    client = ctx.client()
    answer = client.call("mask", [file_payload(client.upload(ASTRONAUT.read_bytes(), "a.jpg"))])
    return answer.ok, answer.text


def _upload(client: RawClient, path: Path = ASTRONAUT) -> dict:
    return file_payload(client.upload(path.read_bytes(), path.name))


ATTACKS: tuple[Attack, ...] = (
    Attack("server_path_mask", 1, "default", _server_path("mask", lambda ctx: str(ASTRONAUT))),
    Attack("server_path_mask_with_meta", 1, "default", _server_path("mask", lambda ctx: str(ASTRONAUT), meta=True)),
    Attack("server_path_emotion", 1, "default", _server_path("emotion", lambda ctx: str(ASTRONAUT))),
    Attack("server_path_mask_live", 1, "default", _live_server_path),
    Attack("server_path_enroll", 1, "default", _enroll_then_list),
    Attack("server_path_identify", 1, "default", _identify_server_path),
    Attack("server_path_verify", 1, "default", _verify_server_paths),
    Attack("server_path_example_event", 1, "default", _example_event),
    Attack("etc_passwd", 2, "default", _server_path("mask", lambda ctx: "/etc/passwd")),
    Attack("missing_path", 2, "default", _server_path("mask", lambda ctx: "/no/such/picture.jpg")),
    Attack("large_server_file", 2, "default", _server_path("mask", _big_server_file)),
    Attack("symlink_to_etc_passwd", 2, "default", _server_path("mask", _symlink_to_passwd)),
    Attack("dot_dot_from_an_upload", 2, "default", _dot_dot_from_an_upload),
    Attack("url_encoded_upload_path", 2, "default", _url_encoded_upload_path),
    Attack("gradio_file_url", 1, "default", _file_url),
    Attack("outside_http_url", 1, "default", _outside_url),
    Attack("another_visitors_result", 1, "default", _another_visitors_result),
    Attack("ico_holding_huge_png", 3, "default",
           _upload_then_refused("icon.ico", lambda: case("ico_holding_huge_png").data(), "not a picture")),
    Attack("png_400_megapixels", 3, "default",
           _upload_then_refused("big.png", lambda: case("png_20000x20000").data(), "megapixels")),
    Attack("data_url_150mb", 4, "default", _huge_data_url),
    Attack("data_url_over_inline_limit", 4, "default", _inline_over_limit),
    Attack("eps_upload", 5, "default", _upload_then_refused("x.eps", lambda: case("eps_named_jpg").data(), "not a picture")),
    Attack("int_as_picture", 9, "default", _malformed(5)),
    Attack("list_as_picture", 9, "default", _malformed([1, 2])),
    Attack("string_as_picture", 9, "default", _malformed("/etc/passwd")),
    Attack("bad_fn_index", 9, "default", _bad_fn_index),
    Attack("shared_clear_without_token", 8, "shared", _shared_destructive("clear", "")),
    Attack("shared_clear_wrong_token", 8, "shared", _shared_destructive("clear", "guess")),
    Attack("shared_delete_without_token", 8, "shared", _shared_destructive("delete", "")),
    Attack("tampered_embedder_identify", 6, "broken",
           _broken_model_tab("identify", lambda c: [_upload(c), "balanced", None])),
    Attack("tampered_embedder_verify", 6, "broken",
           _broken_model_tab("verify", lambda c: [_upload(c), _upload(c, EXAMPLES / "astronaut_mirror.jpg"), "balanced"])),
    Attack("corrupt_gallery_enroll", 7, "broken", _broken_model_tab("enroll", lambda c: ["Eve", _upload(c), "", False, None])),
    Attack("corrupt_gallery_other_tabs_work", 7, "broken", _broken_gallery_mask_still_works),
)


# ------------------------------------------------------------------------------------------------
# Servers

def server_env(kind: str, work: Path) -> dict[str, str]:
    """The environment of each kind of server the attacks need."""
    if kind == "default":
        return {}
    if kind == "shared":
        return {"FACELAB_GALLERY": str(work / "shared.db"), "FACELAB_ADMIN_TOKEN": ADMIN_TOKEN}
    if kind == "broken":
        from pipeline import weights

        tampered = work / "tampered_weights"
        tampered.mkdir(exist_ok=True)
        original = weights.resolve(weights.spec("facenet-casia-webface").name)
        copy = tampered / original.name
        shutil.copyfile(original, copy)
        with copy.open("r+b") as handle:
            handle.seek(-8, 2)
            handle.write(b"\x00" * 8)
        corrupt = work / "corrupt.db"
        corrupt.write_bytes(b"SQLite format 3\x00" + os.urandom(3000))  # a database header, then garbage
        return {"FACELAB_WEIGHTS_DIR": f"{tampered}{os.pathsep}{SHARED_WEIGHTS_DIR}", "FACELAB_GALLERY": str(corrupt)}
    raise ValueError(kind)


def wait_until_loaded(log_path: Path, deadline_s: float = 180) -> None:
    """Until the background warm-up has loaded, or given up on, the last model (app.py logs either)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        if "face embedder ready" in text or "face embedder unavailable" in text:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the app did not finish loading its models within {deadline_s} s")


def run_attacks(kind: str, work: Path) -> list[dict]:
    env = server_env(kind, work)
    log_path = work / f"app_{kind}.log"
    process, url = launch_app(log_path, **env)
    try:
        context = Context(url, work)
        wait_until_loaded(log_path)
        warm = RawClient(url)
        warm.call("mask", [_upload(warm)])  # the first analysis's buffers are allocated before RSS is read
        rows = []
        for attack in (a for a in ATTACKS if a.server == kind):
            before = rss_mb(process.pid)
            blocked, got = attack.run(context)
            after = rss_mb(process.pid)
            rows.append({"attack": attack.name, "item": attack.item, "server": kind, "blocked": blocked,
                         "client_got": got[:300], "rss_growth_mb": round(after - before, 1)})
            print(f"{'blocked' if blocked else 'NOT BLOCKED'}: {attack.name} ({after - before:+.0f} MB) {got[:100]}",
                  flush=True)
        alive = process.poll() is None
        if not alive:
            rows.append({"attack": "server_alive_after", "item": 0, "server": kind, "blocked": False,
                         "client_got": "the server died", "rss_growth_mb": 0})
        log_text = log_path.read_text(errors="replace")
        for row in rows:
            row["traceback_in_log"] = "Traceback" in log_text
        return rows
    finally:
        stop_app(process)


def main() -> None:
    os.environ.setdefault("FACELAB_WEIGHTS_DIR", str(SHARED_WEIGHTS_DIR))
    os.environ.setdefault("FACELAB_BACKBONE", "casia-webface")
    os.environ.setdefault("FACELAB_THREADS", "1")
    reload_settings()  # pipeline read the settings when it was imported
    work = Path(tempfile.mkdtemp(prefix="facelab_security_"))
    rows = [row for kind in ("default", "shared", "broken") for row in run_attacks(kind, work)]
    security = {
        "attacks_tried": len(rows),
        "attacks_blocked": sum(row["blocked"] for row in rows),
        "max_rss_growth_mb": max(row["rss_growth_mb"] for row in rows),
        "rss_budget_mb": RSS_BUDGET_MB,
        "tracebacks_in_logs": any(row["traceback_in_log"] for row in rows),
        "attacks": rows,
    }
    write_results(RESULTS, security)  # its own file: reliability.py rewrites reliability.json whole
    print(f"{security['attacks_blocked']} / {security['attacks_tried']} blocked; largest RSS growth "
          f"{security['max_rss_growth_mb']} MB")


if __name__ == "__main__":
    main()
