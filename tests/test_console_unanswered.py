"""待答问题 in the console (issue 8): the API and pages, scoped by role, CSRF, private replies, FAQ promotion.

The township has two villages in two areas. 石桥村's household asks one question,
柳溪村's household (helped by cadre 周帮扶) another, and a follower bound to no
household a third. Each role calls the real app over HTTP; every answer is
checked against what the store and the fake WeChat API then hold.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from typer.testing import CliRunner

import knowledge.cli as cli
from bot.app import create_app
from bot.config import Settings
from bot.services import Services, build_services
from knowledge.store.faq import FaqNotFound, add_faq, list_faqs, remove_faq, update_faq
from knowledge.store.unanswered import get_unanswered, list_unanswered, record_unanswered
from storage import followers
from storage.accounts import create_api_token, create_user, load_api_token
from storage.households import ensure_township
from storage.models import Area, AuditLog, Follower, User, Village
from storage.models.base import utcnow
from storage.models.org import Cadre, Hamlet, Household, HouseholdBinding
from storage.scope import OutOfScope, ReadOnly
from tests.conftest import wait_for
from tests.support.browser import DESKTOP, PHONE, log_in, screenshot
from tests.support.fake_wechat_api import FakeWeChatAPI

TOWNSHIP = "青山镇"
PASSWORD = "qingshan-2026"
SQ_OPENID = "oShiqiaoAsker00000000001"
LX_OPENID = "oLiuxiAsker0000000000001"
LOOSE_OPENID = "oNotBound000000000000001"
SQ_QUESTION = "我家的危房改造申请交上去多久有结果，电话13812345678"
LX_QUESTION = "娃儿在县城读高中有没有补助"
LOOSE_QUESTION = "村里的篮球场晚上几点关门"
REPLY = "已经报到镇上了，下周村委会通知您去签字。"


@dataclass
class World:
    services: Services
    sq: int  # 石桥村's question
    lx: int  # 柳溪村's question (the helper's household)
    loose: int  # a follower bound to no household
    tokens: dict[str, str]  # account name -> API token


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    return make_settings(township=TOWNSHIP)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings, migrate=True)
    yield built
    built.close()


def _bind(session: Any, household: Household, openid: str) -> None:
    session.add(HouseholdBinding(household_id=household.id, openid=openid, via="code"))


@pytest.fixture
def world(services: Services) -> World:
    with services.db.session() as session:
        township = ensure_township(session, TOWNSHIP)
        east, west = Area(township_id=township.id, name="东片"), Area(township_id=township.id, name="西片")
        session.add_all([east, west])
        session.flush()
        shiqiao = Village(township_id=township.id, area_id=east.id, name="石桥村")
        liuxi = Village(township_id=township.id, area_id=west.id, name="柳溪村")
        session.add_all([shiqiao, liuxi])
        session.flush()
        group = Hamlet(village_id=shiqiao.id, name="三组")
        helper = Cadre(township_id=township.id, name="周帮扶", phone="13900001111", role="帮扶责任人")
        session.add_all([group, helper])
        session.flush()
        sq = Household(township_id=township.id, number="SQ-001", head_name="张大山", village_id=shiqiao.id,
                       hamlet_id=group.id)
        lx = Household(township_id=township.id, number="LX-007", head_name="李秀英", village_id=liuxi.id,
                       helper_id=helper.id)
        session.add_all([sq, lx])
        session.flush()
        _bind(session, sq, SQ_OPENID)
        _bind(session, lx, LX_OPENID)
        helper_id = helper.id
        for openid in (SQ_OPENID, LX_OPENID, LOOSE_OPENID):
            followers.touch(session, openid, interaction=True)  # all wrote just now: the window is open
    ids = [record_unanswered(services.db, o, q) for o, q in
           ((SQ_OPENID, SQ_QUESTION), (LX_OPENID, LX_QUESTION), (LOOSE_OPENID, LOOSE_QUESTION))]
    create_user(services.db, "王镇长", PASSWORD, "镇管理员")
    create_user(services.db, "李村", PASSWORD, "村干部", ["石桥村"])
    create_user(services.db, "督查甲", PASSWORD, "督查")
    create_user(services.db, "帮扶乙", PASSWORD, "帮扶责任人")
    with services.db.session() as session:
        session.execute(update(User).where(User.name == "帮扶乙").values(cadre_id=helper_id))
    tokens = {name: create_api_token(services.db, name) for name in ("王镇长", "李村", "督查甲", "帮扶乙")}
    return World(services, *ids, tokens=tokens)


@pytest.fixture
def web(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services), follow_redirects=False) as client:
        yield client


def bearer(world: World, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[name]}"}


def login(client: TestClient, name: str) -> None:
    page = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    response = client.post("/console/login", data={"name": name, "password": PASSWORD, "csrf": csrf.group(1)})
    assert response.status_code == 303, response.text


def page_csrf(client: TestClient, path: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert found is not None
    return found.group(1)


def audit_rows(services: Services, action: str) -> list[AuditLog]:
    with services.db.session() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def sent_to(api: FakeWeChatAPI, openid: str, text: str) -> list[str]:
    return [c.json["text"]["content"] for c in api.calls_to("message/custom/send")
            if c.json.get("touser") == openid and text in c.json["text"]["content"]]


def listed(web: TestClient, world: World, name: str, **query: Any) -> dict[int, dict[str, Any]]:
    response = web.get("/api/v1/unanswered", params=query, headers=bearer(world, name))
    assert response.status_code == 200, response.text
    return {item["id"]: item for item in response.json()["items"]}


# -- scope at the API ---------------------------------------------------------------------------------


def test_each_role_sees_and_changes_only_its_own_questions(world: World, web: TestClient) -> None:
    assert set(listed(web, world, "王镇长")) == {world.sq, world.lx, world.loose}
    assert set(listed(web, world, "督查甲")) == {world.sq, world.lx, world.loose}
    assert set(listed(web, world, "李村")) == {world.sq}
    assert set(listed(web, world, "帮扶乙")) == {world.lx}  # their own household, in another village
    assert set(listed(web, world, "王镇长", village="柳溪村")) == {world.lx}
    assert listed(web, world, "李村", village="柳溪村") == {}

    body = web.get("/api/v1/unanswered", headers=bearer(world, "李村")).json()
    assert body["total"] == 1 and body["counts"]["open"] == 1 and body["counts"]["closed"] == 0
    item = body["items"][0]
    assert item["question"] == "我家的危房改造申请交上去多久有结果，电话138****5678"  # masked
    assert item["household"] == {"number": "SQ-001", "head_name": "张大山", "label": "张大山家（SQ-001）",
                                 "village": "石桥村", "hamlet": "三组", "helper_name": None, "helper_phone": None}
    assert item["status"] == "open" and item["status_label"] == "待答" and item["asked_at"].endswith("+08:00")
    assert "openid" not in item

    # 李村 (石桥村) cannot read, answer or close 柳溪村's question, even knowing its number.
    other = f"/api/v1/unanswered/{world.lx}"
    for response in (web.get(other, headers=bearer(world, "李村")),
                     web.post(f"{other}/reply", json={"reply": REPLY}, headers=bearer(world, "李村")),
                     web.post(f"{other}/close", headers=bearer(world, "李村")),
                     web.get(f"/api/v1/unanswered/{world.loose}", headers=bearer(world, "李村"))):
        assert response.status_code == 403, response.text
        assert "不是您负责的" in response.json()["detail"]
    # Only 镇管理员 publish to the whole township.
    refused = web.post(f"/api/v1/unanswered/{world.sq}/promote", json={"answer": "一般一个月内有结果。"},
                       headers=bearer(world, "李村"))
    assert refused.status_code == 403 and "镇管理员" in refused.json()["detail"]

    # 督查 read everything and change nothing.
    assert web.get(other, headers=bearer(world, "督查甲")).json()["household"]["helper_name"] == "周帮扶"
    for path, body in ((f"{other}/reply", {"reply": REPLY}), (f"{other}/close", None),
                       (f"{other}/promote", {"answer": "有，每学期一千元。"})):
        response = web.post(path, json=body, headers=bearer(world, "督查甲"))
        assert response.status_code == 403 and "只能查看" in response.json()["detail"]

    # 帮扶责任人: their household's question yes, 石桥村's no.
    assert web.get(other, headers=bearer(world, "帮扶乙")).status_code == 200
    assert web.get(f"/api/v1/unanswered/{world.sq}", headers=bearer(world, "帮扶乙")).status_code == 403

    # Nothing was changed by any refused call.
    assert all(r.state == "open" for r in list_unanswered(world.services.db))
    assert list_faqs(world.services.db) == []
    assert audit_rows(world.services, "unanswered.reply") == []


def test_the_service_functions_enforce_scope_themselves(world: World) -> None:
    """Not only the routes: a caller of the store with a cadre's scope gets the same refusals."""
    db = world.services.db
    cadre = load_api_token(db, world.tokens["李村"])
    inspector = load_api_token(db, world.tokens["督查甲"])
    assert cadre is not None and inspector is not None
    assert [r.id for r in list_unanswered(db, scope=cadre.scope)] == [world.sq]
    with pytest.raises(OutOfScope):
        get_unanswered(db, world.lx, cadre.scope)
    from knowledge.store.unanswered import close_unanswered, reply_unanswered

    with pytest.raises(OutOfScope):
        reply_unanswered(db, world.lx, REPLY, actor=cadre)
    with pytest.raises(ReadOnly):
        close_unanswered(db, world.lx, actor=inspector)
    assert get_unanswered(db, world.lx).state == "open"  # type: ignore[union-attr]


