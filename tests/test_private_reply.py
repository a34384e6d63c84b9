"""Private replies (issue 7): `sisong unanswered reply/close/list`, and FAQ promotion's contact check.

A reply goes out as a customer-service message while the follower's 48-hour
window is open; otherwise it waits (已答-待送达) and goes out, once, when they
next write. Promoting to a public FAQ refuses phone and ID numbers unless
``--allow-contact``.
"""

from __future__ import annotations

import getpass
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, update
from typer.testing import CliRunner

import bot.private_replies as replies
import knowledge.cli as cli
from bot.config import get_settings
from bot.services import Services
from bot.simulator import WeChatSimulator
from knowledge.store.faq import list_faqs
from knowledge.store.unanswered import get_unanswered, record_unanswered, reply_unanswered
from storage import followers
from storage.models import Follower, KbUnanswered
from storage.models.base import utcnow
from tests.conftest import wait_for
from tests.support.fake_wechat_api import FakeWeChatAPI

runner = CliRunner()
QUESTION = "你们村的篮球场晚上几点关门"
REPLY = "篮球场晚上九点关门，有事可以打村委会电话。"


@pytest.fixture
def wired(services: Services) -> Iterator[Services]:
    """The command line on the test's database and WeChat service layer."""
    cli.set_db_factory(lambda: services.db)
    cli.set_services_factory(lambda: services)
    yield services
    cli.set_db_factory(cli._default_db)
    cli.set_services_factory(None)


@pytest.fixture
def sweeping(services: Services) -> Iterator[None]:
    """What bot/sweeper.py does every SISONG_SWEEP_INTERVAL once it calls deliver_due_replies."""
    stop = threading.Event()

    def sweep() -> None:
        while not stop.wait(0.2):
            replies.deliver_due_replies(services)

    thread = threading.Thread(target=sweep, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=5)


