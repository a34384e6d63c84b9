"""我的账号, 账号管理, 操作记录 and 干部与群 (issue 8): roles, CSRF, audit rows, scoping, session purge."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from bot.app import create_app
from bot.config import Settings
from bot.pipeline import Pipeline
from bot.router import router
from bot.services import Services, build_services
from bot.sweeper import Sweeper
from storage.accounts import (
    AccountError,
    audit,
    authenticate,
    create_api_token,
    create_user,
    list_api_tokens,
    load_api_token,
    load_session,
    new_session,
    purge_sessions,
    revoke,
)
from storage.models import AuditLog, ConsoleSession, User
from storage.models.base import utcnow
from tests.support.console_seed import PASSWORD, ROBOT, TOWNSHIP, Seeded, seed_township

NEW_PASSWORD = "a-new-password-7"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(township=TOWNSHIP)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings, migrate=True)
    yield built
    built.close()


@pytest.fixture
def seeded(services: Services) -> Seeded:
    return seed_township(services.db)


def client(services: Services) -> TestClient:
    return TestClient(create_app(services), follow_redirects=False)


@pytest.fixture
def web(services: Services) -> Iterator[TestClient]:
    with client(services) as c:
        yield c


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def login(c: TestClient, name: str, password: str = PASSWORD) -> str:
    """Log in through the form; returns the session's CSRF token (from the home page)."""
    page = c.get("/console/login")
    response = c.post("/console/login", data={"name": name, "password": password, "csrf": csrf_of(page.text)})
    assert response.status_code == 303, response.text
    return csrf_of(c.get("/console/").text)


def bearer(services: Services, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_token(services.db, name)}"}


def actions(services: Services) -> list[tuple[str, str, str]]:
    with services.db.session() as session:
        return [(r.actor, r.action, r.target) for r in session.scalars(select(AuditLog).order_by(AuditLog.id))]


# -- my account --------------------------------------------------------------------------------

def test_change_own_password_on_the_page(services: Services, web: TestClient) -> None:
    create_user(services.db, "李村", PASSWORD, "村干部")
    with client(services) as phone:  # the same cadre logged in on another device
        login(phone, "李村")
        csrf = login(web, "李村")
        form = {"csrf": csrf, "old_password": PASSWORD, "new_password": NEW_PASSWORD, "new_password2": NEW_PASSWORD}

        assert web.post("/console/account/password", data={**form, "csrf": "forged"}).status_code == 403
        mismatch = web.post("/console/account/password", data={**form, "new_password2": "something-else"})
        assert mismatch.status_code == 400 and "两次输入的新密码不一样" in mismatch.text
        wrong = web.post("/console/account/password", data={**form, "old_password": "not-my-password"})
        assert wrong.status_code == 400 and "原密码不对" in wrong.text
        short = web.post("/console/account/password", data={**form, "new_password": "short", "new_password2": "short"})
        assert short.status_code == 400 and "密码太短" in short.text

        done = web.post("/console/account/password", data=form)
        assert done.status_code == 303 and done.headers["location"] == "/console/account?ok=password"
        assert "密码已修改" in web.get(done.headers["location"]).text  # this session stays
        assert phone.get("/console/").status_code == 303  # the other one ended
    assert authenticate(services.db, "李村", NEW_PASSWORD) is not None
    assert ("李村", "user.passwd", "李村") in actions(services)
    assert ("李村", "user.passwd.fail", "李村") in actions(services)


def test_wrong_old_password_is_limited(services: Services, web: TestClient) -> None:
    create_user(services.db, "李村", PASSWORD, "村干部")
    headers = bearer(services, "李村")
    body = {"old_password": "guess", "new_password": NEW_PASSWORD}
    for _ in range(5):
        assert web.post("/api/v1/account/password", json=body, headers=headers).status_code == 400
    refused = web.post("/api/v1/account/password", json={**body, "old_password": PASSWORD}, headers=headers)
    assert refused.status_code == 429 and "10 分钟" in refused.json()["detail"]