# -- replying privately ------------------------------------------------------------------------------


def test_a_reply_is_sent_inside_the_window_and_kept_outside_it(
    world: World, web: TestClient, api: FakeWeChatAPI, backend: str
) -> None:
    response = web.post(f"/api/v1/unanswered/{world.sq}/reply", json={"reply": REPLY}, headers=bearer(world, "李村"))
    assert response.status_code == 200, response.text
    item = response.json()
    assert item["status"] == "answered_delivered" and item["delivery_note"] == "已送达"
    assert item["replied_by"] == "李村" and item["reply"] == REPLY and item["delivered_at"]
    (text,) = sent_to(api, SQ_OPENID, REPLY)
    assert text.startswith("您之前问的“我家的危房改造") and "13812345678" not in text

    # 柳溪村's follower last wrote three days ago: the reply waits for their next message.
    with world.services.db.session() as session:
        session.execute(update(Follower).where(Follower.openid == LX_OPENID)
                        .values(last_interaction=utcnow() - timedelta(days=3)))
    response = web.post(f"/api/v1/unanswered/{world.lx}/reply", json={"reply": "有，每学期一千元。"},
                        headers=bearer(world, "帮扶乙"))
    assert response.status_code == 200, response.text
    item = response.json()
    assert item["status"] == "answered_pending" and item["delivered_at"] is None
    assert item["delivery_note"] == "待送达（对方48小时内没发消息，下次发消息时自动送达）"
    assert sent_to(api, LX_OPENID, "一千元") == []
    assert set(listed(web, world, "王镇长", status="answered_pending")) == {world.lx}
    assert set(listed(web, world, "王镇长", status="all")) == {world.sq, world.lx, world.loose}

    rows = audit_rows(world.services, "unanswered.reply")
    assert [(r.actor, r.target) for r in rows] == [("李村", f"问题 {world.sq}"), ("帮扶乙", f"问题 {world.lx}")]
    assert rows[0].user_id is not None and REPLY in rows[0].detail


