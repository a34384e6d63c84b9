"""Faults on the message path, reproduced against the real servers (issue 6).

Redis and PostgreSQL are made to *hang* (a TCP proxy that stops forwarding
while keeping its sockets open, which is what a SIGSTOPped server looks like),
Redis is made to refuse, a claim is left behind by a "dead" worker, and a
real ``sisong serve --workers 2`` loses a worker to SIGKILL under load.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from bot.flusher import drain
from bot.app import create_app
from bot.context import Context
from bot.pipeline import BUSY_TEXT, ERROR_TEXT
from bot.router import _Keyword, router
from bot.services import Services, build_services
from bot.simulator import WeChatSimulator
from bot.sweeper import Sweeper
from storage.models import KbUnanswered, MessageLog
from storage.models.base import utcnow
from tests.conftest import APPID, PG_URL, REDIS_URL, SECRET, TOKEN, wait_for
from tests.support.fault_proxy import FaultProxy

REDIS_DB = int(urlsplit(REDIS_URL).path.strip("/") or 0)  # this test process's database (xdist workers differ)

FAST = {"breaker_seconds": 1.0, "sweep_interval": 0.2, "claim_lease": 1.0}


def _server_only(backend: str) -> None:
    if backend != "server":
        pytest.skip("needs the server stack (PostgreSQL and Redis over TCP)")


@pytest.fixture
def redis_proxy() -> Iterator[FaultProxy]:
    host, port = re.match(r"redis://([^:/]+):(\d+)", REDIS_URL).groups()  # type: ignore[union-attr]
    with FaultProxy(host, int(port)) as proxy:
        yield proxy


@pytest.fixture
def pg_proxy() -> Iterator[FaultProxy]:
    host, port = re.match(r"postgresql://[^@]*@([^:/]+):(\d+)", PG_URL).groups()  # type: ignore[union-attr]
    with FaultProxy(host, int(port)) as proxy:
        yield proxy


COUNTED: list[str] = []


@pytest.fixture
def counting_handler() -> Iterator[None]:
    def counted(ctx: Context) -> str:
        COUNTED.append(ctx.text or "")
        time.sleep(0.2)
        return "记下了"

    keyword = _Keyword(re.compile(r"^计数$"), counted, True)
    COUNTED.clear()
    router.keywords.insert(0, keyword)
    yield
    router.keywords.remove(keyword)


def timed_post(sim: WeChatSimulator, client, xml: str):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    reply = sim.post(client, xml)
    return reply, time.monotonic() - started


def rows(services: Services) -> list[MessageLog]:
    drain(services)  # the Redis inbox logs behind (bot.flusher)
    with services.db.session() as session:
        return list(session.scalars(select(MessageLog).where(MessageLog.direction == "in").order_by(MessageLog.id)))


# -- Redis hangs --------------------------------------------------------------------


def test_hung_redis_costs_followers_nothing(make_settings, backend, redis_proxy, api) -> None:  # type: ignore[no-untyped-def]
    _server_only(backend)
    settings = make_settings(redis_url=redis_proxy.redis_url(REDIS_DB), **FAST)
    services = build_services(settings, migrate=True)
    sim = WeChatSimulator(TOKEN, APPID, openid="oRedisHang00000000000001")
    try:
        with TestClient(create_app(services)) as client:
            assert "打字" in (sim.post(client, sim.text("帮助")).text or "")
            redis_proxy.hang()
            timings = []
            for _ in range(8):
                reply, took = timed_post(sim, client, sim.text("帮助"))
                assert "打字" in (reply.text or ""), reply
                timings.append(took)
            # One Redis timeout (0.5 s) at most, then the breaker answers from memory.
            assert max(timings) < settings.reply_deadline
            assert sum(timings[1:]) < 1.5, timings

            started = time.monotonic()
            health = client.get("/healthz")
            assert time.monotonic() - started < 1.0
            assert health.status_code == 200
            assert health.json()["status"] == "degraded" and health.json()["redis"].startswith("down")

            services.queue.send_text("oRedisHang00000000000001", "队列卡住也要送到")  # falls back to a thread
            wait_for(lambda: any(c.json["text"]["content"] == "队列卡住也要送到"
                                 for c in api.calls_to("message/custom/send")), timeout=5)

            redis_proxy.pass_()
            wait_for(lambda: client.get("/healthz").json()["status"] == "ok", timeout=10)
        assert len(rows(services)) == 9
    finally:
        redis_proxy.pass_()
        services.close()


def test_hung_redis_never_blocks_the_rate_limiter_or_state_per_message(make_settings, backend, redis_proxy) -> None:  # type: ignore[no-untyped-def]
    _server_only(backend)
    services = build_services(make_settings(redis_url=redis_proxy.redis_url(REDIS_DB), **FAST), migrate=True)
    try:
        redis_proxy.hang()
        started = time.monotonic()
        for _ in range(20):
            services.limiter.allow("100/minute", "in", "oX")
            services.state.get("session:oX")
        assert time.monotonic() - started < 1.5  # one timeout, not twenty
        assert services.redis_breaker is not None and services.redis_breaker.is_open
    finally:
        redis_proxy.pass_()
        services.close()


# -- the database hangs -------------------------------------------------------------


def test_hung_database_gets_busy_in_time_and_keeps_the_question(make_settings, backend, pg_proxy) -> None:  # type: ignore[no-untyped-def]
    _server_only(backend)
    dbname = PG_URL.rsplit("/", 1)[1]
    settings = make_settings(database_url=pg_proxy.postgres_url(dbname), **FAST)
    services = build_services(settings, migrate=True)
    sim = WeChatSimulator(TOKEN, APPID, openid="oDbHang000000000000000001")
    try:
        with TestClient(create_app(services)) as client:
            assert "打字" in (sim.post(client, sim.text("帮助")).text or "")
            pg_proxy.hang()
            first, took_first = timed_post(sim, client, sim.text("我的电话13812345678，低保怎么申请", msg_id=9100001))
            second, took_second = timed_post(sim, client, sim.text("危房改造找谁", msg_id=9100002))
            assert first.text == BUSY_TEXT and second.text == BUSY_TEXT
            assert took_first < settings.reply_deadline
            assert took_second < 0.5  # the breaker is open: no second timeout

            started = time.monotonic()
            health = client.get("/healthz")
            assert time.monotonic() - started < 1.0
            assert health.status_code == 503 and health.json()["status"] == "down"
            assert services.spool.pending() >= 1

            pg_proxy.pass_()
            wait_for(lambda: services.spool.pending() == 0, timeout=15)
        kept = {r.msg_id: r for r in rows(services)}
        assert kept["9100001"].status == "busy" and kept["9100002"].status == "busy"
        assert "13812345678" not in (kept["9100001"].text or "")
        with services.db.session() as session:
            questions = [q.question for q in session.scalars(select(KbUnanswered))]
        assert any("低保怎么申请" in q for q in questions) and any("危房改造找谁" in q for q in questions)
        assert not any("13812345678" in q for q in questions)
    finally:
        pg_proxy.pass_()
        services.close()


def test_database_call_is_bounded_client_side(make_settings, backend, pg_proxy) -> None:  # type: ignore[no-untyped-def]
    """A query on an open connection to a hung server gives up at SISONG_DB_TIMEOUT, no later."""
    _server_only(backend)
    from sqlalchemy import text

    dbname = PG_URL.rsplit("/", 1)[1]
    services = build_services(make_settings(database_url=pg_proxy.postgres_url(dbname), db_timeout=0.5), migrate=True)
    try:
        with services.db.session() as session:
            session.execute(text("select 1"))
        pg_proxy.hang()
        started = time.monotonic()
        with pytest.raises(Exception) as raised, services.db.bounded(), services.db.session() as session:
            session.execute(text("select 1"))
        assert time.monotonic() - started < 1.0
        assert "did not answer" in str(raised.value) or "timed out" in str(raised.value)
    finally:
        pg_proxy.pass_()
        services.close()


# -- Redis refused: the database is the last line of dedupe ---------------------------------


def test_redelivered_message_runs_its_handler_once_across_workers_without_redis(
    make_settings, backend, counting_handler  # type: ignore[no-untyped-def]
) -> None:
    _server_only(backend)
    settings = make_settings(redis_url="redis://127.0.0.1:1/0", embedded_worker="false")
    first, second = build_services(settings, migrate=True), build_services(settings)
    sim = WeChatSimulator(TOKEN, APPID, openid="oNoRedis00000000000000001")
    try:
        with TestClient(create_app(first)) as a, TestClient(create_app(second)) as b:
            for n in range(10):
                xml = sim.text("计数", msg_id=9200000 + n)
                replies: list[str | None] = []
                threads = [threading.Thread(target=lambda c=c: replies.append(sim.post(c, xml).text))
                           for c in (a, b, a, b)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                assert replies.count("记下了") >= 1
        assert len(COUNTED) == 10  # one handler run per MsgId, whatever the deliveries
        assert len(rows(first)) == 10
    finally:
        first.close()
        second.close()


# -- a worker that died mid-answer -------------------------------------------------------


def _abandon(services: Services, sim: WeChatSimulator, xml: str, msg_id: int, attempts: int = 1) -> None:
    """Leave a claim behind as a killed worker would: received, lease run out."""
    from storage import inbox

    with services.db.session() as session:
        inbox.claim(session, key=f"m:{msg_id}", owner="dead:worker", lease=1, openid=sim.openid,
                    msg_type="text", event=None, msg_id=str(msg_id), text="帮助", payload=xml)
        session.execute(update(MessageLog).where(MessageLog.msg_id == str(msg_id))
                        .values(lease_until=utcnow() - timedelta(seconds=10), attempts=attempts))


def test_sweeper_answers_a_message_whose_worker_died(services: Services, api, backend) -> None:  # type: ignore[no-untyped-def]
    import handlers  # noqa: F401
    from bot.pipeline import Pipeline

    services.queue.start_embedded()  # the consumer that sends the late answer
    sim = WeChatSimulator(TOKEN, APPID, openid="oOrphan000000000000000001")
    xml = sim.text("帮助", msg_id=9300001)
    _abandon(services, sim, xml, 9300001)
    done = Sweeper(services, Pipeline(services, router)).sweep()
    assert done["resumed"] == 1
    (sent,) = wait_for(lambda: api.calls_to("message/custom/send"), timeout=10)
    assert sent.json["touser"] == sim.openid and "打字" in sent.json["text"]["content"]
    wait_for(lambda: rows(services)[0].status == "answered", timeout=5)
    (row,) = rows(services)
    assert row.attempts == 2 and row.payload is None
    assert Sweeper(services, Pipeline(services, router)).sweep()["resumed"] == 0


def test_a_handler_bug_on_a_resumed_message_still_apologises(services: Services, api, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Nobody waits on the webhook when the sweeper resumes a message: a handler that raises then must still
    leave the follower an apology (a failed row is never owed, so it cannot go the owed way)."""
    import handlers  # noqa: F401
    from bot.pipeline import Pipeline

    def broken(ctx):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")

    resolve = router.resolve
    monkeypatch.setattr(router, "resolve", lambda ctx: broken if ctx.text == "帮助" else resolve(ctx))
    services.queue.start_embedded()
    sim = WeChatSimulator(TOKEN, APPID, openid="oResumedBug0000000000001")
    xml = sim.text("帮助", msg_id=9300004)
    _abandon(services, sim, xml, 9300004)
    assert Sweeper(services, Pipeline(services, router)).sweep()["resumed"] == 1
    (sent,) = wait_for(lambda: api.calls_to("message/custom/send"), timeout=10)
    assert sent.json["touser"] == sim.openid and sent.json["text"]["content"] == ERROR_TEXT
    (row,) = rows(services)
    assert row.status == "failed"