def test_own_tokens_api(services: Services, web: TestClient) -> None:
    create_user(services.db, "李村", PASSWORD, "村干部")
    create_user(services.db, "王镇长", PASSWORD, "镇管理员")
    other = create_api_token(services.db, "王镇长", "镇里的")
    headers = bearer(services, "李村")
    issued = web.post("/api/v1/account/tokens", json={"label": "报表"}, headers=headers)
    assert issued.status_code == 201
    token = issued.json()
    assert token["token"].startswith("sst_") and token["label"] == "报表" and token["active"]
    listed = web.get("/api/v1/account/tokens", headers=headers).json()
    assert [t["label"] for t in listed] == ["报表", ""] and "token" not in listed[0]

    other_id = list_api_tokens(services.db, "王镇长")[0].id
    hidden = web.delete(f"/api/v1/account/tokens/{other_id}", headers=headers)
    assert hidden.status_code == 404 and hidden.json()["detail"] == "没有这个令牌。"
    assert load_api_token(services.db, other) is not None
    assert web.delete("/api/v1/account/tokens/99999999999", headers=headers).status_code == 422

    revoked = web.delete(f"/api/v1/account/tokens/{token['id']}", headers=headers)
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    assert web.get("/api/v1/account", headers={"Authorization": f"Bearer {token['token']}"}).status_code == 401
    assert ("李村", "token.revoke", "李村") in actions(services)

    # A browser session calling the API must send X-CSRF-Token for writes.
    csrf = login(web, "李村")
    assert web.post("/api/v1/account/tokens", json={}).status_code == 403
    assert web.post("/api/v1/account/tokens", json={}, headers={"X-CSRF-Token": csrf}).status_code == 201
    me = web.get("/api/v1/account").json()
    assert me["name"] == "李村" and me["role"] == "村干部"


def test_tokens_on_the_page(services: Services, web: TestClient) -> None:
    create_user(services.db, "李村", PASSWORD, "村干部")
    csrf = login(web, "李村")
    page = web.post("/console/account/tokens", data={"csrf": csrf, "label": "导出"})
    assert page.status_code == 200 and "只显示这一次" in page.text
    token = re.search(r'id="new-token">(sst_[^<]+)<', page.text).group(1)  # type: ignore[union-attr]
    assert load_api_token(services.db, token) is not None
    assert token not in web.get("/console/account").text
    token_id = list_api_tokens(services.db, "李村")[0].id
    assert web.post(f"/console/account/tokens/{token_id}/revoke", data={"csrf": "x"}).status_code == 403
    done = web.post(f"/console/account/tokens/{token_id}/revoke", data={"csrf": csrf})
    assert done.status_code == 303 and load_api_token(services.db, token) is None
    assert "已作废" in web.get(done.headers["location"]).text


# -- users admin -------------------------------------------------------------------------------

def test_only_admins_manage_users(services: Services, seeded: Seeded, web: TestClient) -> None:
    create_user(services.db, "督查甲", PASSWORD, "督查")
    headers = bearer(services, "督查甲")
    refused = web.get("/api/v1/users", headers=headers)
    assert refused.status_code == 403 and refused.json()["detail"] == "只有镇管理员能管理账号。"
    body = {"name": "新人", "role": "村干部", "villages": [], "password": PASSWORD}
    assert web.post("/api/v1/users", json=body, headers=headers).status_code == 403
    login(web, "督查甲")
    page = web.get("/console/users")
    assert page.status_code == 403 and "只有镇管理员" in page.text
    assert "账号管理" not in web.get("/console/").text  # not in the navigation either