def test_close_and_promote_write_audit_rows_and_promote_notifies_the_askers(
    world: World, web: TestClient, api: FakeWeChatAPI
) -> None:
    admin = bearer(world, "王镇长")
    closed = web.post(f"/api/v1/unanswered/{world.loose}/close", headers=admin)
    assert closed.status_code == 200 and closed.json()["status"] == "closed" and closed.json()["closed_at"]
    again = web.post(f"/api/v1/unanswered/{world.loose}/close", headers=admin)
    assert again.status_code == 409 and "已经关闭" in again.json()["detail"]
    assert web.post(f"/api/v1/unanswered/{world.loose}/reply", json={"reply": REPLY}, headers=admin).status_code == 409

    answer = "在县城读普通高中的脱贫户子女，每学期补助1000元，到学校资助办申请。"
    refused = web.post(f"/api/v1/unanswered/{world.lx}/promote",
                       json={"answer": answer + "电话13912345678"}, headers=admin)
    assert refused.status_code == 422 and "允许公开号码" in refused.json()["detail"]
    response = web.post(f"/api/v1/unanswered/{world.lx}/promote",
                        json={"answer": answer, "question": "孩子读高中有补助吗"}, headers=admin)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["notified"] == 1 and body["item"]["status"] == "answered_delivered"
    (faq,) = list_faqs(world.services.db)
    assert (faq.id, faq.question, faq.answer) == (body["faq_id"], "孩子读高中有补助吗", answer)
    wait_for(lambda: sent_to(api, LX_OPENID, answer), timeout=15)

    assert [(r.actor, r.target) for r in audit_rows(world.services, "unanswered.close")] == [
        ("王镇长", f"问题 {world.loose}")]
    (promoted,) = audit_rows(world.services, "faq.promote")
    assert promoted.actor == "王镇长" and promoted.target == f"常见问题 {faq.id}" and f"问题 {world.lx}" in promoted.detail