def test_a_retry_takes_over_a_dead_workers_claim(client: TestClient, services: Services, api) -> None:  # type: ignore[no-untyped-def]
    sim = WeChatSimulator(TOKEN, APPID, openid="oRetryTakes0000000000001")
    xml = sim.text("帮助", msg_id=9300002)
    _abandon(services, sim, xml, 9300002)
    reply = sim.post(client, xml)
    assert "打字" in (reply.text or "")
    (row,) = rows(services)
    assert row.status == "answered" and row.attempts == 2


def test_a_message_that_kills_every_worker_is_given_up_with_an_apology(services: Services, api) -> None:  # type: ignore[no-untyped-def]
    from bot.pipeline import Pipeline

    services.queue.start_embedded()
    sim = WeChatSimulator(TOKEN, APPID, openid="oPoison00000000000000001")
    xml = sim.text("帮助", msg_id=9300003)
    _abandon(services, sim, xml, 9300003, attempts=services.settings.max_attempts)
    Sweeper(services, Pipeline(services, router)).sweep()
    (sent,) = wait_for(lambda: api.calls_to("message/custom/send"), timeout=10)
    assert sent.json["text"]["content"] == ERROR_TEXT
    (row,) = rows(services)
    assert row.status == "failed"


def test_worker_killed_under_load_loses_no_message(make_settings, backend, api, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A real `sisong serve --workers 2`; one worker gets SIGKILL with answers in flight."""
    _server_only(backend)
    make_settings()  # empties the database and Redis
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dbname = PG_URL.rsplit("/", 1)[1]
    host, pg_port = re.match(r"postgresql://[^@]*@([^:/]+):(\d+)", PG_URL).groups()  # type: ignore[union-attr]
    with FaultProxy(host, int(pg_port)) as slow_db:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SISONG_")},
            "SISONG_WECHAT_TOKEN": TOKEN, "SISONG_WECHAT_APPID": APPID, "SISONG_WECHAT_SECRET": SECRET,
            "SISONG_WECHAT_API_BASE": api.base_url, "SISONG_DATABASE_URL": slow_db.postgres_url(dbname),
            "SISONG_REDIS_URL": REDIS_URL, "SISONG_EMBEDDED_WORKER": "true", "SISONG_CLAIM_LEASE": "2",
            "SISONG_SWEEP_INTERVAL": "0.5", "SISONG_PORT": str(port), "SISONG_SPOOL_DIR": str(tmp_path / "spool"),
            "SISONG_LOG_LEVEL": "WARNING",
        }
        server = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--workers", "2"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            # Two workers importing everything on a busy 2-core machine: the start is not what is tested.
            wait_for(lambda: _answers(url), timeout=90, interval=0.5)
            workers = _children(server.pid)
            assert len(workers) == 2
            slow_db.delay(0.15)  # answers take ~1 s: plenty in flight when the worker dies
            followers = [WeChatSimulator(TOKEN, APPID, openid=f"oKill{n:020d}") for n in range(40)]
            outcomes: dict[str, str] = {}

            def wechat(sim: WeChatSimulator, n: int) -> None:
                xml = sim.text("帮助", msg_id=9400000 + n)
                for _ in range(3):  # WeChat's three attempts
                    try:
                        with httpx.Client(base_url=url, timeout=5) as http:
                            reply = sim.post(http, xml)
                        outcomes[sim.openid] = "passive" if reply.text else "success"
                        return
                    except httpx.HTTPError:
                        time.sleep(0.5)
                outcomes[sim.openid] = "no response"

            threads = [threading.Thread(target=wechat, args=(sim, n)) for n, sim in enumerate(followers)]
            for thread in threads:
                thread.start()
            time.sleep(0.4)
            os.kill(workers[0], signal.SIGKILL)
            for thread in threads:
                thread.join(timeout=30)
            slow_db.pass_()

            def answered(openid: str) -> bool:
                if outcomes.get(openid) == "passive":
                    return True
                return any(c.json["touser"] == openid for c in api.calls_to("message/custom/send"))

            wait_for(lambda: all(answered(sim.openid) for sim in followers), timeout=30, interval=0.5)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)  # a replacement worker still starting finishes that first
    db = build_services(_plain_settings(), migrate=False)
    try:
        # A batch the killed worker's flusher had taken goes back once its heartbeat is silent: written here.
        drain(db)
        with db.db.session() as session:
            statuses = dict(session.execute(
                select(MessageLog.status, func.count()).where(MessageLog.direction == "in")
                .group_by(MessageLog.status)).all())
            assert statuses.get("answered", 0) == 41  # 40 + the start-up probe
        custom = [c.json["touser"] for c in api.calls_to("message/custom/send")]
        passive = [o for o, how in outcomes.items() if how == "passive"]
        assert len(custom) == len(set(custom))  # nobody got a late answer twice
        assert not set(custom) & set(passive)  # nor a late answer on top of a passive one
    finally:
        db.close()


def _plain_settings():  # type: ignore[no-untyped-def]
    from bot.config import load_settings

    return load_settings(database_url=PG_URL, redis_url=REDIS_URL, wechat_token=TOKEN, wechat_appid=APPID,
                         wechat_secret=SECRET)


def _answers(url: str) -> bool:
    sim = WeChatSimulator(TOKEN, APPID, openid="oKillProbe00000000000001")
    try:
        with httpx.Client(base_url=url, timeout=5) as http:
            return "打字" in (sim.post(http, sim.text("帮助")).text or "")
    except httpx.HTTPError:
        return False


def _children(pid: int) -> list[int]:
    """uvicorn's worker processes (not multiprocessing's resource tracker)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="ignore")]