def run(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(cli.app, list(args))


def listed(*args: str) -> dict[int, dict]:
    result = run("unanswered", "list", "--json", *args)
    assert result.exit_code == 0, result.output
    return {item["id"]: item for item in map(json.loads, result.output.splitlines())}


def ask(client: TestClient, sim: WeChatSimulator, services: Services, text: str = QUESTION) -> int:
    """The follower asks something the handbook does not answer; returns the queued item."""
    assert "答不上来" in (sim.post(client, sim.text(text)).text or "")
    with services.db.session() as session:
        item = session.scalar(select(KbUnanswered.id).where(KbUnanswered.openid == sim.openid)
                              .order_by(KbUnanswered.id.desc()))
    assert item is not None
    return int(item)


def close_window(services: Services, openid: str) -> None:
    """The follower last wrote three days ago."""
    with services.db.session() as session:
        session.execute(update(Follower).where(Follower.openid == openid)
                        .values(last_interaction=utcnow() - timedelta(days=3)))


def sent_to(api: FakeWeChatAPI, openid: str, text: str = REPLY) -> list[str]:
    return [c.json["text"]["content"] for c in api.calls_to("message/custom/send")
            if c.json.get("touser") == openid and text in c.json["text"]["content"]]


# -- replying ---------------------------------------------------------------------------------


def test_a_reply_inside_the_48_hour_window_is_sent_at_once(
    client: TestClient, wired: Services, sim: WeChatSimulator, api: FakeWeChatAPI
) -> None:
    item = ask(client, sim, wired)
    result = run("unanswered", "reply", str(item), REPLY, "--by", "王干部")
    assert result.exit_code == 0, result.output
    assert "已答-已送达" in result.output
    (text,) = sent_to(api, sim.openid)
    assert text.startswith("您之前问的“你们村的篮球场") and text.endswith(REPLY)
    entry = listed("--all")[item]
    assert entry["status"] == "answered_delivered" and entry["replied_by"] == "王干部"
    assert entry["delivered_at"] and entry["reply"] == REPLY
    assert "已答-已送达" in run("unanswered", "list", "--all").output
    # The reply is private: no FAQ, and the next household asking the same is not answered with it.
    assert list_faqs(wired.db) == []


def test_a_reply_outside_the_window_waits_and_goes_once_when_the_follower_next_writes(
    client: TestClient, wired: Services, sim: WeChatSimulator, api: FakeWeChatAPI, sweeping: None,
) -> None:
    item = ask(client, sim, wired)
    close_window(wired, sim.openid)
    result = run("unanswered", "reply", str(item), REPLY)
    assert result.exit_code == 0, result.output
    assert "已答-待送达" in result.output and "下次发消息" in result.output
    time.sleep(0.3)
    assert sent_to(api, sim.openid) == []
    entry = listed("--status", "answered_pending")[item]
    assert entry["status"] == "answered_pending" and entry["replied_by"] == getpass.getuser()
    assert entry["delivered_at"] is None

    sim.post(client, sim.text("谢谢"))
    wait_for(lambda: sent_to(api, sim.openid), timeout=15)
    sim.post(client, sim.text("好的"))
    sim.post(client, sim.text("低保怎么申请"))
    time.sleep(1.0)
    assert len(sent_to(api, sim.openid)) == 1  # exactly once
    entry = listed("--all")[item]
    assert entry["status"] == "answered_delivered" and entry["delivered_at"]
    assert listed("--status", "answered_pending") == {}


def test_a_reply_kept_just_before_the_follower_writes_goes_with_the_next_sweep(
    client: TestClient, wired: Services, sim: WeChatSimulator, api: FakeWeChatAPI,
) -> None:
    """The message finds the process's set without the reply (not reloaded since); the next sweep
    (deliver_due_replies) sends it because the follower wrote after it was kept."""
    item = ask(client, sim, wired)
    close_window(wired, sim.openid)
    reply_unanswered(wired.db, item, REPLY, "王干部", send=replies.sender(wired))
    sim.post(client, sim.text("谢谢"))
    time.sleep(0.5)
    assert sent_to(api, sim.openid) == []
    assert replies.deliver_due_replies(wired) == 1
    wait_for(lambda: sent_to(api, sim.openid), timeout=15)
    assert replies.deliver_due_replies(wired) == 0
    time.sleep(0.5)
    assert len(sent_to(api, sim.openid)) == 1
    assert get_unanswered(wired.db, item).state == "answered_delivered"  # type: ignore[union-attr]


def test_without_sweeps_a_message_reloads_the_set_in_the_background(
    client: TestClient, wired: Services, sim: WeChatSimulator, api: FakeWeChatAPI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    item = ask(client, sim, wired)
    close_window(wired, sim.openid)
    reply_unanswered(wired.db, item, REPLY, "王干部", send=replies.sender(wired))
    monkeypatch.setattr(replies, "FALLBACK", 0.0)  # the set counts as not reloaded for too long
    sim.post(client, sim.text("谢谢"))
    wait_for(lambda: sent_to(api, sim.openid), timeout=15)


def test_a_follower_known_to_have_a_kept_reply_gets_it_with_their_message(
    client: TestClient, wired: Services, sim: WeChatSimulator, api: FakeWeChatAPI,
) -> None:
    """The usual case: a sweep reloaded the set after the reply was kept, so the message finds it there."""
    item = ask(client, sim, wired)
    close_window(wired, sim.openid)
    reply_unanswered(wired.db, item, REPLY, "王干部", send=replies.sender(wired))
    assert replies.deliver_due_replies(wired) == 0  # a reload (the sweeper's): they have not written since
    sim.post(client, sim.text("谢谢"))
    wait_for(lambda: sent_to(api, sim.openid), timeout=15)


def test_racing_deliveries_send_a_kept_reply_once(
    services: Services, api: FakeWeChatAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    openid = "oRacing000000000000000001"
    item = record_unanswered(services.db, openid, QUESTION)
    reply_unanswered(services.db, item, REPLY, "王干部")  # no sender: kept
    with services.db.session() as session:
        followers.touch(session, openid, interaction=True)
    api.set_latency("message/custom/send", 0.1)
    barrier = threading.Barrier(5)
    real_claim = replies.claim_reply

    def claim_together(*args, **kwargs):  # type: ignore[no-untyped-def]
        barrier.wait(timeout=10)  # all five have seen the reply waiting: only the claim can stop four
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(replies, "claim_reply", claim_together)
    threads = [threading.Thread(target=replies.deliver_now, args=(services, openid)) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(sent_to(api, openid)) == 1


def test_nothing_kept_costs_no_query_per_message(services: Services) -> None:
    replies.deliver_due_replies(services)  # a sweep loaded the set
    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(services.db.engine, "before_cursor_execute", count)
    try:
        for n in range(50):
            assert replies.deliver_pending_replies(services, f"oSomeone{n:017d}") == 0
    finally:
        event.remove(services.db.engine, "before_cursor_execute", count)
    assert statements == []
    assert not any(t.name == "sisong-replies" for t in threading.enumerate())  # no reload started either


def test_a_follower_who_unfollowed_is_reported_and_a_refusal_keeps_the_reply(
    client: TestClient, wired: Services, sim: WeChatSimulator, api: FakeWeChatAPI, sweeping: None,
) -> None:
    item = ask(client, sim, wired)
    api.inject("message/custom/send", {"errcode": 45015, "errmsg": "response out of time limit"})
    result = run("unanswered", "reply", str(item), REPLY)
    assert "已答-待送达" in result.output  # WeChat said the window is closed: kept
    sim.post(client, sim.text("在吗"))
    wait_for(lambda: sent_to(api, sim.openid), timeout=15)
    wait_for(lambda: listed("--all")[item]["status"] == "answered_delivered", timeout=5)

    other = ask(client, sim, wired, "村里的路灯坏了找谁修")
    api.inject("message/custom/send", {"errcode": 43004, "errmsg": "require subscribe"})
    result = run("unanswered", "reply", str(other), "已经报给村委会了。")
    assert result.exit_code == 0 and "已答-无法送达" in result.output
    assert listed("--status", "answered_failed")[other]["status"] == "answered_failed"


def test_replying_to_an_unknown_or_closed_item_is_refused(wired: Services) -> None:
    item = record_unanswered(wired.db, "oClosed000000000000000001", QUESTION)
    assert run("unanswered", "reply", "999", REPLY).exit_code == 1
    assert run("unanswered", "reply", str(item), "  ").exit_code == 1
    assert run("unanswered", "close", str(item), "--by", "王干部").exit_code == 0
    result = run("unanswered", "reply", str(item), REPLY)
    assert result.exit_code == 1 and "已关闭" in result.output


# -- list, close, states, JSON, times ---------------------------------------------------------------


def test_list_filters_by_state_closes_items_and_shows_township_time(
    wired: Services, api: FakeWeChatAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_item = record_unanswered(wired.db, "oStateOpen000000000000001", "危房鉴定找哪个")
    kept = record_unanswered(wired.db, "oStateKept000000000000001", "低保什么时候发")
    done = record_unanswered(wired.db, "oStateDone000000000000001", "电费能减免吗")
    closed = record_unanswered(wired.db, "oStateShut000000000000001", "篮球场几点关门")
    with wired.db.session() as session:
        followers.touch(session, "oStateDone000000000000001", interaction=True)
    assert run("unanswered", "reply", str(kept), "下个月五号发。").exit_code == 0
    assert run("unanswered", "reply", str(done), "可以，带户口本到供电所。").exit_code == 0
    result = run("unanswered", "close", str(closed))
    assert result.exit_code == 0 and "已关闭" in result.output
    assert run("unanswered", "close", str(closed)).exit_code == 1  # already closed
    assert run("unanswered", "close", "999").exit_code == 1

    states = {i: e["status"] for i, e in listed("--all").items()}
    assert states == {open_item: "open", kept: "answered_pending", done: "answered_delivered", closed: "closed"}
    assert list(listed()) == [open_item]  # the default: what still waits for an answer
    assert list(listed("--status", "closed")) == [closed]
    assert list(listed("--status", "已答-待送达")) == [kept]  # the Chinese label works too
    assert run("unanswered", "list", "--status", "whatever").exit_code == 2
    keys = set(listed("--all")[done])
    assert {"id", "openid", "question", "status", "created_at", "faq_id", "reply", "replied_by",
            "answered_at", "delivered_at", "closed_at"} <= keys
    assert listed("--all")[closed]["closed_at"]

    table = run("unanswered", "list", "--all").output
    for label in ("待答", "已答-待送达", "已答-已送达", "已关闭"):
        assert label in table

    monkeypatch.setenv("SISONG_TIMEZONE", "Asia/Tokyo")
    get_settings.cache_clear()
    try:
        entry = listed("--all")[open_item]
        assert entry["created_at"].endswith("+09:00")
        with wired.db.session() as session:
            created = session.get(KbUnanswered, open_item).created_at  # type: ignore[union-attr]
        tokyo = (created + timedelta(hours=9)).strftime("%H:%M")
        assert tokyo in run("unanswered", "list").output
    finally:
        get_settings.cache_clear()


# -- FAQ promotion refuses contact numbers ------------------------------------------------------------


def test_promotion_refuses_phone_and_id_numbers_unless_allowed(
    wired: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[list[str]] = []
    monkeypatch.setattr("bot.services.notify_followers", lambda openids, text: sent.append(openids))
    item = record_unanswered(wired.db, "oAsker0000000000000000001", "残疾证咋个办")

    result = run("faq", "add", "--from-unanswered", str(item), "请联系帮扶干部，手机13912345678。")
    assert result.exit_code == 1 and "--allow-contact" in result.output and "139****5678" in result.output
    assert "13912345678" not in result.output
    result = run("faq", "add", "--from-unanswered", str(item), "--question", "住户510123199001011234问残疾证",
                 "带材料到乡镇办理。")
    assert result.exit_code == 1 and "问题里" in result.output
    assert list_faqs(wired.db) == [] and sent == []
    assert listed()[item]["status"] == "open"  # nothing happened to the item either

    result = run("faq", "add", "--from-unanswered", str(item), "--allow-contact", "请联系帮扶干部，手机13912345678。")
    assert result.exit_code == 0, result.output
    (faq,) = list_faqs(wired.db)
    assert faq.answer == "请联系帮扶干部，手机13912345678。" and sent == [["oAsker0000000000000000001"]]
    # Landlines and ordinary numbers are not contact numbers in this sense.
    other = record_unanswered(wired.db, "oAsker0000000000000000002", "高龄补贴多少钱")
    assert run("faq", "add", "--from-unanswered", str(other), "每月100元，问乡政府0871-65123456。").exit_code == 0


def test_a_sender_that_hung_past_the_stale_sweep_does_not_settle_the_newer_claim(services: Services) -> None:
    """Two claims of one kept reply (the first sender hung past SENDING_STALE): only the live one settles."""
    from knowledge.store.unanswered import SENDING_STALE, claim_reply, settle_reply

    openid = "oHungSender00000000000001"
    with services.db.session() as session:
        session.add(Follower(openid=openid, subscribed=True, last_interaction=utcnow()))
    item = record_unanswered(services.db, openid, QUESTION)
    reply_unanswered(services.db, item, REPLY, "李四")  # no sender: kept
    first = utcnow()
    assert claim_reply(services.db, item, first) is not None
    second = first + SENDING_STALE + timedelta(seconds=1)
    assert claim_reply(services.db, item, second) is not None  # the first looks dead: taken over
    settle_reply(services.db, item, "failed", claimed_at=first)  # the hung sender wakes up
    assert get_unanswered(services.db, item).delivery == "sending"  # type: ignore[union-attr]
    settle_reply(services.db, item, "delivered", claimed_at=second)
    assert get_unanswered(services.db, item).delivery == "delivered"  # type: ignore[union-attr]