def test_bad_input_gets_a_chinese_4xx_never_a_500(world: World, web: TestClient) -> None:
    admin = bearer(world, "王镇长")
    cases = [
        ("post", f"/api/v1/unanswered/{world.sq}/reply", {"reply": ""}, 422),
        ("post", f"/api/v1/unanswered/{world.sq}/reply", {"reply": "   "}, 422),
        ("post", f"/api/v1/unanswered/{world.sq}/reply", {"reply": "好" * 601}, 422),
        ("post", f"/api/v1/unanswered/{world.sq}/reply", {"reply": "a" * 600 + "\x00"}, 422),
        ("post", f"/api/v1/unanswered/{world.sq}/reply", {"reply": "坏\x00字"}, 422),
        ("post", f"/api/v1/unanswered/{world.sq}/reply", {}, 422),
        ("post", f"/api/v1/unanswered/{world.sq}/reply", ["x"], 422),
        ("post", "/api/v1/unanswered/999/reply", {"reply": REPLY}, 404),
        ("post", "/api/v1/unanswered/999/close", None, 404),
        ("post", "/api/v1/unanswered/999/promote", {"answer": "好的"}, 404),
        ("post", f"/api/v1/unanswered/{world.sq}/promote", {"answer": "  "}, 422),
        ("get", "/api/v1/unanswered/999", None, 404),
        ("get", "/api/v1/unanswered/0", None, 422),
        ("get", "/api/v1/unanswered/99999999999999999999999", None, 422),
        ("get", "/api/v1/unanswered/abc", None, 422),
        ("get", "/api/v1/unanswered?status=whatever", None, 422),
        ("get", "/api/v1/unanswered?limit=0", None, 422),
        ("get", "/api/v1/unanswered?limit=100000", None, 422),
        ("get", "/api/v1/unanswered?offset=-1", None, 422),
        ("get", "/api/v1/unanswered?village=%00", None, 422),
    ]
    for method, path, body, code in cases:
        response = web.post(path, json=body, headers=admin) if method == "post" else web.get(path, headers=admin)
        assert response.status_code == code, (path, body, response.text)
        detail = response.json()["detail"]
        assert isinstance(detail, str) and not detail.isascii(), detail
    assert get_unanswered(world.services.db, world.sq).state == "open"  # type: ignore[union-attr]
    assert web.get("/api/v1/unanswered").status_code == 401
    assert web.get("/api/v1/unanswered?offset=1000000", headers=admin).json()["items"] == []


def test_openapi_documents_the_routes(web: TestClient) -> None:
    schema = web.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths["/api/v1/unanswered"]) == {"get"}
    for action in ("reply", "close", "promote"):
        assert "post" in paths[f"/api/v1/unanswered/{{item_id}}/{action}"]
    ok = paths["/api/v1/unanswered/{item_id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/UnansweredOut")
    assert {"403", "404"} <= set(paths["/api/v1/unanswered/{item_id}/reply"]["post"]["responses"])
    assert not any(p.startswith("/console") for p in paths)


# -- CSRF -------------------------------------------------------------------------------------------