# -- effects only after the commit ------------------------------------------------------


def test_no_cadre_notice_and_no_queue_entry_when_the_unit_of_work_fails(
    client: TestClient, services: Services, api, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    """A hand-over whose commit fails (here: the claim was taken over) must announce nothing."""
    from storage import inbox

    def lost(*args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        raise inbox.LostClaim(0)

    monkeypatch.setattr(inbox, "settle", lost)
    monkeypatch.setattr(inbox, "insert_settled", lost)  # the same commit for a message claimed in Redis
    sim = WeChatSimulator(TOKEN, APPID, openid="oNoEffect0000000000000001")
    assert sim.post(client, sim.text("找人工")).is_success
    time.sleep(1.0)  # the embedded consumer would have sent a queued notice by now
    assert api.calls_to("webhook/send") == []
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(KbUnanswered)) == 0

    monkeypatch.undo()
    assert "工作人员" in (sim.post(client, sim.text("找人工")).text or "")
    wait_for(lambda: api.calls_to("webhook/send"), timeout=10)
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(KbUnanswered)) == 1


def test_migration_masks_text_stored_before(make_settings, backend) -> None:  # type: ignore[no-untyped-def]
    """Rows written before masking covered every format are masked by migration 0004."""
    from alembic import command
    from sqlalchemy import text as sql

    from storage.db import Database

    settings = make_settings()
    db = Database(settings.database_url)
    try:
        if db.pending_migrations():  # a fresh SQLite file
            command.upgrade(db._alembic_config(), "0003")
        else:
            command.downgrade(db._alembic_config(), "0003")
        with db.engine.begin() as conn:
            conn.execute(sql("INSERT INTO kb_faqs (question, answer, created_at) VALUES "
                             "('我电话+86 138-1234-5678怎么办', '请找村委会', CURRENT_TIMESTAMP)"))
            conn.execute(sql("INSERT INTO message_log (created_at, direction, openid, msg_type, text, attempts) "
                             "VALUES (CURRENT_TIMESTAMP, 'in', 'oOld', 'text', '身份证110101199001011234', 0)"))
        assert db.upgrade()[0] == "0004"
        with db.engine.connect() as conn:
            question = conn.execute(sql("SELECT question FROM kb_faqs")).scalar_one()
            logged = conn.execute(sql("SELECT text FROM message_log")).scalar_one()
        assert "1234-5678" not in question and "****" in question
        assert "199001011234" not in logged and "********" in logged
    finally:
        db.dispose()


