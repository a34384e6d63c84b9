"""Conversation-level behaviour of the webhook: retries, the deadline, long replies, followers."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.flusher import drain
from bot.config import Settings
from bot.context import Context
from bot.router import _Keyword, router
from bot.services import Services
from bot.simulator import WeChatSimulator
from bot.textfit import utf8_len
from storage.models import Follower, KbUnanswered, MessageLog
from tests.conftest import wait_for

CALLS: list[str] = []


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """The hand-off tests here time their handlers against a 1.5 s deadline (the suite's default is 3 s)."""
    return make_settings(reply_deadline=1.5)


@pytest.fixture
def test_handlers() -> Iterator[None]:
    """Extra keywords only the tests use: a slow answer and a very long one."""

    def slow(ctx: Context) -> str:
        CALLS.append("slow")
        time.sleep(2.5)
        return "慢慢查到了：危房改造补助最高两万元。"

    def long_answer(ctx: Context) -> str:
        CALLS.append("long")
        return "".join(f"第{i}句：政策内容说明，请仔细阅读。" for i in range(200))

    def counted(ctx: Context) -> str:
        CALLS.append("counted")
        time.sleep(0.3)
        return f"第{CALLS.count('counted')}次处理"

    added = [
        _Keyword(re.compile(r"^慢问题$"), slow, True),
        _Keyword(re.compile(r"^长问题$"), long_answer, True),
        _Keyword(re.compile(r"^计数$"), counted, True),
    ]
    CALLS.clear()
    router.keywords[:0] = added
    yield
    for keyword in added:
        router.keywords.remove(keyword)


def inbound_logs(services: Services) -> list[MessageLog]:
    drain(services)  # the Redis inbox logs behind (bot.flusher)
    with services.db.session() as session:
        return list(session.scalars(select(MessageLog).where(MessageLog.direction == "in")))


def follower(services: Services, openid: str) -> Follower | None:
    drain(services)
    with services.db.session() as session:
        return session.scalar(select(Follower).where(Follower.openid == openid))


# -- retries -------------------------------------------------------------------


def test_retry_gets_same_reply_and_handler_runs_once(
    client: TestClient, services: Services, sim: WeChatSimulator, test_handlers: None
) -> None:
    xml = sim.text("计数", msg_id=987654321)
    first = sim.post(client, xml)
    second = sim.post(client, xml)
    assert first.text == "第1次处理"
    assert second.text == first.text
    assert CALLS == ["counted"]
    assert len(inbound_logs(services)) == 1


def test_concurrent_retry_waits_for_the_first_delivery(
    client: TestClient, sim: WeChatSimulator, test_handlers: None
) -> None:
    xml = sim.text("计数", msg_id=123123123)
    replies: list[str | None] = []

    def deliver() -> None:
        replies.append(sim.post(client, xml).text)

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert replies == ["第1次处理"] * 3
    assert CALLS == ["counted"]


def test_events_are_deduplicated_by_sender_and_time(
    client: TestClient, services: Services, sim: WeChatSimulator
) -> None:
    xml = sim.event("CLICK", event_key="JOBS", create_time=1_800_000_000)
    assert "就业岗位" in (sim.post(client, xml).text or "")
    assert "就业岗位" in (sim.post(client, xml).text or "")
    other_time = sim.event("CLICK", event_key="JOBS", create_time=1_800_000_001)
    sim.post(client, other_time)
    assert len(inbound_logs(services)) == 2


# -- the five-second rule -------------------------------------------------------


def test_slow_answer_goes_out_as_customer_service_message(
    client: TestClient, api, sim: WeChatSimulator, test_handlers: None  # type: ignore[no-untyped-def]
) -> None:
    started = time.monotonic()
    reply = sim.post(client, sim.text("慢问题"))
    assert reply.is_success
    assert time.monotonic() - started < 2.4  # answered at the deadline, not after the handler
    sent = wait_for(lambda: api.calls_to("message/custom/send"), timeout=15)
    assert sent[0].json["touser"] == sim.openid
    assert sent[0].json["text"]["content"] == "慢慢查到了：危房改造补助最高两万元。"
    assert CALLS == ["slow"]


def test_retry_after_a_late_answer_gets_success_not_a_second_copy(
    client: TestClient, api, sim: WeChatSimulator, test_handlers: None  # type: ignore[no-untyped-def]
) -> None:
    xml = sim.text("慢问题", msg_id=55555)
    assert sim.post(client, xml).is_success
    wait_for(lambda: api.calls_to("message/custom/send"), timeout=15)
    assert sim.post(client, xml).is_success
    time.sleep(0.3)
    assert len(api.calls_to("message/custom/send")) == 1
    assert CALLS == ["slow"]


# -- long replies -----------------------------------------------------------------


def test_long_answer_is_paged_under_2048_bytes(
    client: TestClient, sim: WeChatSimulator, test_handlers: None
) -> None:
    first = sim.post(client, sim.text("长问题")).text or ""
    assert utf8_len(first) <= 2048
    assert first.endswith("回复“更多”看下一段）")
    assert first.split("\n")[0].endswith("。")  # cut at a sentence
    pages = [first]
    while "回复“更多”" in pages[-1]:
        page = sim.post(client, sim.text("更多")).text or ""
        assert utf8_len(page) <= 2048
        pages.append(page)
    text = "".join(p.replace("\n（内容较长，回复“更多”看下一段）", "") for p in pages)
    assert "第0句" in text and "第199句：政策内容说明，请仔细阅读。" in text
    assert "没有更多" in (sim.post(client, sim.text("更多")).text or "")


# -- followers ---------------------------------------------------------------------


def test_subscribe_records_follower_and_scene(
    client: TestClient, services: Services, sim: WeChatSimulator
) -> None:
    reply = sim.post(client, sim.event("subscribe", event_key="qrscene_village07"))
    assert "政策" in (reply.text or "") and "岗位" in (reply.text or "") and "满意度" in (reply.text or "")
    row = follower(services, sim.openid)
    assert row is not None and row.subscribed and row.scene == "village07"
    assert row.last_interaction is not None


def test_unsubscribe_marks_but_keeps_the_follower(
    client: TestClient, services: Services, sim: WeChatSimulator
) -> None:
    sim.post(client, sim.event("subscribe"))
    sim.post(client, sim.text("你好"))
    assert sim.post(client, sim.event("unsubscribe")).is_success
    row = follower(services, sim.openid)
    assert row is not None and not row.subscribed and row.unsubscribed_at is not None
    assert len(inbound_logs(services)) == 3


def test_message_updates_last_interaction(
    client: TestClient, services: Services, sim: WeChatSimulator
) -> None:
    sim.post(client, sim.text("有人吗"))
    first = follower(services, sim.openid)
    assert first is not None and first.last_interaction is not None
    time.sleep(0.05)
    sim.post(client, sim.event("TEMPLATESENDJOBFINISH"))  # not the follower speaking
    again = follower(services, sim.openid)
    assert again is not None and again.last_interaction == first.last_interaction
    # A menu click is the follower, but it does not open WeChat's 48-hour window: seen, not interacted.
    time.sleep(0.05)
    sim.post(client, sim.event("CLICK", event_key="POLICY_QA"))
    clicked = follower(services, sim.openid)
    assert clicked is not None and clicked.last_interaction == first.last_interaction
    assert clicked.last_seen > first.last_seen


def test_message_log_records_handler_and_latency(
    client: TestClient, services: Services, sim: WeChatSimulator
) -> None:
    sim.post(client, sim.voice(recognition="帮助"))
    (row,) = inbound_logs(services)
    assert row.msg_type == "voice" and row.text == "帮助" and row.handler == "help.help_text"
    assert row.latency_ms is not None and row.reply and "打字" in row.reply


def test_handover_is_queued_and_cadres_group_told(
    client: TestClient, services: Services, api, sim: WeChatSimulator  # type: ignore[no-untyped-def]
) -> None:
    sim.post(client, sim.text("我家低保什么时候发"))
    api.reset()
    reply = sim.post(client, sim.text("0"))
    assert "工作人员会尽快联系您" in (reply.text or "")
    (call,) = wait_for(lambda: api.calls_to("webhook/send"), timeout=15)
    content = call.json["markdown"]["content"]
    assert "请求人工帮助" in content and "我家低保什么时候发" in content
    assert sim.openid not in content  # openids are shortened in notices
    with services.db.session() as session:
        queued = [row.question for row in session.scalars(select(KbUnanswered))]
    assert "我家低保什么时候发" in queued


def test_a_follower_flooding_is_told_once_and_nothing_is_lost(make_settings) -> None:  # type: ignore[no-untyped-def]
    from bot.app import create_app
    from bot.services import build_services

    services = build_services(make_settings(follower_rate="3/minute"), migrate=True)
    sim = WeChatSimulator("sisongtesttoken", "wxtestappid", openid="oFlood0000000000000000001")
    try:
        with TestClient(create_app(services)) as client:
            replies = [sim.post(client, sim.text("帮助")) for _ in range(5)]
            assert all("打字" in (r.text or "") for r in replies[:3])
            assert "发得有点快" in (replies[3].text or "")
            assert replies[4].is_success
            other = WeChatSimulator("sisongtesttoken", "wxtestappid", openid="oCalm00000000000000000001")
            assert "打字" in (other.post(client, other.text("帮助")).text or "")
            assert "欢迎" in (sim.post(client, sim.event("subscribe")).text or "")  # events are not limited
        assert len(inbound_logs(services)) == 7
    finally:
        services.close()


@pytest.mark.parametrize(("stall", "expect_passive"), [(1.7, True), (3.0, False)])
def test_answer_ready_at_the_deadline_goes_out_exactly_once(
    client: TestClient, services: Services, api, sim: WeChatSimulator,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch, stall: float, expect_passive: bool,
) -> None:
    """The answer was reserved in time but committing it stalls past the deadline (1.5 s in tests):
    the database commit, or with Redis the settling script (a read-only answer commits nothing)."""
    from storage import followers
    from storage.redis_inbox import RedisInbox

    owner, name = (RedisInbox, "settle") if services.redis_inbox is not None else (followers, "touch")
    original = getattr(owner, name)

    def slow(*args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(stall)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, slow)
    reply = sim.post(client, sim.text("帮助"))
    if expect_passive:
        assert "打字" in (reply.text or "")  # the grace period caught it
        time.sleep(0.5)
        assert api.calls_to("message/custom/send") == []
    else:
        assert reply.is_success
        (sent,) = wait_for(lambda: api.calls_to("message/custom/send"), timeout=15)
        assert "打字" in sent.json["text"]["content"]
