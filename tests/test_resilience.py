"""Outages: Redis or the database down must never become a 500 or a lost message."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from bot.flusher import drain
from bot.app import create_app
from bot.services import Services, build_services
from bot.simulator import WeChatSimulator
from tests.conftest import APPID, TOKEN

DEAD_REDIS = "redis://127.0.0.1:1/0"


def test_healthz_reports_ok(client: TestClient, backend: str) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["redis"] == ("ok" if backend == "server" else "not configured (in-process state)")
    assert body["queue"]["backend"] == ("RedisHuey" if backend == "server" else "SqliteHuey")


def metric(body: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", body, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_requests_and_dedupe_hits(client: TestClient, sim: WeChatSimulator) -> None:
    before = client.get("/metrics").text
    xml = sim.text("帮助", msg_id=777000111)
    sim.post(client, xml)
    sim.post(client, xml)
    body = client.get("/metrics").text
    requests = 'sisong_webhook_requests_total{method="POST",status="200"}'
    assert metric(body, requests) - metric(before, requests) == 2
    assert metric(body, "sisong_dedupe_hits_total") - metric(before, "sisong_dedupe_hits_total") == 1
    outcome = 'sisong_handler_outcomes_total{handler="help.help_text",outcome="ok"}'
    assert metric(body, outcome) - metric(before, outcome) == 1


def test_redis_down_keeps_answering_and_shows_in_healthz(make_settings, backend: str) -> None:  # type: ignore[no-untyped-def]
    if backend != "server":
        pytest.skip("only the server stack uses Redis")
    services = build_services(make_settings(redis_url=DEAD_REDIS, embedded_worker="false"), migrate=True)
    sim = WeChatSimulator(TOKEN, APPID, openid="oRedisDown000000000000001")
    try:
        with TestClient(create_app(services)) as client:
            reply = sim.post(client, sim.text("帮助", msg_id=424242))
            assert reply.status == 200 and "打字" in (reply.text or "")
            again = sim.post(client, sim.text("帮助", msg_id=424242))
            assert again.text == reply.text  # in-process dedupe still holds
            health = client.get("/healthz")
            assert health.status_code == 200  # still answering: a load balancer must keep this node
            assert health.json()["status"] == "degraded"
            assert health.json()["redis"].startswith("down")
            assert any("redis" in reason for reason in health.json()["reasons"])
    finally:
        services.close()


def test_redis_down_customer_messages_still_go_out(make_settings, backend: str, api) -> None:  # type: ignore[no-untyped-def]
    if backend != "server":
        pytest.skip("only the server stack uses Redis")
    from tests.conftest import wait_for

    services = build_services(make_settings(redis_url=DEAD_REDIS, embedded_worker="false"), migrate=True)
    try:
        services.queue.send_text("oRedisDown", "队列挂了也要送到")
        (call,) = wait_for(lambda: api.calls_to("message/custom/send"), timeout=10)
        assert call.json["text"]["content"] == "队列挂了也要送到"
    finally:
        services.close()


def _break_database(services: Services) -> None:
    dead = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    services.db.engine = dead
    services.db.sessions.configure(bind=dead)


def test_database_down_gets_a_polite_busy_reply(client: TestClient, services: Services, sim: WeChatSimulator) -> None:
    _break_database(services)
    reply = sim.post(client, sim.text("低保怎么申请"))
    assert reply.status == 200
    assert reply.text == "系统繁忙，请稍后再试。"
    health = client.get("/healthz")
    assert health.status_code == 503 and health.json()["status"] == "down"


def test_database_down_on_subscribe_still_answers(client: TestClient, services: Services, sim: WeChatSimulator) -> None:
    _break_database(services)
    reply = sim.post(client, sim.event("subscribe"))
    assert reply.status == 200 and reply.text == "系统繁忙，请稍后再试。"


def test_concurrent_first_messages_from_a_new_follower_all_get_answers(
    client: TestClient, services: Services
) -> None:
    import threading

    from sqlalchemy import func, select

    from storage.models import Follower, MessageLog

    sim = WeChatSimulator(TOKEN, APPID, openid="oBurst0000000000000000001")
    replies: list[str | None] = []
    xmls = [sim.image() for _ in range(12)]
    threads = [threading.Thread(target=lambda x=x: replies.append(sim.post(client, x).text)) for x in xmls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(replies) == 12 and all(r and "收到了" in r for r in replies)
    drain(services)  # the Redis inbox logs behind (bot.flusher)
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Follower)) == 1
        assert session.scalar(select(func.count()).select_from(MessageLog)) == 12


def test_token_endpoint_busy_is_retried(services: Services, api) -> None:  # type: ignore[no-untyped-def]
    api.inject("token", {"errcode": -1, "errmsg": "system busy"})
    services.wechat.send_text("oA", "hi")
    assert len(api.calls_to("token")) == 2
    assert len(api.calls_to("message/custom/send")) == 1


def test_hung_token_endpoint_times_out(make_settings, api) -> None:  # type: ignore[no-untyped-def]
    import time

    from bot.wechat_client import WeChatAPIError

    services = build_services(make_settings(api_timeout=0.3, api_retry_attempts=2), migrate=True)
    api.set_latency("token", 2.0)
    started = time.monotonic()
    try:
        with pytest.raises(WeChatAPIError):
            services.wechat.send_text("oA", "hi")
        assert time.monotonic() - started < 1.9
    finally:
        api.set_latency("token", 0)
        services.close()