def test_the_app_is_warm_before_it_accepts_traffic(services: Services) -> None:
    """The first burst after a start must not pay for building the segmenter's dictionary (~1 s) and the index."""
    from knowledge.nlp.tokenizer import Segmenter
    from knowledge.service import KnowledgeBase

    cold = Segmenter()  # as in a new process whose database already holds the handbook
    services._knowledge = KnowledgeBase(services.db, segmenter=cold)
    assert cold._dictionary is None
    with TestClient(create_app(services)):
        assert services.knowledge._snapshot is not None
        assert cold._dictionary is not None and len(cold._dictionary) > 340_000


def test_a_redis_outage_is_logged_once_not_per_message(make_settings, backend, caplog) -> None:  # type: ignore[no-untyped-def]
    _server_only(backend)
    services = build_services(make_settings(redis_url="redis://127.0.0.1:1/0"), migrate=True)
    try:
        with caplog.at_level("WARNING"):
            for _ in range(30):
                services.limiter.allow("100/minute", "in", "oY")
                services.state.get("session:oY")
        assert len([r for r in caplog.records if "redis" in r.getMessage().lower()]) == 1
    finally:
        services.close()


def test_sisong_worker_answers_a_dead_web_workers_message(make_settings, backend, api, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With every web worker gone, `sisong worker` alone still answers what they left behind."""
    _server_only(backend)
    services = build_services(make_settings(), migrate=True)
    sim = WeChatSimulator(TOKEN, APPID, openid="oWorkerSweeps00000000001")
    _abandon(services, sim, sim.text("帮助", msg_id=9500001), 9500001)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SISONG_")},
        "SISONG_WECHAT_TOKEN": TOKEN, "SISONG_WECHAT_APPID": APPID, "SISONG_WECHAT_SECRET": SECRET,
        "SISONG_WECHAT_API_BASE": api.base_url, "SISONG_DATABASE_URL": PG_URL, "SISONG_REDIS_URL": REDIS_URL,
        "SISONG_SWEEP_INTERVAL": "0.3", "SISONG_SPOOL_DIR": str(tmp_path / "spool"),
    }
    worker = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        (sent,) = wait_for(lambda: api.calls_to("message/custom/send"), timeout=30)
        assert sent.json["touser"] == sim.openid and "打字" in sent.json["text"]["content"]
        wait_for(lambda: rows(services)[0].status == "answered", timeout=10)
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(timeout=20)
        services.close()


def test_two_menu_clicks_in_one_second_are_two_messages_but_a_retry_is_one(
    client: TestClient, services: Services
) -> None:
    sim = WeChatSimulator(TOKEN, APPID, openid="oClicks00000000000000001")
    now = int(time.time())
    first = sim.post(client, sim.event("CLICK", "POLICY_QA", create_time=now))
    other = sim.post(client, sim.event("CLICK", "JOBS", create_time=now))
    again = sim.post(client, sim.event("CLICK", "POLICY_QA", create_time=now))
    assert first.text and other.text and first.text != other.text
    assert again.text == first.text
    assert len(rows(services)) == 2


def test_the_queue_consumer_does_not_flood_the_log_while_redis_is_down() -> None:
    """Huey logs a traceback per failed read (~10/s); the first one is enough."""
    import io
    import logging

    from bot.logs import KeyValueFormatter, RepeatFilter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RepeatFilter("huey."))
    handler.setFormatter(KeyValueFormatter("%(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(f"huey.consumer.Worker-{n}") for n in (1, 2)] + [logging.getLogger("bot.test")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        for _ in range(50):
            for logger in loggers:
                try:
                    raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")
                except ConnectionError:
                    logger.exception("Error reading from queue")
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
            logger.propagate = True
    out = stream.getvalue()
    assert out.count("huey.consumer.Worker") == 1 and out.count("Traceback") == 51
    assert out.count("bot.test: Error reading from queue") == 50  # our own errors are never collapsed