def test_cookie_callers_need_the_csrf_token(world: World, web: TestClient, api: FakeWeChatAPI) -> None:
    login(web, "李村")
    path = f"/api/v1/unanswered/{world.sq}/reply"
    refused = web.post(path, json={"reply": REPLY})
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
    assert web.post(path, json={"reply": REPLY}, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert web.post(f"/api/v1/unanswered/{world.sq}/close").status_code == 403
    assert sent_to(api, SQ_OPENID, REPLY) == []

    # The page's form without its hidden field is refused too; with it the reply goes out.
    form = f"/console/unanswered/{world.sq}/reply"
    refused = web.post(form, data={"reply": REPLY})
    assert refused.status_code == 403 and "页面已过期" in refused.text
    assert web.post(form, data={"reply": REPLY, "csrf": "forged"}).status_code == 403
    assert get_unanswered(world.services.db, world.sq).state == "open"  # type: ignore[union-attr]

    token = page_csrf(web, f"/console/unanswered/{world.sq}")
    assert web.post(path, json={"reply": REPLY}, headers={"X-CSRF-Token": token}).status_code == 200
    assert len(sent_to(api, SQ_OPENID, REPLY)) == 1


# -- pages ------------------------------------------------------------------------------------------


def test_the_pages_show_the_cadres_queue_and_answer_through_forms(
    world: World, web: TestClient, api: FakeWeChatAPI
) -> None:
    login(web, "李村")
    queue = web.get("/console/unanswered")
    assert queue.status_code == 200
    assert "张大山家（SQ-001）" in queue.text and "138****5678" in queue.text and "13812345678" not in queue.text
    assert "李秀英" not in queue.text and LOOSE_QUESTION not in queue.text
    assert re.search(r"待答 <span class=\"badge\">1</span>", queue.text)
    assert web.get(f"/console/unanswered/{world.lx}").status_code == 403

    detail = web.get(f"/console/unanswered/{world.sq}")
    assert "发送答复" in detail.text and "三组" in detail.text
    assert "转为常见问题" not in detail.text  # 镇管理员 only
    csrf = page_csrf(web, f"/console/unanswered/{world.sq}")

    too_long = web.post(f"/console/unanswered/{world.sq}/reply", data={"reply": "好" * 601, "csrf": csrf})
    assert too_long.status_code == 422 and "答复太长" in too_long.text and "好" * 601 in too_long.text  # kept

    done = web.post(f"/console/unanswered/{world.sq}/reply", data={"reply": REPLY, "csrf": csrf})
    assert done.status_code == 303 and done.headers["location"] == f"/console/unanswered/{world.sq}?done=replied"
    shown = web.get(done.headers["location"])
    assert "已送达" in shown.text and "flash ok" in shown.text and REPLY in shown.text
    assert len(sent_to(api, SQ_OPENID, REPLY)) == 1

    closed = web.post(f"/console/unanswered/{world.sq}/close", data={"csrf": csrf})
    assert closed.status_code == 303
    shown = web.get(closed.headers["location"])
    assert "已关闭这个问题" in shown.text and "发送答复" not in shown.text
    assert "已关闭 <span class=\"badge\">1</span>" in web.get("/console/unanswered?status=closed").text


def test_the_inspector_reads_and_the_admin_promotes_from_the_page(
    world: World, web: TestClient, api: FakeWeChatAPI
) -> None:
    login(web, "督查甲")
    detail = web.get(f"/console/unanswered/{world.lx}")
    assert "只能查看" in detail.text and "发送答复" not in detail.text and "周帮扶" in detail.text
    csrf = page_csrf(web, f"/console/unanswered/{world.lx}")
    assert web.post(f"/console/unanswered/{world.lx}/reply", data={"reply": REPLY, "csrf": csrf}).status_code == 403

    # The same client (one app per services: a second app would start a second queue consumer) as 镇管理员.
    web.cookies.clear()
    login(web, "王镇长")
    page = web.get(f"/console/unanswered/{world.loose}")
    assert "未绑定" not in page.text and "还没有绑定住户" in page.text and "转为常见问题" in page.text
    csrf = page_csrf(web, f"/console/unanswered/{world.loose}")
    refused = web.post(f"/console/unanswered/{world.loose}/promote",
                       data={"answer": "晚上九点，有事打13912345678", "csrf": csrf})
    assert refused.status_code == 422 and "允许公开号码" in refused.text and "<details open>" in refused.text
    done = web.post(f"/console/unanswered/{world.loose}/promote",
                    data={"answer": "晚上九点，有事打13912345678", "allow_contact": "true", "csrf": csrf})
    assert done.status_code == 303 and "done=promoted&n=1" in done.headers["location"]
    assert "答案已发给提问的 1 位群众" in web.get(done.headers["location"]).text
    wait_for(lambda: sent_to(api, LOOSE_OPENID, "晚上九点"), timeout=15)
    (faq,) = list_faqs(world.services.db)
    assert faq.question == LOOSE_QUESTION and faq.answer == "晚上九点，有事打13912345678"


# -- the command line and FAQ edits keep working, audited as 命令行 -------------------------------------


def test_cli_and_faq_edits_are_audited(world: World) -> None:
    db = world.services.db
    cli.set_db_factory(lambda: db)
    cli.set_services_factory(lambda: world.services)
    try:
        result = CliRunner().invoke(cli.app, ["unanswered", "reply", str(world.sq), REPLY, "--by", "王干部"])
        assert result.exit_code == 0 and "已送达" in result.output, result.output
        result = CliRunner().invoke(cli.app, ["unanswered", "close", str(world.lx), "--by", "王干部"])
        assert result.exit_code == 0, result.output
    finally:
        cli.set_db_factory(cli._default_db)
        cli.set_services_factory(None)
    (reply,) = audit_rows(world.services, "unanswered.reply")
    assert reply.actor == "命令行" and reply.user_id is None and "答复人 王干部" in reply.detail
    (close,) = audit_rows(world.services, "unanswered.close")
    assert close.actor == "命令行" and "王干部" in close.detail
    assert get_unanswered(db, world.sq).replied_by == "王干部"  # type: ignore[union-attr]

    admin = load_api_token(db, world.tokens["王镇长"])
    cadre = load_api_token(db, world.tokens["李村"])
    inspector = load_api_token(db, world.tokens["督查甲"])
    faq_id = add_faq(db, "低保一个月多少钱", "每人每月450元。", actor=admin)
    updated = update_faq(db, faq_id, "低保每月发多少", "每人每月480元。", actor=admin)
    assert (updated.question, updated.answer) == ("低保每月发多少", "每人每月480元。")
    with pytest.raises(OutOfScope):
        update_faq(db, faq_id, "低保", "不告诉你", actor=cadre)
    with pytest.raises(ReadOnly):
        remove_faq(db, faq_id, actor=inspector)
    with pytest.raises(FaqNotFound):
        update_faq(db, 999, "问题", "答案", actor=admin)
    assert remove_faq(db, faq_id, actor=admin) and not remove_faq(db, faq_id, actor=admin)
    add_faq(db, "命令行加的", "可以。")  # positional, no actor: the command line
    actions = [(r.action, r.actor) for r in audit_rows(world.services, "faq.add")
               + audit_rows(world.services, "faq.update") + audit_rows(world.services, "faq.remove")]
    assert actions == [("faq.add", "王镇长"), ("faq.add", "命令行"), ("faq.update", "王镇长"), ("faq.remove", "王镇长")]


# -- in a real browser --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["server"], indirect=True)
def test_a_cadre_answers_a_question_on_a_phone(world: World, live_url: str, browser: Any,
                                               api: FakeWeChatAPI) -> None:
    context = browser.new_context(viewport=PHONE, locale="zh-CN")
    page = context.new_page()
    log_in(page, live_url, "李村", PASSWORD)
    page.click("nav.tabs >> text=待答问题")
    page.wait_for_url(re.compile(r".*/console/unanswered$"))
    assert "张大山家（SQ-001）" in page.inner_text("main") and "李秀英" not in page.inner_text("main")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "unanswered-375")
    page.click("text=去答复")
    page.fill("#reply", REPLY)
    page.click("button:has-text('发送答复')")
    page.wait_for_url(re.compile(r".*done=replied"))
    assert "已送达" in page.inner_text("[role=status]") and "已送达" in page.inner_text("#delivery")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "unanswered-item-375")
    assert len(sent_to(api, SQ_OPENID, REPLY)) == 1
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_url}/console/unanswered?status=all")
    assert "已送达" in page.inner_text("table")
    screenshot(page, "unanswered-1280")
    context.close()


