"""Security (issue 13): an attacker's requests over plain HTTP against a running app, one test per attack of
benchmarks/security.py (the same catalogue the benchmark reports in security.json).

Three real servers: the default one, one with a shared gallery and an operator token, and one whose
embedder weights are tampered with and whose shared gallery file is corrupt. Each attack must be refused
with a clear message (the same message for every server path, whatever exists there), no request may grow
the server by more than 100 MB, and no log may hold a traceback.
"""

from __future__ import annotations

import pytest

from benchmarks.app_server import launch_app, stop_app
from benchmarks.security import (
    ADMIN_TOKEN,
    ASTRONAUT,
    ATTACKS,
    RSS_BUDGET_MB,
    Context,
    RawClient,
    file_payload,
    rss_mb,
    server_env,
    wait_until_loaded,
)

pytestmark = [pytest.mark.shared_data, pytest.mark.slow, pytest.mark.timeout(300)]


class Server:
    def __init__(self, kind: str, work) -> None:
        self.log = work / f"app_{kind}.log"
        self.process, self.url = launch_app(self.log, **server_env(kind, work))
        wait_until_loaded(self.log)
        self.context = Context(self.url, work)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    work = tmp_path_factory.mktemp("security")
    started: dict[str, Server] = {}

    def get(kind: str) -> Server:
        if kind not in started:
            started[kind] = Server(kind, work)
        return started[kind]

    yield get
    for server in started.values():
        stop_app(server.process)
        text = server.log.read_text(errors="replace")
        assert "Traceback" not in text, f"a traceback in {server.log.name}:\n{text[-3000:]}"


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_the_attack_is_blocked(servers, attack) -> None:
    server = servers(attack.server)
    before = rss_mb(server.process.pid)
    blocked, got = attack.run(server.context)
    growth = rss_mb(server.process.pid) - before
    assert blocked, f"{attack.name} (finding {attack.item}) was not blocked; the client got: {got}"
    assert server.process.poll() is None, "the server died"
    assert growth < RSS_BUDGET_MB, f"{attack.name} grew the server by {growth:.0f} MB"


def test_a_visitors_own_upload_is_analysed(servers) -> None:
    """The gate lets through what it should: a browser's upload of a real photo."""
    client = RawClient(servers("default").url)
    answer = client.call("mask", [file_payload(client.upload(ASTRONAUT.read_bytes(), "mine.jpg"))])
    assert answer.ok and answer.output[1]["data"][0][1].startswith("no mask")


def test_the_operator_token_deletes_and_clears_the_shared_gallery(servers) -> None:
    client = RawClient(servers("shared").url)
    photo = file_payload(client.upload(ASTRONAUT.read_bytes(), "eileen.jpg"))
    assert client.call("enroll", ["Ada Operator", photo, "", True, None]).ok  # enrolling stays open
    assert client.call("delete", ["Ada Operator", ADMIN_TOKEN, None]).ok
    names = [p["name"] for p in client.call("people", [None]).output[0]]
    assert "Ada Operator" not in names
    assert client.call("clear", [ADMIN_TOKEN, None]).ok
    assert client.call("people", [None]).output == [[]]


def test_a_broken_model_or_gallery_names_no_server_path(servers) -> None:
    """The visitor's reason says what is off and why, the operator's log says where."""
    server = servers("broken")
    client = RawClient(server.url)
    answer = client.call("verify", [file_payload(client.upload(ASTRONAUT.read_bytes(), "a.jpg")),
                                    file_payload(client.upload(ASTRONAUT.read_bytes(), "b.jpg")), "balanced"])
    assert "sha256" in answer.message and str(server.context.work) not in answer.message
    log = server.log.read_text()
    assert "corrupt.db" in log and "tampered_weights" in log  # the operator can find what to fix