def test_users_admin_pages(services: Services, seeded: Seeded, web: TestClient) -> None:
    create_user(services.db, "王镇长", PASSWORD, "镇管理员")
    csrf = login(web, "王镇长")
    listing = web.get("/console/users")
    assert listing.status_code == 200 and "石桥村" in listing.text and "添加账号" in listing.text
    form = {"name": "李帮扶", "role": "帮扶责任人", "password": PASSWORD, "password2": PASSWORD}
    assert web.post("/console/users", data=form).status_code == 403  # no CSRF field
    bad = web.post("/console/users", data={**form, "csrf": csrf, "villages": ["桃源村"]})
    assert bad.status_code == 400 and "找不到村：桃源村" in bad.text
    added = web.post("/console/users", data={**form, "csrf": csrf})
    assert added.status_code == 303
    user_page = added.headers["location"]
    user_id = int(re.search(r"/console/users/(\d+)", user_page).group(1))  # type: ignore[union-attr]
    assert "账号已添加" in web.get(user_page).text

    linked = web.post(f"/console/users/{user_id}/cadre", data={"csrf": csrf, "cadre": "李帮扶"})
    assert linked.status_code == 303 and "已关联干部" in web.get(linked.headers["location"]).text
    with client(services) as helper:
        login(helper, "李帮扶")
        body = helper.get("/api/v1/dashboard").json()
        assert [v["village"] for v in body["villages"]] == ["石桥村", "枫林村"]

    moved = web.post(f"/console/users/{user_id}/update",
                     data={"csrf": csrf, "role": "村干部", "villages": ["石桥村", "柳溪村"]})
    assert moved.status_code == 303
    with services.db.session() as session:
        user = session.get(User, user_id)
        assert user is not None and user.role == "村干部"
        assert sorted(v.name for v in user.villages) == ["柳溪村", "石桥村"]

    reset = web.post(f"/console/users/{user_id}/password",
                     data={"csrf": csrf, "password": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert reset.status_code == 303 and authenticate(services.db, "李帮扶", NEW_PASSWORD) is not None
    assert web.post(f"/console/users/{user_id}/disable", data={"csrf": csrf}).status_code == 303
    assert authenticate(services.db, "李帮扶", NEW_PASSWORD) is None
    assert web.post(f"/console/users/{user_id}/enable", data={"csrf": csrf}).status_code == 303
    assert authenticate(services.db, "李帮扶", NEW_PASSWORD) is not None

    me = web.get("/api/v1/account").json()["id"]
    myself = web.post(f"/console/users/{me}/disable", data={"csrf": csrf})
    assert myself.status_code == 400 and "不能停用自己的账号" in myself.text
    assert web.get("/console/users/99999").status_code == 404
    done = [(actor, action) for actor, action, target in actions(services) if target == "李帮扶"]
    assert ("王镇长", "user.create") in done and ("王镇长", "user.link") in done
    assert ("王镇长", "user.update") in done and ("王镇长", "user.passwd") in done
    assert ("王镇长", "user.disable") in done and ("王镇长", "user.enable") in done


def test_users_admin_api(services: Services, seeded: Seeded, web: TestClient) -> None:
    create_user(services.db, "王镇长", PASSWORD, "镇管理员")
    headers = bearer(services, "王镇长")
    created = web.post("/api/v1/users", headers=headers,
                       json={"name": "石村干", "role": "村干部", "villages": ["石桥村"], "password": PASSWORD})
    assert created.status_code == 201
    user = created.json()
    assert user["villages"] == ["石桥村"] and user["active"] and user["cadre"] is None
    assert "password" not in str(user)
    duplicate = web.post("/api/v1/users", headers=headers,
                         json={"name": "石村干", "role": "村干部", "villages": [], "password": PASSWORD})
    assert duplicate.status_code == 400 and "已经有了" in duplicate.json()["detail"]
    bad_role = web.post("/api/v1/users", headers=headers,
                        json={"name": "某人", "role": "村长", "villages": [], "password": PASSWORD})
    assert bad_role.status_code == 422 and "role" in bad_role.json()["detail"]

    uid = user["id"]
    patched = web.patch(f"/api/v1/users/{uid}", headers=headers, json={"role": "片区干部", "villages": ["柳溪村"]})
    assert patched.status_code == 200 and patched.json()["role"] == "片区干部"
    ambiguous = web.put(f"/api/v1/users/{uid}/cadre", headers=headers, json={"cadre": "没有这个人"})
    assert ambiguous.status_code == 400 and "找不到干部" in ambiguous.json()["detail"]
    by_code = web.put(f"/api/v1/users/{uid}/cadre", headers=headers, json={"cadre": "47218390"})
    assert by_code.json()["cadre"] == "李帮扶"
    assert web.put(f"/api/v1/users/{uid}/cadre", headers=headers, json={"cadre": None}).json()["cadre"] is None
    assert web.post(f"/api/v1/users/{uid}/password", headers=headers, json={"password": NEW_PASSWORD}).status_code == 200
    theirs = create_api_token(services.db, "石村干", "脚本")
    tokens = web.get(f"/api/v1/users/{uid}/tokens", headers=headers).json()
    assert [t["label"] for t in tokens] == ["脚本"]
    assert web.delete(f"/api/v1/users/{uid}/tokens/{tokens[0]['id']}", headers=headers).status_code == 200
    assert load_api_token(services.db, theirs) is None
    assert web.post(f"/api/v1/users/{uid}/disable", headers=headers).json()["active"] is False
    assert web.post(f"/api/v1/users/{uid}/enable", headers=headers).json()["active"] is True
    assert web.get("/api/v1/users/424242", headers=headers).status_code == 404
    assert [u["name"] for u in web.get("/api/v1/users", headers=headers).json()] == ["王镇长", "石村干"]

    admin_id = web.get("/api/v1/account", headers=headers).json()["id"]
    alone = web.patch(f"/api/v1/users/{admin_id}", headers=headers, json={"role": "督查", "villages": []})
    assert alone.status_code == 400 and "不能改掉自己的镇管理员角色" in alone.json()["detail"]
    with pytest.raises(AccountError, match="唯一的镇管理员"):
        from storage.accounts import disable_user

        disable_user(services.db, "王镇长")  # not even from the command line


# -- audit viewer ----------------------------------------------------------------------------------

def test_audit_viewer_roles_filters_and_paging(services: Services, seeded: Seeded, web: TestClient) -> None:
    create_user(services.db, "王镇长", PASSWORD, "镇管理员")
    create_user(services.db, "督查甲", PASSWORD, "督查")
    create_user(services.db, "石村干", PASSWORD, "村干部", ["石桥村"], township=TOWNSHIP)
    with services.db.session() as session:  # sixty logins, half failed (argon2 sixty times would be slow)
        for n in range(60):
            audit(session, None, "login.fail" if n % 2 else "login", "石村干", actor="石村干")

    village = bearer(services, "石村干")
    assert web.get("/api/v1/audit", headers=village).status_code == 403
    inspector = bearer(services, "督查甲")
    everything = web.get("/api/v1/audit", headers=inspector).json()
    assert everything["total"] == 3 + 60 + 2 and len(everything["items"]) == 50  # 2 token.create
    first = everything["items"][0]
    assert first["action"] == "token.create" and first["action_label"] == "发 API 令牌"
    assert first["at"].endswith("+08:00")
    second = web.get("/api/v1/audit", params={"page": 2}, headers=inspector).json()
    assert len(second["items"]) == 15 and second["items"][-1]["action_label"] == "新建账号"
    fails = web.get("/api/v1/audit", params={"action": "login.fail", "actor": "村干"}, headers=inspector).json()
    assert fails["total"] == 30 and {i["action_label"] for i in fails["items"]} == {"登录失败"}
    today = utcnow().date()
    window = {"since": (today - timedelta(days=1)).isoformat(), "until": (today + timedelta(days=1)).isoformat()}
    assert web.get("/api/v1/audit", params=window, headers=inspector).json()["total"] == 65
    past = {"until": (today - timedelta(days=2)).isoformat()}
    assert web.get("/api/v1/audit", params=past, headers=inspector).json()["total"] == 0
    bad = web.get("/api/v1/audit", params={"since": "昨天"}, headers=inspector)
    assert bad.status_code == 422 and "since" in bad.json()["detail"]

    login(web, "石村干")
    page = web.get("/console/audit")
    assert page.status_code == 403 and "只有镇管理员和督查" in page.text
    assert "操作记录" not in web.get("/console/").text.split("<main>")[0]
    web.cookies.clear()
    login(web, "督查甲")
    page = web.get("/console/audit", params={"action": "login", "since": "不是日期"})
    assert page.status_code == 200 and "不是日期" in page.text and "登录" in page.text
    assert "第 1 / 1 页" in page.text
    paged = web.get("/console/audit")
    assert "下一页" in paged.text and "page=2" in paged.text


# -- 干部与群 ---------------------------------------------------------------------------------------

def test_org_overview_scoped(services: Services, seeded: Seeded, web: TestClient) -> None:
    create_user(services.db, "王镇长", PASSWORD, "镇管理员")
    create_user(services.db, "枫村干", PASSWORD, "村干部", ["枫林村"], township=TOWNSHIP)
    admin = web.get("/api/v1/org", headers=bearer(services, "王镇长")).json()
    assert [t["name"] for t in admin["teams"]] == ["帮扶", "建房", "产业", "就业", "督查"]
    cadres = {c["name"]: c for c in admin["cadres"]}
    assert cadres["李帮扶"]["phone"] == "13812345678" and cadres["李帮扶"]["households"] == 3
    assert cadres["赵枫林"]["wechat_bound"] and cadres["赵枫林"]["wecom"] and not cadres["李帮扶"]["wechat_bound"]
    assert [g["name"] for g in admin["groups"]] == sorted(["石桥群", "东片群", "镇工作群", "产业群"])
    groups = {g["name"]: g for g in admin["groups"]}
    assert groups["东片群"]["covered_villages"] == ["柳溪村", "石桥村"]
    assert groups["镇工作群"]["pending"] == 1 and groups["镇工作群"]["last_error"] == "企业微信回 45009"
    assert [(a["name"], [v["name"] for v in a["villages"]]) for a in admin["areas"]] == [
        ("东片", ["柳溪村", "石桥村"]), ("西片", ["枫林村"])]
    shiqiao = admin["areas"][0]["villages"][1]
    assert shiqiao["households"] == 3 and sorted(shiqiao["groups"]) == ["东片群", "石桥群", "镇工作群"]
    assert [n["status"] for n in admin["notices"]] == ["failed", "sent"]
    assert admin["notices"][1]["summary"] == "有住户的问题没答上来（石桥村 一组）"
    assert ROBOT not in str(admin) and "secret-robot-key" not in str(admin)

    village = web.get("/api/v1/org", headers=bearer(services, "枫村干")).json()
    cadres = {c["name"]: c for c in village["cadres"]}
    assert set(cadres) == {"李帮扶", "赵枫林"}  # 李帮扶 helps F1 in 枫林村
    assert cadres["赵枫林"]["phone"] == "139****1111" and cadres["李帮扶"]["households"] == 1
    assert [g["name"] for g in village["groups"]] == ["镇工作群"]  # 产业群 covers a team only
    assert [a["name"] for a in village["areas"]] == ["西片"]
    assert village["notices"] == []  # the township group's notices are about every village

    login(web, "枫村干")
    page = web.get("/console/org")
    assert page.status_code == 200 and "赵枫林" in page.text and "139****1111" in page.text
    assert "导入组织表" not in page.text and "石桥村" not in page.text.split("<h2>村和工作群</h2>")[1]


ORG_CSV = "片区,村,组\n东片,石桥村,一组、二组\n南片,桃源村,一组\n".encode()
BAD_CSV = "片区,村,组\n东片,,一组\n".encode()


def test_org_import_dry_run_then_confirm(services: Services, seeded: Seeded, web: TestClient) -> None:
    create_user(services.db, "王镇长", PASSWORD, "镇管理员")
    create_user(services.db, "石村干", PASSWORD, "村干部", ["石桥村"], township=TOWNSHIP)
    with client(services) as cadre:
        cadre_csrf = login(cadre, "石村干")
        refused = cadre.post("/console/org/import", data={"csrf": cadre_csrf},
                             files={"file": ("村.csv", ORG_CSV, "text/csv")})
        assert refused.status_code == 403
        api_refused = cadre.post("/api/v1/org/import", headers={"X-CSRF-Token": cadre_csrf},
                                 files={"file": ("村.csv", ORG_CSV, "text/csv")})
        assert api_refused.status_code == 403 and "只有镇管理员" in api_refused.json()["detail"]

    csrf = login(web, "王镇长")
    assert "导入组织表" in web.get("/console/org").text
    bad = web.post("/console/org/import", data={"csrf": csrf}, files={"file": ("村.csv", BAD_CSV, "text/csv")})
    assert bad.status_code == 400 and "什么都没有导入" in bad.text and "第 2 行" in bad.text
    assert "确认导入" not in bad.text

    checked = web.post("/console/org/import", data={"csrf": csrf}, files={"file": ("村.csv", ORG_CSV, "text/csv")})
    assert checked.status_code == 200 and "检查通过" in checked.text and "确认导入" in checked.text
    assert "桃源村" not in web.get("/console/org").text  # nothing written yet
    key = re.search(r'name="key" value="([^"]+)"', checked.text).group(1)  # type: ignore[union-attr]
    assert web.post("/console/org/import/confirm", data={"key": key}).status_code == 403  # no CSRF token
    with client(services) as other_admin:  # the kept file is only its uploader's
        create_user(services.db, "张镇", PASSWORD, "镇管理员")
        other_csrf = login(other_admin, "张镇")
        assert other_admin.post("/console/org/import/confirm", data={"csrf": other_csrf, "key": key}).status_code == 400
    done = web.post("/console/org/import/confirm", data={"csrf": csrf, "key": key})
    assert done.status_code == 200 and "组织表已导入" in done.text
    assert "桃源村" in web.get("/console/org").text
    assert ("王镇长", "org.import", "村.csv") in actions(services)
    again = web.post("/console/org/import/confirm", data={"csrf": csrf, "key": key})
    assert again.status_code == 400 and "已经导入过" in again.text  # a double click imports once

    api = web.post("/api/v1/org/import", headers={"X-CSRF-Token": csrf},
                   files={"file": ("村.csv", ORG_CSV, "text/csv")})
    assert api.status_code == 200 and api.json()["dry_run"] is True and api.json()["villages"]["unchanged"] == 2
    empty = web.post("/api/v1/org/import", headers={"X-CSRF-Token": csrf}, files={"file": ("a.csv", b"", "text/csv")})
    assert empty.status_code == 400 and "文件是空的" in empty.json()["detail"]


# -- expired sessions ------------------------------------------------------------------------------

def test_purge_sessions_and_the_sweeper(services: Services) -> None:
    user = create_user(services.db, "李村", PASSWORD, "村干部")
    fresh, idle, _expired, gone = (new_session(services.db, user) for _ in range(4))
    revoke(services.db, gone)
    now = utcnow()
    with services.db.session() as session:
        rows = {cs.id: cs for cs in session.scalars(select(ConsoleSession).order_by(ConsoleSession.id))}
        ids = sorted(rows)
        session.execute(update(ConsoleSession).where(ConsoleSession.id == ids[1])
                        .values(last_seen_at=now - timedelta(hours=30)))  # expired, within the day's margin
        session.execute(update(ConsoleSession).where(ConsoleSession.id == ids[2])
                        .values(last_seen_at=now - timedelta(hours=37)))
    assert purge_sessions(services.db) == 2  # the revoked one and the one idle past 12 h + a day
    with services.db.session() as session:
        assert sorted(session.scalars(select(ConsoleSession.id))) == ids[:2]
    assert load_session(services.db, fresh) is not None and load_session(services.db, idle) is None

    revoke(services.db, fresh)
    sweeper = Sweeper(services, Pipeline(services, router))
    assert sweeper.sweep()["sessions"] == 1
    revoke(services.db, new_session(services.db, user))
    assert "sessions" not in sweeper.sweep()  # at most hourly
    sweeper._sessions_at = -1e9  # an hour (and more) later
    assert sweeper.sweep()["sessions"] == 1


def test_hostile_input_is_refused_kindly(services: Services, seeded: Seeded) -> None:
    """What a fuzzer rarely hits: NUL characters (PostgreSQL refuses them), ids past 32 bits, calendar ends."""
    create_user(services.db, "王镇长", PASSWORD, "镇管理员")
    headers = bearer(services, "王镇长")
    with TestClient(create_app(services), raise_server_exceptions=False) as c:
        calls = [
            c.get("/api/v1/audit", params={"actor": "王\x00", "action": "\x00"}, headers=headers),
            c.get("/api/v1/audit", params={"since": "0001-01-01", "until": "9999-12-31"}, headers=headers),
            c.get("/api/v1/audit", params={"page": 10**9}, headers=headers),
            c.post("/api/v1/users", headers=headers,
                   json={"name": "a\x00b", "role": "村干部", "villages": [], "password": PASSWORD}),
            c.post("/api/v1/users", headers=headers,
                   json={"name": "ab", "role": "村干部", "villages": ["石桥\x00"], "password": PASSWORD}),
            c.put("/api/v1/users/1/cadre", headers=headers, json={"cadre": "李\x00"}),
            c.post("/api/v1/login/access-token", data={"username": "王\x00", "password": "x\x00"}),
            c.post("/api/v1/account/tokens", headers=headers, json={"label": "x\x00y"}),
            c.get(f"/api/v1/users/{2**31}", headers=headers),
            c.delete(f"/api/v1/account/tokens/{2**63}", headers=headers),
        ]
    assert [r.status_code for r in calls] == [200, 200, 422, 400, 400, 400, 401, 201, 422, 422]
    assert calls[0].json()["total"] == 0 and calls[1].json()["total"] >= 1
    for response in calls:
        if response.status_code >= 400:
            assert not response.json()["detail"].isascii()
    assert calls[7].json()["label"] == "x\ufffdy"
