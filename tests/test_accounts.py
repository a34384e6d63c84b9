"""Console accounts and access (issue 8): the users CLI, login, sessions, API tokens, roles, audit."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import typer
from fastapi import Depends
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from typer.testing import CliRunner

from bot.app import create_app
from bot.config import Settings, get_settings
from bot.console import CurrentUser, require_role
from bot.services import Services, build_services
from bot.users_cli import register
from knowledge import cli as knowledge_cli
from storage.accounts import (
    AccountError,
    authenticate,
    create_api_token,
    create_user,
    disable_user,
    load_session,
    new_session,
    scope_of,
    set_password,
)
from storage.models import Area, AuditLog, Cadre, ConsoleSession, Township, User, Village
from storage.models.base import utcnow

TOWNSHIP = "青山镇"
PASSWORD = "qingshan-2026"
runner = CliRunner()
cli = typer.Typer()
register(cli)


@cli.callback()
def _root() -> None:
    """A stand-in for ``sisong`` (register adds ``users`` to it)."""


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(township=TOWNSHIP)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings, migrate=True)
    with built.db.session() as session:
        township = Township(name=TOWNSHIP)
        session.add(township)
        session.flush()
        east, west = Area(township_id=township.id, name="东片"), Area(township_id=township.id, name="西片")
        session.add_all([east, west])
        session.flush()
        session.add_all([
            Village(township_id=township.id, area_id=east.id, name="石桥村"),
            Village(township_id=township.id, area_id=east.id, name="柳溪村"),
            Village(township_id=township.id, area_id=west.id, name="枫林村"),
        ])
    yield built
    built.close()


@pytest.fixture
def sisong(settings: Settings, services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Run ``sisong users …`` against the test database, as a shell would."""
    monkeypatch.setenv("SISONG_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SISONG_TOWNSHIP", TOWNSHIP)
    get_settings.cache_clear()
    knowledge_cli.set_db_factory(knowledge_cli._default_db)

    def run(*args: str, input: str | None = None) -> Any:
        return runner.invoke(cli, ["users", *args], input=input)

    yield run
    if knowledge_cli._db is not None:
        knowledge_cli._db.dispose()
    knowledge_cli.set_db_factory(knowledge_cli._default_db)
    get_settings.cache_clear()


def audit_rows(services: Services) -> list[AuditLog]:
    with services.db.session() as session:
        return list(session.scalars(select(AuditLog).order_by(AuditLog.id)))


def make_client(services: Services, address: str = "10.0.0.1") -> TestClient:
    app = create_app(services)

    @app.get("/api/v1/test-admin-only")
    def admin_only(user: CurrentUser, _: Any = Depends(require_role("镇管理员"))) -> dict[str, str]:
        return {"name": user.name}

    return TestClient(app, client=(address, 50000), follow_redirects=False)


@pytest.fixture
def web(services: Services) -> Iterator[TestClient]:
    with make_client(services) as client:
        yield client


def login(client: TestClient, name: str, password: str, *, with_csrf: bool = True) -> Any:
    page = client.get("/console/login")
    assert page.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    data = {"name": name, "password": password}
    if with_csrf:
        data["csrf"] = csrf.group(1)
    return client.post("/console/login", data=data)


# -- CLI ------------------------------------------------------------------------------------------