# -- property-based: whatever the schema allows (or not), a Chinese 4xx or a 2xx, never a 500 ----------------


def test_generated_requests_never_get_a_500(world: World, services: Services) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    app = create_app(services)
    callers = (bearer(world, "王镇长"), bearer(world, "李村"))
    seen: set[int] = set()
    with TestClient(app) as client:
        # From the document, not from_asgi: that would run the app's lifespan again and leave a second
        # queue consumer running after the test.
        schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
        for result in schema.get_all_operations():
            operation = result.ok()
            if not operation.path.startswith("/api/v1/unanswered"):
                continue
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

                @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
                @given(case=operation.as_strategy(generation_mode=mode))
                def call(case: Any) -> None:
                    sent = case.as_transport_kwargs(base_url="http://testserver")
                    for headers in callers:
                        response = client.request(
                            sent["method"], sent["url"], headers={**(sent.get("headers") or {}), **headers},
                            params=sent.get("params"), json=sent.get("json"), content=sent.get("content"))
                        seen.add(response.status_code)
                        assert response.status_code < 500, (sent, response.text)
                        if response.status_code >= 400:
                            detail = response.json()["detail"]
                            assert isinstance(detail, str) and not detail.isascii(), (sent, detail)

                call()
    assert {200, 403, 404, 422} <= seen
