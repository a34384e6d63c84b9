"""Replays and hostile clients: stale or reused signatures, bodies that never come, clients that leave.

(The URL check's window and the signature-before-body rule are in test_webhook_protocol.py.)

The last group runs a real uvicorn server (httptools, as in production) in a
thread and talks to it over raw sockets: a TestClient cannot trickle a body or
hang up halfway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from bot.flusher import drain
from bot.config import Settings
from bot.inbound import Rejected, ReplayGuard, check_timestamp
from bot.services import Services, build_services
from bot.simulator import WeChatSimulator
from storage.models import MessageLog
from storage.state import MemoryState
from tests.conftest import AES_KEY, APPID, BACKENDS, PG_URL, REDIS_URL, TOKEN
from tests.support.fake_wechat_api import FakeWeChatAPI
from tests.test_cli import SISONG, cli_env


def log_count(services: Services) -> int:
    drain(services)  # the Redis inbox logs behind (bot.flusher)
    with services.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(MessageLog)) or 0)


def requests_counted(status: str, method: str = "POST") -> float:
    value = REGISTRY.get_sample_value("sisong_webhook_requests_total", {"method": method, "status": status})
    return value or 0.0


# -- timestamps ------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-365 * 86400, -301, 301, 86400], ids=["year-old", "stale", "future", "tomorrow"])
def test_timestamp_outside_the_window_is_refused(
    client: TestClient, services: Services, sim: WeChatSimulator, offset: int
) -> None:
    request = sim.sign(sim.text("帮助"), timestamp=str(int(time.time()) + offset))
    response = client.post("/wechat", params=request.params, content=request.body)
    assert response.status_code == 403
    assert "timestamp outside the window" in response.text
    assert log_count(services) == 0


def test_timestamp_inside_the_window_is_accepted(client: TestClient, sim: WeChatSimulator) -> None:
    for offset in (-250, 250):  # WeChat's clock and ours may differ a little either way
        request = sim.sign(sim.text("帮助"), timestamp=str(int(time.time()) + offset))
        response = client.post("/wechat", params=request.params, content=request.body)
        assert response.status_code == 200 and "打字" in sim.decode(200, response.content, request).text


@pytest.mark.parametrize("timestamp", ["soon", "1.7e9", "-1700000000", "１７００００００００"])
def test_non_numeric_timestamp_is_refused(
    client: TestClient, services: Services, sim: WeChatSimulator, timestamp: str
) -> None:
    request = sim.sign(sim.text("帮助"), timestamp=timestamp)  # correctly signed, still refused
    response = client.post("/wechat", params=request.params, content=request.body)
    assert response.status_code == 403 and "timestamp not numeric" in response.text
    assert log_count(services) == 0


def test_window_zero_switches_the_timestamp_check_off(make_settings: Callable[..., Settings]) -> None:
    from bot.app import create_app

    services = build_services(make_settings(signature_window=0), migrate=True)
    sim = WeChatSimulator(TOKEN, APPID, openid="oWindowOff000000000000001")
    try:
        with TestClient(create_app(services)) as client:
            request = sim.sign(sim.text("帮助"), timestamp="1500000000")
            response = client.post("/wechat", params=request.params, content=request.body)
            assert response.status_code == 200
    finally:
        services.close()


def test_check_timestamp_edges() -> None:
    check_timestamp("1000", 300, now=1300)
    check_timestamp("1600", 300, now=1300)
    check_timestamp("nonsense", 0)  # window 0: off
    for timestamp in ("999", "1601", "9" * 40, ""):
        with pytest.raises(Rejected):
            check_timestamp(timestamp, 300, now=1300)


# -- the same signed URL twice ------------------------------------------------------


def test_same_signed_url_with_another_body_is_refused(
    client: TestClient, services: Services, sim: WeChatSimulator, api: FakeWeChatAPI
) -> None:
    """Plain mode: the signature does not cover the body, so a seen URL could carry anything."""
    request = sim.sign(sim.text("帮助"))
    first = client.post("/wechat", params=request.params, content=request.body)
    assert first.status_code == 200 and "打字" in first.text

    forged = sim.text("找人工", openid="oVictim00000000000000001")
    response = client.post("/wechat", params=request.params, content=forged.encode())
    assert response.status_code == 403 and response.text == "replayed signature"
    assert log_count(services) == 1  # only the genuine message was handled
    time.sleep(0.2)
    assert api.calls_to("message/custom/send") == []


def test_same_signed_url_with_the_same_body_is_a_retry(
    client: TestClient, services: Services, sim: WeChatSimulator
) -> None:
    """WeChat resends a delivery it got no answer to: same URL, same bytes, same reply, one handling."""
    request = sim.sign(sim.text("帮助"))
    replies = [client.post("/wechat", params=request.params, content=request.body) for _ in range(3)]
    assert [r.status_code for r in replies] == [200, 200, 200]
    # The same reply each time; its CreateTime is when each response was written (a second may tick between).
    same = [re.sub(rb"<CreateTime>\d+</CreateTime>", b"", r.content) for r in replies]
    assert same[0] == same[1] == same[2] and b"<Content>" in same[0]
    assert log_count(services) == 1


def test_replay_rule_holds_in_safe_mode(make_settings: Callable[..., Settings]) -> None:
    from bot.app import create_app

    services = build_services(make_settings(wechat_aes_key=AES_KEY), migrate=True)
    sim = WeChatSimulator(TOKEN, APPID, AES_KEY, mode="safe", openid="oSafeReplay00000000000001")
    try:
        with TestClient(create_app(services)) as client:
            first = sim.sign(sim.text("帮助"))
            assert client.post("/wechat", params=first.params, content=first.body).status_code == 200
            again = client.post("/wechat", params=first.params, content=first.body)
            assert again.status_code == 200
            ts, nonce = first.params["timestamp"], first.params["nonce"]
            other = sim.sign(sim.text("你好"), timestamp=ts, nonce=nonce)  # same URL signature, new ciphertext
            response = client.post("/wechat", params=other.params, content=other.body)
            assert response.status_code == 403 and response.text == "replayed signature"
            assert log_count(services) == 1
    finally:
        services.close()


def test_replay_guard_makes_one_claim_and_remembers_a_hash() -> None:
    class Counting(MemoryState):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[str] = []

        def claim(self, key: str, value: str, ttl: int) -> bool:
            self.calls.append(f"claim ttl={ttl}")
            return super().claim(key, value, ttl)

        def get(self, key: str) -> str | None:
            self.calls.append("get")
            return super().get(key)

    state = Counting()
    guard = ReplayGuard(state, window=300)
    params = {"timestamp": "1700000000", "nonce": "42", "signature": "ab" * 20}
    body = b"<xml><Content>secret words</Content></xml>"
    guard.check(params, body)
    assert state.calls == ["claim ttl=600"]
    stored = state.get(ReplayGuard.key(params)) or ""
    assert b"secret" not in stored.encode() and len(stored) == 32
    guard.check(params, body)
    with pytest.raises(Rejected) as refused:
        guard.check(params, body + b" ")
    assert refused.value.status == 403
    assert ReplayGuard(MemoryState(), window=0).ttl == 600


# -- a real server, raw sockets ----------------------------------------------------------


class LiveServer:
    def __init__(self, services: Services) -> None:
        from bot.app import create_app

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(create_app(services), http="httptools", loop="asyncio", log_config=None,
                                access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])))

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)


def head(params: dict[str, str], length: int) -> bytes:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return (f"POST /wechat?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def read_reply(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def live(make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    for name in ("uvicorn", "uvicorn.error"):  # whatever configured them before, let caplog see them
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
    # An earlier test's setup_logging() may have left a handler on a stream pytest has since closed;
    # its "--- Logging error ---" tracebacks on stderr would be that test's noise, not this server's.
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [h for h in root.handlers if not getattr(h, "_sisong", False)])
    caplog.set_level(logging.DEBUG)
    services = build_services(make_settings(body_timeout=1.0), migrate=True)
    try:
        with LiveServer(services) as server:
            yield server
    finally:
        services.close()


def assert_quiet(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info]
    assert "Traceback" not in capfd.readouterr().err


def test_client_that_hangs_up_mid_body_is_answered_quietly(
    live: LiveServer, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    sim = WeChatSimulator(TOKEN, APPID, openid="oHangUp00000000000000001")
    request = sim.sign(sim.text("帮助" * 100))
    before = requests_counted("499")
    with live.connect() as conn:
        conn.sendall(head(request.params, len(request.body)) + request.body[: len(request.body) // 2])
        time.sleep(0.1)
    deadline = time.monotonic() + 3
    while requests_counted("499") == before:
        assert time.monotonic() < deadline, "disconnect not counted"
        time.sleep(0.02)
    time.sleep(0.1)
    assert [r.getMessage() for r in caplog.records if "went away" in r.getMessage()]
    assert_quiet(caplog, capfd)


def test_slow_client_gets_408_within_the_body_timeout(
    live: LiveServer, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    sim = WeChatSimulator(TOKEN, APPID, openid="oTrickle0000000000000001")
    request = sim.sign(sim.text("帮助"))
    started = time.monotonic()
    with live.connect() as conn:
        conn.sendall(head(request.params, len(request.body)))
        conn.settimeout(0.25)
        reply = b""
        for byte in request.body:  # a byte every quarter second: would take minutes
            try:
                conn.sendall(bytes([byte]))
                reply = conn.recv(4096)
                break
            except TimeoutError:
                continue
            except OSError:  # the server already hung up after answering
                break
        if not reply:
            conn.settimeout(2)
            reply = read_reply(conn)
    elapsed = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408"), reply[:100]
    assert elapsed < 2.0  # SISONG_BODY_TIMEOUT is 1 s here
    refusals = [r for r in caplog.records if "body not received" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelno == logging.WARNING
    assert_quiet(caplog, capfd)


def test_huge_declared_body_with_bad_signature_is_refused_at_once(live: LiveServer) -> None:
    sim = WeChatSimulator("notourtoken", APPID)
    params = sim.sign("<xml/>").params
    started = time.monotonic()
    with live.connect() as conn:
        conn.sendall(head(params, 10 * 1024 * 1024))  # and not one byte of it
        reply = read_reply(conn)
        assert reply.startswith(b"HTTP/1.1 403"), reply[:100]
        assert b"connection: close" in reply.lower()
    assert time.monotonic() - started < 1.0


# -- serve --workers N -------------------------------------------------------------------


def test_serve_removes_the_metrics_dir_it_created(tmp_path: Path, api: FakeWeChatAPI) -> None:
    if "server" not in BACKENDS:
        pytest.skip("several workers need PostgreSQL and Redis")
    from storage.db import Database

    database = Database(PG_URL)
    database.upgrade()
    database.dispose()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    number = port.getsockname()[1]
    port.close()
    env = cli_env(api, tmp_path, SISONG_DATABASE_URL=PG_URL, SISONG_REDIS_URL=REDIS_URL, TMPDIR=str(tmp))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = subprocess.Popen([*SISONG, "serve", "--workers", "2", "--port", str(number)], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = b""
    try:
        assert server.stdout is not None
        while b"Started parent process" not in output:  # the supervisor now handles signals
            line = server.stdout.readline()
            assert line, "serve exited early:\n" + output.decode(errors="replace")
            output += line
        assert len(list(tmp.glob("sisong-metrics-*"))) == 1
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert list(tmp.glob("sisong-metrics-*")) == []


def test_metrics_dir_cleanup_leaves_a_given_dir_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.cli import multiprocess_metrics_dir

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with multiprocess_metrics_dir(1) as path:
        assert path is None and "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    with pytest.raises(KeyboardInterrupt), multiprocess_metrics_dir(2) as path:
        assert path and Path(path).is_dir() and os.environ["PROMETHEUS_MULTIPROC_DIR"] == path
        raise KeyboardInterrupt
    assert not Path(path).exists() and "PROMETHEUS_MULTIPROC_DIR" not in os.environ

    given = tmp_path / "operator-metrics"
    given.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(given))
    with multiprocess_metrics_dir(4) as path:
        assert path == str(given)
    assert given.is_dir() and list(tmp_path.glob("sisong-metrics-*")) == []
