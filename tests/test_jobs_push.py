"""送岗位 pushes (issue 9): targeting, channels, exactly once, errcodes, the global rate, receipts.

The push engine runs for real against the fake WeChat API on loopback:
delivery rows in the database, claims, the thread pool, the rate limiter
(Redis on the server backend), WeChat's answers. A killed worker is played
by claiming rows (or marking them ``sending``) under an owner that then
vanishes, and letting the leases run out.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from bot.config import Settings
from bot.jobs import start_push
from bot.push import Pusher
from bot.services import Services, build_services
from storage import pushes
from storage.clock import next_midnight
from storage.models.base import utcnow
from storage.models.followers import Follower
from storage.models.jobs import JobPosting
from storage.models.pushes import EarlyReceipt, PushDelivery, PushOptOut, PushSender
from storage.pushes import Targets
from tests.support import jobs_data as data
from tests.support.fake_wechat_api import FakeWeChatAPI

CUSTOM = "message/custom/send"
TEMPLATE = "message/template/send"


@pytest.fixture
def push_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"wechat_template_job": data.TEMPLATE_ID, "push_rate": "1000/second",
                                  "push_backoff": 0.2, "push_lease": 2, "api_timeout": 1.0,
                                  "embedded_worker": "false"}
        values.update(overrides)
        return make_settings(**values)
    return make


@pytest.fixture
def svc(push_settings: Callable[..., Settings]) -> Any:
    built: list[Services] = []

    def make(**overrides: Any) -> Services:
        services = build_services(push_settings(**overrides), migrate=True)
        built.append(services)
        return services

    yield make
    for services in built:
        services.close()


def push(services: Services, job: int, *, villages: tuple[str, ...] = (), areas: tuple[str, ...] = (),
         everyone: bool = False, labour_only: bool = False, drain: bool = True) -> pushes.Progress:
    _, created = start_push(services, job, Targets(villages, areas, everyone, labour_only))
    if drain:
        services.pusher.drain(wait_for={created.push.id}, deadline=time.monotonic() + 30)
    with services.db.session() as session:
        state = pushes.progress(session, created.push.id)
    assert state is not None
    return state


def rows(services: Services, job: int | None = None) -> dict[str, PushDelivery]:
    with services.db.session() as session:
        query = select(PushDelivery)
        if job is not None:
            query = query.where(PushDelivery.ref_id == job)
        found = {r.openid: r for r in session.scalars(query)}
        session.expunge_all()
        return found


def received(api: FakeWeChatAPI) -> Counter[str]:
    return Counter(api.deliveries())


# -- targeting ------------------------------------------------------------------------------------


def test_targets_villages_areas_all_and_labour_only(svc: Callable[..., Services], api: FakeWeChatAPI) -> None:
    services = svc()
    a = data.households(services, "青山村", 3, area="东片区")
    b = data.households(services, "绿水村", 2, area="东片区", labourers=0)
    c = data.households(services, "白石村", 2, area="西片区")
    job = data.posting(services)

    state = push(services, job, villages=("青山村",))
    assert state.to_json()["recipients"] == 3 and state.sent == 3
    assert set(received(api)) == {m.openid for m in a}

    state = push(services, job, areas=("东片区",), labour_only=True)  # 绿水村 has no labour; 青山村 done
    assert (state.recipients, state.skipped) == (0, 3)
    state = push(services, job, everyone=True)
    assert state.recipients == 4  # 绿水村's two and 白石村's two; 青山村 already reached
    assert set(received(api)) == {m.openid for m in a + b + c}
    assert all(n == 1 for n in received(api).values())


def test_unsubscribed_opted_out_and_unknown_targets(svc: Callable[..., Services], api: FakeWeChatAPI) -> None:
    services = svc()
    members = data.households(services, "青山村", 4)
    job = data.posting(services)
    with services.db.session() as session:
        session.execute(update(Follower).where(Follower.openid == members[0].openid).values(subscribed=False))
        session.execute(update(Follower).where(Follower.openid == members[1].openid)
                        .values(unreachable_reason="not_following"))
        household_id = session.scalar(select(PushDelivery.household_id).limit(1))  # none yet
        assert household_id is None
    from storage.models.org import Household

    with services.db.session() as session:
        hid = session.scalar(select(Household.id).where(Household.number == members[2].number))
        session.add(PushOptOut(household_id=hid, kind="job"))
    _, created = start_push(services, job, Targets(("青山村",)))
    assert created.recipients == 1
    assert created.skipped == {"unsubscribed": 1, "not_following": 1, "opted_out": 1}
    services.pusher.drain(wait_for={created.push.id})
    assert set(received(api)) == {members[3].openid}

    with pytest.raises(pushes.TargetError, match="没有村「无此村」"):
        start_push(services, job, Targets(("无此村",)))
    with pytest.raises(pushes.TargetError, match="请指定推送范围"):
        start_push(services, job, Targets())


def test_a_follower_who_unsubscribes_after_the_push_is_skipped_at_send_time(
        svc: Callable[..., Services], api: FakeWeChatAPI) -> None:
    services = svc()
    members = data.households(services, "青山村", 3)
    job = data.posting(services)
    _, created = start_push(services, job, Targets(("青山村",)))
    with services.db.session() as session:
        session.execute(update(Follower).where(Follower.openid == members[0].openid).values(subscribed=False))
        from storage.models.org import Household

        hid = session.scalar(select(Household.id).where(Household.number == members[1].number))
        pushes.set_opt_out(session, hid, "job", True)
    services.pusher.drain(wait_for={created.push.id})
    found = rows(services)
    assert found[members[0].openid].status == "skipped"
    assert found[members[1].openid].status == "skipped"
    assert found[members[2].openid].status == "sent"
    assert set(received(api)) == {members[2].openid}


# -- channels ---------------------------------------------------------------------------------------


def test_channel_inside_and_outside_the_48_hour_window(svc: Callable[..., Services], api: FakeWeChatAPI) -> None:
    services = svc()
    recent = data.households(services, "青山村", 2, interacted=timedelta(hours=47) - timedelta(minutes=5))
    old = data.households(services, "绿水村", 2, interacted=timedelta(hours=49))
    never = data.households(services, "白石村", 1, interacted=None)
    job = data.posting(services, title="电子厂普工（长白班，包吃住，五险一金，节日福利）")
    state = push(services, job, everyone=True)
    assert state.sent == 5
    customs = {c.json["touser"]: c.json for c in api.calls_to(CUSTOM)}
    templates = {c.json["touser"]: c.json for c in api.calls_to(TEMPLATE)}
    assert set(customs) == {m.openid for m in recent}
    assert set(templates) == {m.openid for m in old + never}
    text = customs[recent[0].openid]["text"]["content"]
    assert "电子厂普工" in text and "回复：1" in text and "退订岗位" in text
    body = templates[old[0].openid]
    assert body["template_id"] == data.TEMPLATE_ID
    assert body["client_msg_id"].startswith(f"sisong-job-{job}-")
    assert "first" not in body["data"] and "remark" not in body["data"]  # gone since 2023
    assert all(len(v["value"]) <= 20 for v in body["data"].values())  # each keyword line ≤ 20
    assert body["data"]["thing1"]["value"].endswith("…")
    assert body["data"]["thing5"]["value"] == "回复1报名 回复岗位看更多"
    found = rows(services)
    assert found[old[0].openid].channel == "template" and found[old[0].openid].msgid
    assert found[recent[0].openid].channel == "custom"


def test_outside_the_window_without_a_template_is_unreachable(svc: Callable[..., Services], api: FakeWeChatAPI) -> None:
    services = svc(wechat_template_job=None)
    data.households(services, "青山村", 1, interacted=timedelta(hours=1))
    old = data.households(services, "绿水村", 1, interacted=timedelta(days=3))
    job = data.posting(services)
    state = push(services, job, everyone=True)
    assert (state.sent, state.failed) == (1, 1)
    assert rows(services)[old[0].openid].status == "unreachable"
    assert not api.calls_to(TEMPLATE)


def test_45015_on_a_customer_message_falls_back_to_the_template(svc: Callable[..., Services],
                                                               api: FakeWeChatAPI) -> None:
    services = svc()
    members = data.households(services, "青山村", 2, interacted=timedelta(hours=2))
    api.inject_for(CUSTOM, members[0].openid, {"errcode": 45015, "errmsg": "response out of time limit"})
    job = data.posting(services)
    state = push(services, job, villages=("青山村",))
    assert state.sent == 2
    found = rows(services)
    assert found[members[0].openid].channel == "template" and found[members[0].openid].status == "sent"
    assert received(api) == {members[0].openid: 1, members[1].openid: 1}

    services_no_tpl = svc(wechat_template_job=None)
    more = data.households(services_no_tpl, "绿水村", 1, interacted=timedelta(hours=2))
    api.inject_for(CUSTOM, more[0].openid, {"errcode": 45015, "errmsg": "response out of time limit"})
    state = push(services_no_tpl, job, villages=("绿水村",))
    assert state.failed == 1 and rows(services_no_tpl)[more[0].openid].status == "unreachable"


# -- errcodes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("errcode", [40001, 42001])
def test_a_rejected_token_is_refreshed_once_and_the_row_sent(
        svc: Callable[..., Services], api: FakeWeChatAPI, errcode: int) -> None:
    services = svc()
    members = data.households(services, "青山村", 1, interacted=None)
    api.inject_for(TEMPLATE, members[0].openid, {"errcode": errcode, "errmsg": "token"})
    job = data.posting(services)
    state = push(services, job, villages=("青山村",))
    assert state.sent == 1
    assert received(api) == {members[0].openid: 1}
    assert len(api.calls_to("token")) == 2  # the first token, then the refresh


def test_busy_backs_off_then_sends(svc: Callable[..., Services], api: FakeWeChatAPI) -> None:
    services = svc()
    members = data.households(services, "青山村", 3, interacted=None)
    api.inject_for(TEMPLATE, members[0].openid, {"errcode": -1, "errmsg": "system error"},
                   {"errcode": -1, "errmsg": "system error"})
    job = data.posting(services)
    started = time.monotonic()
    state = push(services, job, villages=("青山村",))
    assert state.sent == 3 and state.failed == 0
    assert received(api) == {m.openid: 1 for m in members}
    assert time.monotonic() - started >= 0.2 + 0.4  # two back-offs: 0.2 s, then 0.4 s
    row = rows(services)[members[0].openid]
    assert row.backoffs == 2 and row.attempts == 3


def test_used_up_quota_waits_for_midnight_beijing_then_sends(svc: Callable[..., Services],
                                                             api: FakeWeChatAPI) -> None:
    """45009 is the day's quota: the template channel waits for 00:00 Beijing time, not the row's fault,
    and whoever waits for the push is told instead of waiting for hours."""
    services = svc()
    members = data.households(services, "青山村", 3, interacted=None)
    api.inject_for(TEMPLATE, members[0].openid, {"errcode": 45009, "errmsg": "reach max api daily quota limit"})
    job = data.posting(services)
    started = time.monotonic()
    state = push(services, job, villages=("青山村",))
    assert time.monotonic() - started < 10  # not the 30 s deadline: the drain stopped waiting
    assert not state.finished and state.sent + state.waiting == 3 and state.waiting >= 1
    midnight = next_midnight(utcnow())
    assert midnight.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%H:%M") == "00:00"
    held = [row for row in rows(services).values() if row.status == "pending"]
    assert members[0].openid in {row.openid for row in held}
    for row in held:  # no earlier attempt in doubt: back as if never tried, and the wait is not counted
        assert row.backoffs == 0 and row.client_msg_id is None and row.first_sent_at is None
        assert midnight + timedelta(seconds=50) <= row.not_before <= midnight + timedelta(seconds=70)
        assert row.error == "今天的微信发送额度已用完，明天0点后自动接着发"
    assert pushes.next_due_at(services.db, [state.push_id]) == min(row.not_before for row in held)
    before = len(api.calls_to(TEMPLATE))
    services.pusher.drain(wait_for={state.push_id}, deadline=time.monotonic() + 5)
    assert len(api.calls_to(TEMPLATE)) == before  # nothing is due before midnight

    # Midnight comes (played by moving the rows' wait into the past): a new process sends them, once each.
    with services.db.session() as session:
        session.execute(update(PushDelivery).values(not_before=utcnow() - timedelta(seconds=1))
                        .where(PushDelivery.status == "pending"))
    fresh = Pusher(services)
    try:
        fresh.drain(wait_for={state.push_id}, deadline=time.monotonic() + 30)
    finally:
        fresh.stop()
    with services.db.session() as session:
        final = pushes.progress(session, state.push_id)
    assert final is not None and final.sent == 3 and final.waiting == 0
    assert received(api) == {m.openid: 1 for m in members}


@pytest.mark.parametrize("errcode, reason", [(43004, "not_following"), (43101, "refused")])
def test_final_refusals_are_recorded_per_row(svc: Callable[..., Services], api: FakeWeChatAPI, errcode: int,
                                             reason: str) -> None:
    services = svc()
    members = data.households(services, "青山村", 2, interacted=None)
    api.inject_for(TEMPLATE, members[0].openid, {"errcode": errcode, "errmsg": "no"})
    job = data.posting(services)
    state = push(services, job, villages=("青山村",))
    assert (state.sent, state.failed) == (1, 1)
    row = rows(services)[members[0].openid]
    assert (row.status, row.errcode, row.attempts) == ("failed", errcode, 1)
    with services.db.session() as session:
        assert session.scalar(select(Follower.unreachable_reason).where(Follower.openid == members[0].openid)) == reason
    assert len([c for c in api.calls_to(TEMPLATE) if c.json["touser"] == members[0].openid]) == 1


def test_a_customer_message_that_times_out_is_unconfirmed_and_not_sent_again(
        svc: Callable[..., Services], api: FakeWeChatAPI) -> None:
    services = svc(api_timeout=0.3)
    members = data.households(services, "青山村", 1, interacted=timedelta(hours=1))
    api.set_latency(CUSTOM, 0.6, times=1)
    job = data.posting(services)
    state = push(services, job, villages=("青山村",))
    assert state.unconfirmed == 1 and state.sent == 0
    assert len(api.calls_to(CUSTOM)) == 1  # never a second call
    assert rows(services)[members[0].openid].status == "unconfirmed"


def test_a_template_that_times_out_is_sent_again_with_the_same_client_msg_id(
        svc: Callable[..., Services], api: FakeWeChatAPI) -> None:
    services = svc(api_timeout=0.3)
    members = data.households(services, "青山村", 1, interacted=None)
    api.set_latency(TEMPLATE, 0.6, times=1)
    job = data.posting(services)
    state = push(services, job, villages=("青山村",))
    assert state.sent == 1
    calls = [c.json["client_msg_id"] for c in api.calls_to(TEMPLATE)]
    assert len(calls) == 2 and len(set(calls)) == 1
    assert received(api) == {members[0].openid: 1}  # WeChat delivered it once


# -- exactly once: retries and a killed worker ------------------------------------------------------


def _kill_mid_push(services: Services, job: int, *, started: int, claimed: int) -> int:
    """Play a worker killed mid-push: it claimed rows, marked some ``sending`` and called for some."""
    _, created = start_push(services, job, Targets(everyone=True))
    dead = "dead-worker"
    taken = pushes.claim(services.db, dead, started + claimed, lease=0.5)
    for row in taken[:started]:
        cmid = pushes.client_msg_id(row.id, row.kind, row.ref_id)
        assert pushes.begin_send(services.db, [pushes.Start(row.id, "template", cmid)], dead, lease=0.5)
        # The call went out for half of them before the kill (WeChat has them; we never heard back).
        if row.id % 2 == 0:
            services.wechat.send_template_message(row.openid, data.TEMPLATE_ID, {"thing1": {"value": "x"}},
                                                  client_msg_id=cmid)
    return created.push.id


def test_a_killed_worker_is_resumed_without_duplicates_or_losses(svc: Callable[..., Services],
                                                                 api: FakeWeChatAPI) -> None:
    services = svc()
    members = data.households(services, "青山村", 30, interacted=None)
    job = data.posting(services)
    push_id = _kill_mid_push(services, job, started=6, claimed=10)
    time.sleep(0.6)  # the dead worker's leases run out
    services.pusher.drain(wait_for={push_id}, deadline=time.monotonic() + 30)
    assert received(api) == {m.openid: 1 for m in members}  # each exactly once: 0 duplicates, 0 losses
    with services.db.session() as session:
        state = pushes.progress(session, push_id)
    assert state is not None and state.sent == 30 and state.unconfirmed == 0


def test_a_killed_worker_s_customer_messages_in_flight_become_unconfirmed(
        svc: Callable[..., Services], api: FakeWeChatAPI) -> None:
    services = svc()
    members = data.households(services, "青山村", 6, interacted=timedelta(hours=1))
    job = data.posting(services)
    _, created = start_push(services, job, Targets(everyone=True))
    dead = "dead-worker"
    taken = pushes.claim(services.db, dead, 3, lease=0.3)
    assert pushes.begin_send(services.db, [pushes.Start(taken[0].id, "custom")], dead, lease=0.3)
    time.sleep(0.4)
    services.pusher.drain(wait_for={created.push.id})
    found = {r.openid: r for r in rows(services).values()}
    assert found[taken[0].openid].status == "unconfirmed"
    assert taken[0].openid not in received(api)  # never re-sent blindly
    assert sum(1 for r in found.values() if r.status == "sent") == 5
    assert set(received(api)) == {m.openid for m in members} - {taken[0].openid}


def test_a_dead_worker_is_found_by_its_heartbeat_before_its_leases_run_out(
        svc: Callable[..., Services], api: FakeWeChatAPI) -> None:
    """Leases of a minute, a heartbeat silent for longer than SISONG_PUSH_HEARTBEAT_TIMEOUT: recovered now."""
    services = svc(push_heartbeat_timeout=2)
    members = data.households(services, "青山村", 12, interacted=None)
    job = data.posting(services)
    _, created = start_push(services, job, Targets(everyone=True))
    dead = "dead-worker-with-heartbeat"
    pushes.heartbeat(services.db, dead)
    taken = pushes.claim(services.db, dead, 6, lease=60)
    cmids = [pushes.Start(row.id, "template", pushes.client_msg_id(row.id, row.kind, row.ref_id)) for row in taken[:3]]
    assert len(pushes.begin_send(services.db, cmids, dead, lease=60)) == 3
    services.wechat.send_template_message(taken[0].openid, data.TEMPLATE_ID, {"thing1": {"value": "x"}},
                                          client_msg_id=cmids[0].client_msg_id)  # went out before the kill
    with services.db.session() as session:  # its last beat, 3 s ago
        session.execute(update(PushSender).values(seen_at=utcnow() - timedelta(seconds=3)))
    started = time.monotonic()
    services.pusher.drain(wait_for={created.push.id}, deadline=time.monotonic() + 30)
    assert time.monotonic() - started < 15  # not the minute-long leases
    assert received(api) == {m.openid: 1 for m in members}
    with services.db.session() as session:
        state = pushes.progress(session, created.push.id)
        assert state is not None and state.sent == 12
        assert list(session.scalars(select(PushSender.owner))) == [dead]  # ours signed off (dead ones: a day)


def test_a_live_sender_taken_for_dead_can_neither_start_nor_overwrite(svc: Callable[..., Services]) -> None:
    """A frozen sender whose heartbeat lapsed loses its rows safely: every step of its own re-checks them."""
    services = svc()
    data.households(services, "青山村", 2, interacted=timedelta(hours=1))
    job = data.posting(services)
    start_push(services, job, Targets(everyone=True))
    slow = "frozen-sender"
    pushes.heartbeat(services.db, slow)
    first, second = pushes.claim(services.db, slow, 2, lease=60)
    assert pushes.begin_send(services.db, [pushes.Start(first.id, "custom")], slow, lease=60)
    with services.db.session() as session:
        session.execute(update(PushSender).values(seen_at=utcnow() - timedelta(seconds=30)))
    recovered = pushes.recover_stale(services.db, 540, dead_after=5)
    assert (recovered.requeued, recovered.unconfirmed) == (1, 1)
    assert not pushes.begin_send(services.db, [pushes.Start(second.id, "custom")], slow, lease=60)
    other = pushes.new_owner()
    (again,) = pushes.claim(services.db, other, 5, lease=60)
    assert again.id == second.id
    pushes.complete(services.db, [pushes.Completion(second.id, slow, "sent")])  # the frozen one wakes up
    assert rows(services)[second.openid].owner == other and rows(services)[second.openid].status == "claimed"
    # Its own custom call did go out: its outcome still settles that row (nobody else may touch it).
    pushes.complete(services.db, [pushes.Completion(first.id, slow, "sent")])
    assert rows(services)[first.openid].status == "sent"


def test_a_resend_in_doubt_past_the_dedupe_window_is_unconfirmed_not_sent(
        svc: Callable[..., Services], api: FakeWeChatAPI) -> None:
    """A template that timed out is re-sent with its id only within WeChat's window (from the first call):
    after a long back-off it might be a second copy, so it is 待确认 instead."""
    services = svc(api_timeout=0.3, push_dedupe_window=1)
    members = data.households(services, "青山村", 1, interacted=None)
    api.set_latency(TEMPLATE, 0.6, times=2)  # the call and the client's one retry inside it both time out
    job = data.posting(services)
    state = push(services, job, villages=("青山村",))
    row = rows(services)[members[0].openid]
    assert state.unconfirmed == 1 and row.status == "unconfirmed" and "去重时限" in (row.error or "")
    assert row.backoffs == 0  # the resend's 2 s wait is not the row's fault
    assert len(api.calls_to(TEMPLATE)) == 2  # nothing after the window


def test_a_claim_that_expired_while_queued_starts_once_when_the_same_process_claims_it_again(
        svc: Callable[..., Services]) -> None:
    """The owner is per process: a row whose claim ran out while its task waited, then claimed again by
    the same process, has two tasks; only one may start its call (the other finds it no longer ``claimed``)."""
    services = svc()
    data.households(services, "青山村", 1, interacted=timedelta(hours=1))
    job = data.posting(services)
    start_push(services, job, Targets(everyone=True))
    owner = pushes.new_owner()
    (first,) = pushes.claim(services.db, owner, 1, lease=0.2)
    time.sleep(0.3)
    assert not pushes.begin_send(services.db, [pushes.Start(first.id, "custom")], owner, lease=5)  # its lease ran out
    pushes.recover_stale(services.db, dedupe_window=540)  # the sweeper hands the row back
    (again,) = pushes.claim(services.db, owner, 1, lease=5)  # same process, same owner
    assert again.id == first.id
    assert pushes.begin_send(services.db, [pushes.Start(again.id, "custom")], owner, lease=5)
    assert not pushes.begin_send(services.db, [pushes.Start(first.id, "custom")], owner, lease=5)  # the stale task
    # The 45015 fallback continues the same call from `sending`, as a template.
    assert pushes.begin_send(services.db, [pushes.Start(again.id, "template", "cmid-1")], owner, lease=5,
                              continuing=True)


def test_two_pushes_and_two_workers_at_once_send_each_follower_one_copy(
        svc: Callable[..., Services], api: FakeWeChatAPI) -> None:
    one, two = svc(push_threads=4), svc(push_threads=4)
    members = data.households(one, "青山村", 40, interacted=None)
    job = data.posting(one)
    api.set_latency(TEMPLATE, 0.03)  # long enough that neither worker finishes before the other starts
    results: list[Any] = []
    threads = [threading.Thread(target=lambda s=s: results.append(push(s, job, villages=("青山村",), drain=False)))
               for s in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.recipients for r in results) == 40  # the unique key: one row per follower, whoever pushed
    workers = [threading.Thread(target=lambda s=s: s.pusher.drain(wait_for={r.push_id for r in results}))
               for s in (one, two)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert received(api) == {m.openid: 1 for m in members}
    assert one.pusher.sent > 0 and two.pusher.sent > 0  # both worked


# -- the global rate ---------------------------------------------------------------------------------


def test_the_global_rate_holds_across_two_workers(svc: Callable[..., Services], api: FakeWeChatAPI,
                                                  backend: str) -> None:
    if backend == "embedded":
        pytest.skip("without Redis each process counts its own rate (docs/jobs.md); two workers need Redis")
    one, two = (svc(push_rate="10/second", push_threads=4, push_lease=10) for _ in range(2))
    data.households(one, "青山村", 30, interacted=None)
    job = data.posting(one)
    _, created = start_push(one, job, Targets(everyone=True))
    permits: list[float] = []  # when each worker was allowed a send (the limiter's own clock)
    for services in (one, two):
        allow = services.limiter.allow

        def counted(rate: str, *ids: str, allow: Any = allow, **kw: Any) -> bool:
            asked = time.time()  # the limiter stamps the hit with its own time.time() right after this
            ok = allow(rate, *ids, **kw)
            if ok and ids == ("push",):
                permits.append(asked)
            return bool(ok)

        services.limiter.allow = counted  # type: ignore[method-assign]
    started = time.monotonic()
    workers = [threading.Thread(target=lambda s=s: s.pusher.drain(wait_for={created.push.id}))
               for s in (one, two)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - started
    assert len(api.calls_to(TEMPLATE)) == 30 and one.pusher.sent and two.pusher.sent
    # 10 a second over both workers (each alone would allow 20 in the first second), so 30 sends take
    # two seconds or more. Stamps are taken just before the limiter's own, in busy threads: one of slack.
    stamps = sorted(permits)
    assert len(stamps) == 30
    assert max(sum(1 for t in stamps if s <= t < s + 0.98) for s in stamps) <= 11
    assert elapsed >= 1.9


def test_the_rate_holds_in_one_process_without_redis(svc: Callable[..., Services], api: FakeWeChatAPI) -> None:
    services = svc(push_rate="10/second", push_threads=4)
    data.households(services, "青山村", 15, interacted=None)
    job = data.posting(services)
    started = time.monotonic()
    state = push(services, job, villages=("青山村",))
    assert state.sent == 15 and time.monotonic() - started >= 0.9


# -- receipts ----------------------------------------------------------------------------------------


def test_templatesendjobfinish_updates_the_row_by_msgid(svc: Callable[..., Services], api: FakeWeChatAPI,
                                                        settings: Settings) -> None:
    from fastapi.testclient import TestClient

    from bot.app import create_app
    from bot.simulator import WeChatSimulator
    from tests.conftest import APPID, TOKEN

    services = svc()
    members = data.households(services, "青山村", 4, interacted=None)
    job = data.posting(services)
    push(services, job, villages=("青山村",))
    found = rows(services)
    statuses = ["success", "failed:user block", "failed: system failed", "failed:freq limit"]
    with TestClient(create_app(services)) as client:
        for member, status in zip(members, statuses):
            sim = WeChatSimulator(TOKEN, APPID, None, openid=member.openid)
            xml = sim.event("TEMPLATESENDJOBFINISH", MsgID=found[member.openid].msgid, Status=status)
            assert sim.post(client, xml).is_success
    after = rows(services)
    assert after[members[0].openid].status == "delivered"
    assert [after[m.openid].status for m in members[1:]] == ["failed"] * 3
    assert after[members[1].openid].receipt == "failed:user block"
    assert "拒收" in (after[members[1].openid].error or "")
    with services.db.session() as session:
        state = pushes.progress(session, after[members[0].openid].push_id)
    assert state is not None and state.sent == 1 and state.failed == 3


def test_a_receipt_faster_than_the_row_s_msgid_is_kept_and_applied(svc: Callable[..., Services],
                                                                     api: FakeWeChatAPI) -> None:
    services = svc()
    members = data.households(services, "青山村", 1, interacted=None)
    job = data.posting(services)
    push(services, job, villages=("青山村",))
    row = rows(services)[members[0].openid]
    with services.db.session() as session:  # the outcome not written yet, as a moment after the call
        session.execute(update(PushDelivery).values(msgid=None))
        assert not pushes.record_receipt(session, str(row.msgid), "success")
    assert rows(services)[members[0].openid].status == "sent"
    with services.db.session() as session:
        session.execute(update(PushDelivery).values(msgid=row.msgid))
    assert services.pusher.sweep()["push_receipts_applied"] == 1
    assert rows(services)[members[0].openid].status == "delivered"
    assert pushes.apply_early_receipts(services.db) == 0
    with services.db.session() as session:  # a receipt for a send that is not ours is dropped after a day
        assert not pushes.record_receipt(session, "999999", "success")
        session.execute(update(EarlyReceipt).values(received_at=utcnow() - timedelta(days=2)))
    assert pushes.apply_early_receipts(services.db) == 0
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(EarlyReceipt)) == 0


def test_the_township_group_hears_of_the_push_and_its_result(svc: Callable[..., Services],
                                                             api: FakeWeChatAPI) -> None:
    from bot.notices import flush_notices

    services = svc()
    data.households(services, "青山村", 2, interacted=None)
    job = data.posting(services)
    push(services, job, villages=("青山村",))
    flush_notices(services)
    texts = [c.json["markdown"]["content"] for c in api.calls_to("webhook/send")]
    joined = "\n".join(texts)
    assert "开始推送岗位" in joined and "岗位推送完成" in joined and "已发出 2" in joined
    services.pusher.finish_pushes()
    flush_notices(services)
    assert "\n".join(c.json["markdown"]["content"] for c in api.calls_to("webhook/send")).count("岗位推送完成") == 1


def test_closing_a_posting_stops_what_is_not_sent_yet(svc: Callable[..., Services], api: FakeWeChatAPI) -> None:
    from storage.jobs import close_posting
    from storage.households import ensure_township

    services = svc()
    data.households(services, "青山村", 5, interacted=None)
    job = data.posting(services)
    _, created = start_push(services, job, Targets(("青山村",)))
    with services.db.session() as session:
        close_posting(session, ensure_township(session, services.settings.township).id, job)
    services.pusher.drain(wait_for={created.push.id})
    assert not api.calls_to(TEMPLATE)
    assert {r.status for r in rows(services).values()} == {"skipped"}


def test_progress_json_has_the_contract_keys(svc: Callable[..., Services], api: FakeWeChatAPI) -> None:
    services = svc()
    data.households(services, "青山村", 1, interacted=None)
    job = data.posting(services)
    state = push(services, job, villages=("青山村",))
    payload = {"job": job, **state.to_json()}
    assert {"job", "recipients", "sent", "failed", "skipped"} <= set(payload)
    json.dumps(payload)


def test_template_values_fit_their_keyword_types() -> None:
    from bot.config import ConfigError, load_settings
    from bot.push_content import keyword_value, parse_template_fields, template_data

    cut = keyword_value("电子厂普工🔥（长白班，包吃住，五险一金，节日福利，月休四天）", "thing1")
    assert cut == "电子厂普工（长白班，包吃住，五险一金，…" and len(cut) == 20  # the emoji would show as □
    assert len(keyword_value("x" * 40, "thing3")) == 20
    assert keyword_value("岗位A-7号", "character_string2") == "A-7"
    assert keyword_value("4500元/月", "amount4") == "4500"
    assert keyword_value("马上报名吧朋友们", "phrase5") == "马上报名吧"
    fields = parse_template_fields("title:thing2, signup:thing9")
    assert template_data({"title": "普工"}, fields) == {"thing2": {"value": "普工"}, "thing9": {"value": "-"}}
    with pytest.raises(ConfigError, match="SISONG_WECHAT_TEMPLATE_JOB_FIELDS"):
        load_settings(wechat_template_job_fields="title=thing1")
    with pytest.raises(ConfigError, match="SISONG_WECHAT_TEMPLATE_JOB"):
        load_settings(wechat_template_job="not a template id!")


def test_a_village_account_may_push_only_to_its_villages(svc: Callable[..., Services], api: FakeWeChatAPI) -> None:
    from storage.scope import OutOfScope, ReadOnly, Scope

    services = svc()
    data.households(services, "青山村", 1)
    data.households(services, "绿水村", 1)
    own = data.village(services, "青山村")
    job = data.posting(services)
    cadre = Scope(villages=frozenset({own}), full_villages=frozenset({own}))
    with pytest.raises(OutOfScope, match="绿水村"):
        start_push(services, job, Targets(("青山村", "绿水村")), scope=cadre)
    with pytest.raises(OutOfScope, match="全镇"):
        start_push(services, job, Targets(everyone=True), scope=cadre)
    with pytest.raises(ReadOnly):
        start_push(services, job, Targets(("青山村",)), scope=Scope(writable=False))
    _, created = start_push(services, job, Targets(("青山村",)), scope=cadre)
    assert created.recipients == 1


def test_a_helper_sees_only_their_own_households_in_push_counts(svc: Callable[..., Services],
                                                                api: FakeWeChatAPI) -> None:
    """A 帮扶责任人 sees their own households, not how many followers the whole village has."""
    from storage import jobs as service
    from storage.models.org import Cadre
    from storage.scope import OutOfScope, Scope

    services = svc()
    data.households(services, "青山村", 2, helper="李四", prefix="李")
    data.households(services, "青山村", 3, prefix="别")
    job = data.posting(services)
    state = push(services, job, villages=("青山村",))
    assert state.sent == 5
    own = data.village(services, "青山村")
    with services.db.session() as session:
        helper_id = session.scalar(select(Cadre.id).where(Cadre.name == "李四"))
        township = session.scalar(select(JobPosting.township_id).where(JobPosting.id == job))
        helper = Scope(villages=frozenset({own}), full_villages=frozenset(), helper_id=helper_id, writable=False)
        village_cadre = Scope(villages=frozenset({own}), full_villages=frozenset({own}))
        (mine,) = service.funnel(session, township, job, scope=helper)
        assert (mine.pushed, mine.delivered) == (2, 2)
        (whole,) = service.funnel(session, township, job, scope=village_cadre)
        assert (whole.pushed, whole.delivered) == (5, 5)
        with pytest.raises(OutOfScope):
            service.push_progress(session, township, state.push_id, scope=helper)
        assert service.push_progress(session, township, state.push_id, scope=village_cadre) is not None
        assert service.pushes_of(session, township, job, scope=helper) == []