def test_cli_add_list_passwd_disable(sisong: Callable[..., Any], services: Services) -> None:
    result = sisong("add", "王镇长", "--role", "镇管理员", "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "已添加账号「王镇长」（镇管理员）" in result.output
    result = sisong("add", "李村", "--role", "村干部", "--village", "石桥村", "--village", "柳溪村",
                    input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "石桥村、柳溪村" in result.output

    listed = json.loads(sisong("list", "--json").output)["users"]
    assert [(u["name"], u["role"], u["active"], u["villages"]) for u in listed] == [
        ("王镇长", "镇管理员", True, []), ("李村", "村干部", True, ["石桥村", "柳溪村"])]
    table = sisong("list").output
    assert "王镇长" in table and "村干部" in table
    assert "password" not in json.dumps(listed) and PASSWORD not in table

    result = sisong("passwd", "李村", "--password-stdin", input="new-password-9\n")
    assert result.exit_code == 0, result.output
    assert authenticate(services.db, "李村", PASSWORD) is None
    assert authenticate(services.db, "李村", "new-password-9") is not None

    result = sisong("disable", "李村")
    assert result.exit_code == 0 and "已停用「李村」" in result.output
    assert json.loads(sisong("list", "--json").output)["users"][1]["active"] is False
    assert authenticate(services.db, "李村", "new-password-9") is None


def test_cli_refuses_kindly(sisong: Callable[..., Any]) -> None:
    weak = sisong("add", "王镇长", "--role", "镇管理员", "--password-stdin", input="short\n")
    assert weak.exit_code == 1 and "密码太短" in weak.output
    mismatch = sisong("add", "王镇长", "--role", "镇管理员", input=f"{PASSWORD}\nsomething-else\n{PASSWORD}\n{PASSWORD}\n")
    assert mismatch.exit_code == 0, mismatch.output  # asked again after the two entries differed
    duplicate = sisong("add", "王镇长", "--role", "督查", "--password-stdin", input=PASSWORD + "\n")
    assert duplicate.exit_code == 1 and "已经有了" in duplicate.output
    unknown = sisong("add", "赵片", "--role", "片区干部", "--village", "石桥村", "--village", "桃源村",
                     "--password-stdin", input=PASSWORD + "\n")
    assert unknown.exit_code == 1 and "找不到村：桃源村" in unknown.output
    bad_role = sisong("add", "赵片", "--role", "村长", "--password-stdin", input=PASSWORD + "\n")
    assert bad_role.exit_code == 2 and "没有「村长」这个角色" in bad_role.output
    missing = sisong("disable", "没有这个人")
    assert missing.exit_code == 1 and "没有名为「没有这个人」的账号" in missing.output
    assert [u["name"] for u in json.loads(sisong("list", "--json").output)["users"]] == ["王镇长"]


# -- login ----------------------------------------------------------------------------------------

def test_login_success_home_and_logout(services: Services, web: TestClient) -> None:
    create_user(services.db, "王镇长", PASSWORD, "镇管理员")
    assert web.get("/console/").headers["location"].startswith("/console/login")
    response = login(web, "王镇长", PASSWORD)
    assert response.status_code == 303 and response.headers["location"] == "/console/"
    cookie = response.headers["set-cookie"]
    assert "sisong_session=" in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie  # plain http here; https gets Secure
    home = web.get("/console/")
    assert home.status_code == 200 and "王镇长（镇管理员）" in home.text and "退出" in home.text

    assert web.post("/console/logout", data={"csrf": "wrong"}).status_code == 403
    csrf = re.search(r'name="csrf" value="([^"]+)"', home.text).group(1)  # type: ignore[union-attr]
    assert web.post("/console/logout", data={"csrf": csrf}).status_code == 303
    assert web.get("/console/").status_code == 303
    assert [r.action for r in audit_rows(services)] == ["user.create", "login", "logout"]


def test_secure_cookie_on_https(services: Services) -> None:
    create_user(services.db, "王镇长", PASSWORD, "镇管理员")
    with TestClient(create_app(services), base_url="https://testserver", follow_redirects=False) as client:
        response = login(client, "王镇长", PASSWORD)
        assert response.status_code == 303
        assert "Secure" in response.headers["set-cookie"]


def test_login_failure_and_csrf(services: Services, web: TestClient) -> None:
    create_user(services.db, "王镇长", PASSWORD, "镇管理员")
    wrong = login(web, "王镇长", "not-the-password")
    assert wrong.status_code == 401 and "账号或密码不对" in wrong.text
    assert login(web, "没有这个人", PASSWORD).status_code == 401
    no_token = login(web, "王镇长", PASSWORD, with_csrf=False)
    assert no_token.status_code == 403 and "页面已过期" in no_token.text
    assert "sisong_session" not in no_token.headers.get("set-cookie", "")
    fresh = TestClient(web.app, follow_redirects=False)  # a forged form from elsewhere has no cookie
    assert fresh.post("/console/login", data={"name": "王镇长", "password": PASSWORD, "csrf": "x"}).status_code == 403
    with services.db.session() as session:
        assert session.scalar(select(User.failed_logins).where(User.name == "王镇长")) == 1


def test_rate_limit_per_account(services: Services) -> None:
    create_user(services.db, "王镇长", PASSWORD, "镇管理员")
    for attempt in range(5):  # five different machines, one account
        with make_client(services, f"10.0.1.{attempt}") as client:
            assert login(client, "王镇长", "guess-%d" % attempt).status_code == 401
    with make_client(services, "10.0.2.1") as client:
        refused = login(client, "王镇长", PASSWORD)  # even the right password waits
        assert refused.status_code == 429 and "登录失败次数太多" in refused.text
    create_user(services.db, "李村", PASSWORD, "村干部")
    with make_client(services, "10.0.1.0") as client:
        assert login(client, "李村", PASSWORD).status_code == 303  # other accounts are not locked


def test_rate_limit_per_address(services: Services) -> None:
    create_user(services.db, "王镇长", PASSWORD, "镇管理员")
    with make_client(services, "10.0.3.3") as client:
        for attempt in range(5):  # one machine trying many accounts
            assert login(client, f"用户{attempt}", PASSWORD).status_code == 401
        assert login(client, "王镇长", PASSWORD).status_code == 429
    with make_client(services, "10.0.3.4") as client:
        assert login(client, "王镇长", PASSWORD).status_code == 303


# -- sessions and tokens ----------------------------------------------------------------------------

def test_session_expires_when_idle(services: Services, web: TestClient) -> None:
    create_user(services.db, "王镇长", PASSWORD, "镇管理员")
    assert login(web, "王镇长", PASSWORD).status_code == 303
    assert web.get("/console/").status_code == 200
    with services.db.session() as session:
        session.execute(update(ConsoleSession).values(last_seen_at=utcnow() - timedelta(hours=11)))
    assert web.get("/console/").status_code == 200  # still inside the idle window (and touched)
    with services.db.session() as session:
        session.execute(update(ConsoleSession).values(last_seen_at=utcnow() - timedelta(hours=12, minutes=1)))
    assert web.get("/console/").status_code == 303


def test_disabled_user_is_shut_out(services: Services, web: TestClient) -> None:
    create_user(services.db, "李村", PASSWORD, "村干部")
    assert login(web, "李村", PASSWORD).status_code == 303
    token = create_api_token(services.db, "李村", "报表脚本")
    assert web.get("/console/").status_code == 200
    disable_user(services.db, "李村")
    assert web.get("/console/").status_code == 303
    assert web.get("/api/v1/test-admin-only", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    web.cookies.clear()
    refused = login(web, "李村", PASSWORD)
    assert refused.status_code == 401


def test_password_change_ends_sessions(services: Services) -> None:
    user = create_user(services.db, "李村", PASSWORD, "村干部")
    token = new_session(services.db, user)
    assert load_session(services.db, token) is not None
    set_password(services.db, "李村", "another-pass-1")
    assert load_session(services.db, token) is None


def test_api_token_and_roles(services: Services, web: TestClient) -> None:
    create_user(services.db, "王镇长", PASSWORD, "镇管理员")
    create_user(services.db, "李村", PASSWORD, "村干部", ["石桥村"])
    admin = create_api_token(services.db, "王镇长", "导出")
    village = create_api_token(services.db, "李村")
    route = "/api/v1/test-admin-only"
    ok = web.get(route, headers={"Authorization": f"Bearer {admin}"})
    assert ok.status_code == 200 and ok.json() == {"name": "王镇长"}
    refused = web.get(route, headers={"Authorization": f"Bearer {village}"})
    assert refused.status_code == 403 and "没有这个权限" in refused.json()["detail"]
    assert web.get(route, headers={"Authorization": "Bearer sst_not-a-token"}).status_code == 401
    assert web.get(route).status_code == 401
    assert login(web, "李村", PASSWORD).status_code == 303
    assert web.get(route).status_code == 403  # a session cookie works the same way
    with services.db.session() as session:
        assert session.scalar(select(AuditLog.id).where(AuditLog.detail.contains(admin[4:]))) is None


def test_scope_of(services: Services) -> None:
    with services.db.session() as session:
        ids = {v.name: v.id for v in session.scalars(select(Village))}
    admin = scope_of(services.db, create_user(services.db, "王镇长", PASSWORD, "镇管理员"))
    assert admin.villages is None and admin.writable
    inspector = scope_of(services.db, create_user(services.db, "督查甲", PASSWORD, "督查"))
    assert inspector.villages is None and not inspector.writable
    village = scope_of(services.db, create_user(services.db, "李村", PASSWORD, "村干部", ["石桥村"]))
    assert village.villages == village.full_villages == {ids["石桥村"]} and village.writable
    area = create_user(services.db, "赵片", PASSWORD, "片区干部", ["柳溪村"])
    assert scope_of(services.db, area).villages == {ids["石桥村"], ids["柳溪村"]}  # the whole 东片
    helper = scope_of(services.db, create_user(services.db, "帮扶甲", PASSWORD, "帮扶责任人"))
    assert helper.villages == frozenset() and helper.helper_id is None
    with pytest.raises(AccountError, match="密码太短"):
        create_user(services.db, "短密码", "1234567", "村干部")


def test_audit_rows_and_no_passwords_anywhere(services: Services, web: TestClient,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    create_user(services.db, "王镇长", PASSWORD, "镇管理员")
    create_user(services.db, "李村", PASSWORD, "村干部", ["石桥村"])
    login(web, "王镇长", "wrong-password-123")
    login(web, "王镇长", PASSWORD)
    set_password(services.db, "李村", "secret-new-pass")
    disable_user(services.db, "李村")
    rows = audit_rows(services)
    assert [(r.action, r.target) for r in rows] == [
        ("user.create", "王镇长"), ("user.create", "李村"), ("login.fail", "王镇长"), ("login", "王镇长"),
        ("user.passwd", "李村"), ("user.disable", "李村")]
    assert rows[1].detail == "角色 村干部，村 石桥村" and rows[0].actor == "命令行"
    assert rows[3].user_id is not None and rows[3].at is not None
    everything = caplog.text + json.dumps([(r.actor, r.action, r.target, r.detail) for r in rows], ensure_ascii=False)
    for secret in (PASSWORD, "wrong-password-123", "secret-new-pass"):
        assert secret not in everything
    with services.db.session() as session:
        hashes = list(session.scalars(select(User.password_hash)))
    assert all(h.startswith("$argon2") and PASSWORD not in h for h in hashes)


def test_cli_token_is_shown_once_and_works(sisong: Callable[..., Any], services: Services, web: TestClient) -> None:
    create_user(services.db, "王镇长", PASSWORD, "镇管理员")
    result = sisong("token", "王镇长", "--label", "导出脚本")
    assert result.exit_code == 0, result.output
    issued = result.output.splitlines()[0].strip()
    ok = web.get("/api/v1/test-admin-only", headers={"Authorization": f"Bearer {issued}"})
    assert ok.status_code == 200 and ok.json() == {"name": "王镇长"}
    with services.db.session() as session:
        assert session.scalar(select(AuditLog.id).where(AuditLog.action == "token.create")) is not None
        assert session.scalar(select(AuditLog.id).where(AuditLog.detail.contains(issued[4:]))) is None
    missing = sisong("token", "没有这个人")
    assert missing.exit_code == 1 and "Traceback" not in missing.output


def test_cli_link_tokens_revoke_enable(sisong: Callable[..., Any], services: Services, web: TestClient) -> None:
    with services.db.session() as session:
        township = session.scalar(select(Township))
        village = session.scalar(select(Village).where(Village.name == "石桥村"))
        assert township is not None and village is not None
        session.add_all([Cadre(township_id=township.id, name="李四", phone="13812345678", code="47218390"),
                         Cadre(township_id=township.id, name="张三", phone="13900000001"),
                         Cadre(township_id=township.id, name="张三", phone="13900000002")])
    create_user(services.db, "李四", PASSWORD, "帮扶责任人")
    linked = sisong("link", "李四", "--cadre", "47218390")
    assert linked.exit_code == 0 and "已把「李四」关联到干部「李四」" in linked.output, linked.output
    assert json.loads(sisong("list", "--json").output)["users"][0]["cadre"] == "李四"
    twins = sisong("link", "李四", "--cadre", "张三")
    assert twins.exit_code == 1 and "有 2 位干部叫「张三」，请改用电话或干部码" in twins.output
    assert sisong("link", "李四", "--cadre", "13900000002").exit_code == 0
    assert sisong("link", "李四").exit_code == 2
    unlinked = sisong("link", "李四", "--none")
    assert unlinked.exit_code == 0 and "已取消「李四」关联的干部" in unlinked.output

    token = create_api_token(services.db, "李四", "报表")
    listed = json.loads(sisong("tokens", "李四", "--json").output)["tokens"]
    assert [(t["label"], t["revoked_at"]) for t in listed] == [("报表", None)]
    assert "报表" in sisong("tokens", "李四").output and token not in sisong("tokens", "李四").output
    revoked = sisong("revoke-token", str(listed[0]["id"]))
    assert revoked.exit_code == 0 and "已作废「李四」的令牌" in revoked.output
    assert web.get("/api/v1/test-admin-only", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert json.loads(sisong("tokens", "李四", "--json").output)["tokens"][0]["revoked_at"] is not None
    missing = sisong("revoke-token", "999")
    assert missing.exit_code == 1 and "没有这个令牌" in missing.output

    assert sisong("disable", "李四").exit_code == 0
    enabled = sisong("enable", "李四")
    assert enabled.exit_code == 0 and "已恢复「李四」" in enabled.output
    assert authenticate(services.db, "李四", PASSWORD) is not None
    actions = [r.action for r in audit_rows(services)]
    for action in ("user.link", "token.revoke", "user.enable"):
        assert action in actions
