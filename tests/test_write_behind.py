"""The inbox's Redis fast path and its write-behind message log (issue 13), on the real servers.

A message whose unit of work writes nothing is claimed and settled in Redis, and its
``message_log`` row and the follower's times follow in batches (``bot.flusher``). Nothing may be
lost on the way: not on SIGTERM, not when a worker or a flusher is SIGKILLed, not when the worker
dies mid-answer; a unit of work that writes still commits with its row; the 48-hour window stays
right.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bot import flusher as flusher_module
from bot.app import create_app
from bot.flusher import LogFlusher, drain
from bot.pipeline import Pipeline
from bot.router import router
from bot.services import Services, build_services
from bot.simulator import WeChatSimulator
from bot.sweeper import Sweeper
from storage import inbox
from storage.models import Follower, KbUnanswered, MessageLog
from storage.models.base import utcnow
from storage.redis_inbox import LOG, RedisInbox
from tests.conftest import APPID, PG_URL, REDIS_URL, SECRET, TOKEN, wait_for


@pytest.fixture
def server_services(make_settings, backend, request) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    """Services on PostgreSQL + Redis; a test marked ``slow_flusher`` gets a flusher that waits a minute
    between passes, so a row it sees at once was committed with its unit of work, not flushed."""
    if backend != "server":
        pytest.skip("the write-behind log needs Redis")
    interval = 60.0 if request.node.get_closest_marker("slow_flusher") else 0.05
    built = build_services(make_settings(claim_lease=1.0, log_flush_interval=interval), migrate=True)
    yield built
    built.close()


@pytest.fixture
def server_client(server_services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(server_services)) as test_client:
        yield test_client


def rows(services: Services) -> list[MessageLog]:
    with services.db.session() as session:
        return list(session.scalars(select(MessageLog).where(MessageLog.direction == "in").order_by(MessageLog.id)))


def follower(services: Services, openid: str) -> Follower | None:
    with services.db.session() as session:
        return session.scalar(select(Follower).where(Follower.openid == openid))


def record(key: str, openid: str, *, at: str | None = None, touch: str = "interaction") -> dict:
    now = at or utcnow().isoformat()
    return {"key": key, "openid": openid, "msg_type": "text", "event": None, "msg_id": key[2:], "text": "帮助",
            "attempts": 1, "created_at": now, "status": "answered", "handler": "help.help_text", "reply": "好",
            "latency_ms": 3, "settled_at": now, "touch": touch}


def test_a_read_only_answer_is_logged_behind_with_the_window_kept(
        server_client: TestClient, server_services: Services) -> None:
    services = server_services
    sim = WeChatSimulator(TOKEN, APPID, openid="oBehind000000000000000001")
    assert "打字" in (sim.post(server_client, sim.text("帮助", msg_id=9500001)).text or "")
    assert services.redis_inbox is not None
    row = wait_for(lambda: next(iter(rows(services)), None), timeout=5)  # the flusher thread writes it
    assert (row.status, row.handler, row.msg_id, row.attempts) == ("answered", "help.help_text", "9500001", 1)
    assert row.text == "帮助" and row.payload is None and row.settled_at is not None
    seen = follower(services, sim.openid)
    assert seen is not None and seen.last_interaction is not None
    opened = seen.last_interaction

    time.sleep(0.05)
    sim.post(server_client, sim.event("CLICK", "MENU_HELP"))  # a menu click: seen, no window
    wait_for(lambda: len(rows(services)) == 2, timeout=5)
    later = follower(services, sim.openid)
    assert later is not None and later.last_seen > opened and later.last_interaction == opened
    health = server_client.get("/healthz").json()
    assert health["status"] == "ok" and health["log_backlog"] == 0


def test_a_retry_gets_the_first_reply_from_redis_and_one_row(
        server_client: TestClient, server_services: Services) -> None:
    sim = WeChatSimulator(TOKEN, APPID, openid="oBehindRetry0000000000001")
    xml = sim.text("帮助", msg_id=9500002)
    first, second = sim.post(server_client, xml), sim.post(server_client, xml)
    assert first.text and second.text == first.text
    drain(server_services)
    assert len(rows(server_services)) == 1


@pytest.mark.slow_flusher
def test_a_unit_of_work_that_writes_commits_its_row_with_it(
        server_client: TestClient, server_services: Services, api) -> None:  # type: ignore[no-untyped-def]
    """A question the handbook cannot answer is queued for a person: that write and the message's row
    commit together, at once, not through the buffer."""
    services = server_services
    sim = WeChatSimulator(TOKEN, APPID, openid="oBehindWrites000000000001")
    reply = sim.post(server_client, sim.text("我家的狗咬了邻居家的鸭子要赔多少钱", msg_id=9500003))
    assert reply.text
    assert services.redis_inbox is not None and services.redis_inbox.backlog() == 0
    (row,) = rows(services)  # no drain: committed in the handler's transaction
    assert row.status == "answered" and row.msg_id == "9500003"
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(KbUnanswered)) == 1
    assert follower(services, sim.openid) is not None


def test_a_batch_written_twice_changes_nothing_and_times_only_move_forward(server_services: Services) -> None:
    services = server_services
    newer = record("m:9500010", "oTwice0000000000000000001")
    older = record("m:9500011", "oTwice0000000000000000001",
                   at=(utcnow() - timedelta(hours=3)).isoformat())
    for _ in range(2):
        with services.db.session() as session:
            inbox.flush_records(session, [newer])
    with services.db.session() as session:
        inbox.flush_records(session, [older])
    assert [r.msg_id for r in rows(services)] == ["9500010", "9500011"]
    seen = follower(services, "oTwice0000000000000000001")
    assert seen is not None
    assert seen.last_seen.isoformat() == newer["created_at"] == seen.last_interaction.isoformat()


def test_a_dead_flushers_records_are_written_by_another(
        server_services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """Flusher A takes a batch and dies before committing; B puts it back and writes it."""
    services = server_services
    assert services.redis_inbox is not None
    client = services.redis_inbox.client
    client.rpush(LOG, *(json.dumps(record(f"m:95001{n:02d}", f"oDead{n:020d}")) for n in range(5)))
    dead = LogFlusher(services, services.redis_inbox, interval=1)
    taken = services.redis_inbox.take_batch(dead.id, 500, heartbeat=0.2)  # then "killed": no commit
    assert len(taken) == 5 and services.redis_inbox.backlog() == 0 and rows(services) == []
    monkeypatch.setattr(flusher_module, "REQUEUE_EVERY", 0.0)
    time.sleep(0.3)  # its heartbeat runs out
    assert LogFlusher(services, services.redis_inbox, interval=1).flush() == 5
    assert len(rows(services)) == 5
    assert client.llen(RedisInbox.flushing(dead.id)) == 0


def test_a_redis_claim_whose_worker_died_is_answered_by_the_sweeper(
        server_services: Services, api) -> None:  # type: ignore[no-untyped-def]
    import handlers  # noqa: F401

    services = server_services
    services.queue.start_embedded()
    assert services.redis_inbox is not None
    sim = WeChatSimulator(TOKEN, APPID, openid="oBehindOrphan000000000001")
    xml = sim.text("帮助", msg_id=9500020)
    assert services.redis_inbox.claim("m:9500020", "dead:worker", 0.1, xml).mine  # then killed
    sweeper = Sweeper(services, Pipeline(services, router))
    time.sleep(1.2)  # lease + the sweeper's grace
    assert sweeper.sweep()["resumed"] == 1
    (sent,) = wait_for(lambda: api.calls_to("message/custom/send"), timeout=10)
    assert sent.json["touser"] == sim.openid and "打字" in sent.json["text"]["content"]
    wait_for(lambda: rows(services) and rows(services)[0].status == "answered", timeout=5)
    (row,) = rows(services)
    assert row.msg_id == "9500020" and row.text == "帮助"
    assert sweeper.sweep()["resumed"] == 0


def test_a_retry_takes_over_a_dead_redis_claim(server_client: TestClient, server_services: Services) -> None:
    services = server_services
    assert services.redis_inbox is not None
    sim = WeChatSimulator(TOKEN, APPID, openid="oBehindTakeover0000000001")
    xml = sim.text("帮助", msg_id=9500030)
    assert services.redis_inbox.claim("m:9500030", "dead:worker", 0.2, xml).mine
    time.sleep(0.3)
    assert "打字" in (sim.post(server_client, xml).text or "")
    drain(services)
    (row,) = rows(services)
    assert row.status == "answered" and row.attempts == 2


# -- a real server: SIGTERM and SIGKILL ----------------------------------------------------------


def _serve(api, tmp_path: Path, flush_interval: float) -> tuple[subprocess.Popen[bytes], str]:  # type: ignore[no-untyped-def]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SISONG_")},
        "SISONG_WECHAT_TOKEN": TOKEN, "SISONG_WECHAT_APPID": APPID, "SISONG_WECHAT_SECRET": SECRET,
        "SISONG_WECHAT_API_BASE": api.base_url, "SISONG_DATABASE_URL": PG_URL, "SISONG_REDIS_URL": REDIS_URL,
        "SISONG_PORT": str(port), "SISONG_SPOOL_DIR": str(tmp_path / "spool"), "SISONG_LOG_LEVEL": "WARNING",
        "SISONG_LOG_FLUSH_INTERVAL": str(flush_interval), "SISONG_QUEUE_PATH": str(tmp_path / "queue.db"),
    }
    server = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, timeout=60, interval=0.3)
    return server, url


def _send(url: str, count: int, base: int) -> None:
    with httpx.Client(base_url=url, timeout=10) as http:
        for n in range(count):
            sim = WeChatSimulator(TOKEN, APPID, openid=f"oSignal{base + n:018d}")
            assert sim.post(http, sim.text("帮助", msg_id=base + n)).text


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_stopped_worker_loses_no_logged_message(make_settings, backend, api, tmp_path: Path, sig) -> None:  # type: ignore[no-untyped-def]
    """Rows wait in the buffer (the flusher's next pass is a minute away) when the worker is stopped:
    SIGTERM writes them before exiting; after SIGKILL the next worker's flusher writes them."""
    if backend != "server":
        pytest.skip("the write-behind log needs Redis")
    services = build_services(make_settings(), migrate=True)  # empties the stores
    try:
        server, url = _serve(api, tmp_path, flush_interval=60)
        try:
            time.sleep(0.5)  # the flusher's first pass (at start) is done: the next is a minute away
            _send(url, 20, 9600000)
            assert services.redis_inbox is not None and services.redis_inbox.backlog() == 20
            assert rows(services) == []
            os.killpg(server.pid, sig)
            server.wait(timeout=30)
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
        if sig == signal.SIGTERM:
            assert len(rows(services)) == 20 and services.redis_inbox.backlog() == 0
        else:
            assert rows(services) == [] and services.redis_inbox.backlog() == 20
            again, _ = _serve(api, tmp_path, flush_interval=0.2)
            try:
                wait_for(lambda: len(rows(services)) == 20, timeout=20)
            finally:
                os.killpg(again.pid, signal.SIGTERM)
                again.wait(timeout=30)
        assert sorted(r.msg_id for r in rows(services)) == [str(9600000 + n) for n in range(20)]
    finally:
        services.close()


# -- what the review of the first version found ------------------------------------------------


def test_a_sweeper_that_cannot_reach_the_database_loses_nothing(
        server_services: Services, api, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The abandoned claim stays in Redis, payload and all, until the database inbox holds it."""
    import handlers  # noqa: F401
    from sqlalchemy.exc import OperationalError

    services = server_services
    services.queue.start_embedded()
    assert services.redis_inbox is not None
    sim = WeChatSimulator(TOKEN, APPID, openid="oBehindSweepDbDown0000001")
    xml = sim.text("帮助", msg_id=9500040)
    assert services.redis_inbox.claim("m:9500040", "dead:worker", 0.1, xml).mine
    time.sleep(1.2)
    real_claim = inbox.claim

    def database_down(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(inbox, "claim", database_down)
    sweeper = Sweeper(services, Pipeline(services, router))
    assert sweeper.sweep()["resumed"] == 0
    status, payload = services.redis_inbox.client.hmget("sisong:in:m:9500040", ["status", "payload"])
    assert status == b"received" and payload == xml.encode()
    monkeypatch.setattr(inbox, "claim", real_claim)
    services.db.breaker.close()  # the failed claim opened it; its probe would close it in a few seconds
    time.sleep(1.2)  # the failed sweeper's own lease runs out
    wait_for(lambda: sweeper.sweep()["resumed"] == 1, timeout=10, interval=0.5)
    (sent,) = wait_for(lambda: api.calls_to("message/custom/send"), timeout=10)
    assert sent.json["touser"] == sim.openid
    (row,) = rows(services)
    assert row.attempts == 3  # the dead worker, the failed sweep, this one


def test_a_stopping_flusher_puts_back_what_it_could_not_write(server_services: Services) -> None:
    services = server_services
    assert services.redis_inbox is not None
    services.redis_inbox.client.rpush(LOG, *(json.dumps(record(f"m:95005{n:02d}", f"oBack{n:020d}"))
                                             for n in range(3)))
    stopping = LogFlusher(services, services.redis_inbox, interval=1)
    assert len(services.redis_inbox.take_batch(stopping.id, 500, heartbeat=10)) == 3  # then the database fails
    assert services.redis_inbox.retire(stopping.id) == 3
    assert services.redis_inbox.backlog() == 3 and services.redis_inbox.in_flight() == 0
    drain(services)
    assert len(rows(services)) == 3


@pytest.mark.slow_flusher
def test_a_takeover_commits_its_row_and_a_slow_first_attempt_then_loses(
        server_client: TestClient, server_services: Services) -> None:
    """The first attempt was slow, not dead: the retry that took its claim over commits the row at once
    (no write-behind), and the first attempt's own commit is refused by the unique key."""
    services = server_services
    assert services.redis_inbox is not None
    sim = WeChatSimulator(TOKEN, APPID, openid="oBehindSlowFirst000000001")
    xml = sim.text("帮助", msg_id=9500050)
    assert services.redis_inbox.claim("m:9500050", "slow:first", 0.2, xml).mine
    time.sleep(0.3)
    assert "打字" in (sim.post(server_client, xml).text or "")
    (row,) = rows(services)  # committed, not buffered
    assert row.attempts == 2 and services.redis_inbox.backlog() == 0
    late = record("m:9500050", sim.openid)
    with pytest.raises(inbox.LostClaim):
        with services.db.session() as session:
            inbox.insert_settled(session, late, payload="第二个答复")


def test_a_retry_after_a_commit_whose_worker_died_gets_the_committed_reply(
        server_client: TestClient, server_services: Services) -> None:
    """The worker committed the row, then died before answering or settling in Redis: the retry takes the
    Redis claim over, finds the row, and answers with its reply instead of running the handler again."""
    services = server_services
    assert services.redis_inbox is not None
    sim = WeChatSimulator(TOKEN, APPID, openid="oBehindCommitted000000001")
    xml = sim.text("找人工", msg_id=9500060)
    assert services.redis_inbox.claim("m:9500060", "dead:after:commit", 0.2, xml).mine
    with services.db.session() as session:
        inbox.insert_settled(session, record("m:9500060", sim.openid) | {"reply": "已记下"}, payload="已记下，工作人员会联系您。")
    time.sleep(0.3)
    assert sim.post(server_client, xml).text == "已记下，工作人员会联系您。"
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(KbUnanswered)) == 0  # the handler did not run again
    assert services.redis_inbox.look("m:9500060").status == "moved"


def test_a_redis_that_refuses_sends_messages_down_the_database_path(
        server_client: TestClient, server_services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """Out of memory, read-only after a failover: Redis answers but refuses; the message is answered and
    logged through the database inbox, not lost."""
    import redis

    def refused(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise redis.exceptions.ResponseError("OOM command not allowed when used memory > 'maxmemory'.")

    monkeypatch.setattr(RedisInbox, "claim", refused)
    sim = WeChatSimulator(TOKEN, APPID, openid="oBehindRefused00000000001")
    assert "打字" in (sim.post(server_client, sim.text("帮助", msg_id=9500070)).text or "")
    (row,) = rows(server_services)  # the database inbox's row, committed at once
    assert row.status == "answered" and row.msg_id == "9500070"
