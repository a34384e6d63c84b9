"""农户 in the console (issue 8): scoping at the API, import with a row-by-row report, pages, labels.

The township: 东片 (石桥村, 柳溪村) and 西片 (枫林村). Accounts: 王镇长 (镇管理员),
石村干 (村干部 of 石桥村), 赵督查 (督查), 李四 (帮扶责任人, linked to the cadre
李四, who helps two households of 石桥村 and one of 枫林村). API tests go
through Bearer tokens, as scripts do; CSRF is tested with a browser session.
"""

from __future__ import annotations

import csv
import io
import re
import zlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bot.app import create_app
from bot.config import Settings
from bot.services import Services, build_services
from storage import uploads
from storage.models import AuditLog, Follower, KbUnanswered, MessageLog, User
from storage.models.base import utcnow
from storage.models.org import Area, Cadre, Hamlet, Household, HouseholdBinding, Township, Village
from storage.models.uploads import ConsoleUpload
from storage.org_import import MAX_UPLOAD_BYTES
from tests.support.console_seed import PASSWORD, TOWNSHIP, bearer_headers, form_login, role_accounts

OPENID = "oHouseholdMember00000000001"
HEADER = ["户编号", "户主姓名", "村", "组", "帮扶责任人", "责任人电话", "人口数", "联系电话", "身份证号"]
HELPER_PHONE = "13800000004"


# -- the township ----------------------------------------------------------------------------------

@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(township=TOWNSHIP)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings, migrate=True)
    now = utcnow()
    with built.db.session() as session:
        township = Township(name=TOWNSHIP)
        session.add(township)
        session.flush()
        east, west = Area(township_id=township.id, name="东片"), Area(township_id=township.id, name="西片")
        session.add_all([east, west])
        session.flush()
        villages = {name: Village(township_id=township.id, area_id=area.id, name=name)
                    for name, area in (("石桥村", east), ("柳溪村", east), ("枫林村", west))}
        session.add_all(villages.values())
        session.flush()
        hamlets = {(v, h): Hamlet(village_id=villages[v].id, name=h) for v in villages for h in ("一组", "二组")}
        session.add_all(hamlets.values())
        lisi = Cadre(township_id=township.id, name="李四", phone=HELPER_PHONE, role="帮扶责任人",
                     villages=[villages["石桥村"], villages["枫林村"]])
        wang = Cadre(township_id=township.id, name="王五", phone="13800000005", role="帮扶责任人",
                     villages=list(villages.values()))
        session.add_all([lisi, wang])
        session.flush()

        def household(number: str, head: str, village: str, hamlet: str, helper: Cadre, phone: str | None,
                      **extra: Any) -> Household:
            row = Household(township_id=township.id, number=number, head_name=head, village_id=villages[village].id,
                            hamlet_id=hamlets[(village, hamlet)].id, helper_id=helper.id, phone=phone,
                            population=3, **extra)
            session.add(row)
            return row

        zhang = household("520100001", "张三", "石桥村", "一组", lisi, "13912344001", code="47218390",
                          code_issued_at=now, work_intent="身份证 110101199001011234 想去广东")
        household("520100002", "赵六", "石桥村", "二组", lisi, "0851-8123456", monitored=True)
        household("520100003", "钱七", "石桥村", "一组", wang, None)
        household("520200001", "孙八", "柳溪村", "一组", wang, "13712340002")
        household("520300001", "周九", "枫林村", "一组", lisi, "13612340003")
        household("520300002", "吴十", "枫林村", "二组", wang, "13512340004")
        session.flush()
        session.add(Follower(openid=OPENID, subscribed=True))
        session.add(HouseholdBinding(household_id=zhang.id, openid=OPENID, via="code", bound_at=now))
        session.add(MessageLog(direction="in", openid=OPENID, msg_type="text", text="低保怎么申请？我电话13912345678",
                               handler="policy_qa.answer", reply="低保申请：……", created_at=now - timedelta(hours=2)))
        session.add(MessageLog(direction="in", openid=OPENID, msg_type="text", text="找人工",
                               handler="handover.handle", reply="已经记下了", created_at=now - timedelta(hours=1)))
        session.add(MessageLog(direction="in", openid="oSomeoneElse000000000000009", msg_type="text",
                               text="别人的问题", handler="policy_qa.answer", created_at=now))
        session.add(KbUnanswered(openid=OPENID, question="危房改造补助多少？", normalized="危房改造补助多少",
                                 status="open", created_at=now - timedelta(minutes=50)))
        lisi_id = lisi.id
    role_accounts(built.db, lisi_id)
    yield built
    built.close()


@pytest.fixture
def app_client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services), follow_redirects=False) as client:
        yield client


@pytest.fixture
def as_user(services: Services, app_client: TestClient) -> Callable[[str], dict[str, str]]:
    """Bearer headers for an account (an API token, as a script would use)."""
    return bearer_headers(services.db)


def login(client: TestClient, name: str) -> str:
    """Log in through the form; returns the session's CSRF token."""
    return form_login(client, name, "/console/households")


def roster(*rows: list[str], header: list[str] = HEADER) -> bytes:
    """A roster as Excel writes CSV on Chinese Windows would be fine too; UTF-8 with BOM here."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig")


GOOD = ["520100009", "郑十一", "石桥村", "一组", "李四", HELPER_PHONE, "4", "13312345678", "110101199001011234"]
BAD = ["520100010", "冯十二", "石桥村", "九组", "李四", HELPER_PHONE, "四口", "13312345679", ""]
FIXED = ["520100010", "冯十二", "石桥村", "二组", "李四", HELPER_PHONE, "4", "13312345679", ""]


def numbers(response: Any) -> list[str]:
    return [item["number"] for item in response.json()["items"]]


def household_count(services: Services) -> int:
    with services.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Household)) or 0)


def audit_rows(services: Services, action: str) -> list[AuditLog]:
    with services.db.session() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def upload(client: TestClient, headers: dict[str, str], data: bytes, *, name: str = "花名册.csv",
           **form: str) -> Any:
    return client.post("/api/v1/households/import", headers=headers, files={"file": (name, data, "text/csv")},
                       data=form)


# -- scoping at the API ----------------------------------------------------------------------------

def test_village_cadre_lists_and_opens_only_their_village(app_client: TestClient, as_user: Callable) -> None:
    cadre = as_user("石村干")
    listed = app_client.get("/api/v1/households", headers=cadre)
    assert listed.status_code == 200
    assert numbers(listed) == ["520100001", "520100003", "520100002"]  # by village, 组, 户编号
    assert listed.json()["total"] == 3
    items = {item["number"]: item for item in listed.json()["items"]}
    assert items["520100001"]["phone"] == "139****4001"  # phones masked in lists
    assert items["520100002"]["phone"] == "0851-***3456"
    assert items["520100001"]["helper_phone"] == "138****0004"
    assert "110101199001011234" not in listed.text  # ID numbers in free text always masked

    assert numbers(app_client.get("/api/v1/households", params={"village": "石桥村"}, headers=cadre)) == \
        ["520100001", "520100003", "520100002"]
    other = app_client.get("/api/v1/households", params={"village": "枫林村"}, headers=cadre)
    assert other.status_code == 403 and "枫林村不在您负责的范围内" in other.json()["detail"]
    unknown = app_client.get("/api/v1/households", params={"village": "桃源村"}, headers=cadre)
    assert unknown.status_code == 404 and unknown.json()["detail"] == "没有村「桃源村」。"

    foreign = app_client.get("/api/v1/households/520300001", headers=cadre)
    assert foreign.status_code == 403 and foreign.json()["detail"] == "这一户不在您负责的范围内。"
    assert "周九" not in foreign.text
    missing = app_client.get("/api/v1/households/999999", headers=cadre)
    assert missing.status_code == 404 and "没有户编号为 999999 的户" in missing.json()["detail"]
    own = app_client.get("/api/v1/households/520100001", headers=cadre)
    assert own.status_code == 200
    assert own.json()["household"]["phone"] == "13912344001"  # a household's own page: the cadre calls it
    # Search cannot reach out of scope either.
    assert numbers(app_client.get("/api/v1/households", params={"q": "周"}, headers=cadre)) == []


def test_helper_sees_only_their_own_households(app_client: TestClient, as_user: Callable) -> None:
    helper = as_user("李四")
    # Villages sort by their characters' code points, as the CLI's list does (枫 before 石).
    assert numbers(app_client.get("/api/v1/households", headers=helper)) == ["520300001", "520100001", "520100002"]
    assert numbers(app_client.get("/api/v1/households", params={"village": "枫林村"}, headers=helper)) == \
        ["520300001"]
    assert app_client.get("/api/v1/households/520300001", headers=helper).status_code == 200
    assert app_client.get("/api/v1/households/520300002", headers=helper).status_code == 403  # 王五's
    assert app_client.get("/api/v1/households/520100003", headers=helper).status_code == 403
    assert app_client.get("/api/v1/households", params={"village": "柳溪村"}, headers=helper).status_code == 403
    status = app_client.get("/api/v1/households/binding-status", headers=helper).json()
    assert [(v["village"], v["households"]) for v in status["villages"]] == [("石桥村", 2), ("枫林村", 1)]


def test_admin_and_inspector_see_everything_but_the_inspector_changes_nothing(
        app_client: TestClient, as_user: Callable, services: Services) -> None:
    for name in ("王镇长", "赵督查"):
        listed = app_client.get("/api/v1/households", headers=as_user(name), params={"per_page": 4})
        assert listed.json()["total"] == 6 and len(listed.json()["items"]) == 4 and listed.json()["pages"] == 2
    page_two = app_client.get("/api/v1/households", headers=as_user("赵督查"), params={"per_page": 4, "page": 2})
    assert numbers(page_two) == ["520100003", "520100002"]
    refused = upload(app_client, as_user("赵督查"), roster(GOOD))
    assert refused.status_code == 403 and "只能查看" in refused.json()["detail"]
    codes = app_client.post("/api/v1/households/codes", headers=as_user("赵督查"), json={})
    assert codes.status_code == 403
    assert household_count(services) == 6


def test_search_by_number_name_phone_and_masked_name(app_client: TestClient, as_user: Callable) -> None:
    admin = as_user("王镇长")

    def found(q: str) -> list[str]:
        return numbers(app_client.get("/api/v1/households", params={"q": q}, headers=admin))

    assert found("520300") == ["520300001", "520300002"]
    assert found("赵") == ["520100002"]
    assert found("4001") == ["520100001"]  # the last digits of a caller's phone
    assert found("81234") == ["520100002"]  # a landline without its dash
    assert found("张＊") == ["520100001"]  # what a label shows
    assert found("枫林") == ["520300001", "520300002"]
    assert found("100%_") == []  # LIKE wildcards are text
    bound = app_client.get("/api/v1/households", params={"bound": "true"}, headers=admin)
    assert numbers(bound) == ["520100001"]


# -- import: report first, nothing written with a bad row ------------------------------------------

def test_import_with_a_bad_row_reports_it_and_writes_nothing(
        app_client: TestClient, as_user: Callable, services: Services) -> None:
    admin = as_user("王镇长")
    response = upload(app_client, admin, roster(GOOD, BAD))
    assert response.status_code == 422
    body = response.json()
    assert body["ok"] is False and body["dry_run"] is True
    assert body["detail"] == "有 1 处问题，没有导入任何内容。请改好后重新上传。"
    [error] = body["errors"]
    assert error["line"] == 3 and error["sheet"] is None
    assert "人口数「四口」不是整数" in error["reason"] and "村「石桥村」没有「九组」" in error["reason"]
    assert {c["letter"]: c["label"] for c in error["columns"]} == {"D": "组", "G": "人口数"}
    assert body["created"] == 0
    # Even when asked to write, a file with a bad row writes nothing.
    assert upload(app_client, admin, roster(GOOD, BAD), dry_run="false").status_code == 422
    assert household_count(services) == 6
    assert audit_rows(services, "households.import") == []


def test_fixed_file_dry_run_then_import(app_client: TestClient, as_user: Callable, services: Services) -> None:
    admin = as_user("王镇长")
    checked = upload(app_client, admin, roster(GOOD, FIXED))
    assert checked.status_code == 200, checked.text
    assert checked.json()["detail"] == "检查通过（没有写入）：新增 2 户，更新 0 户，未变化 0 户。"
    assert checked.json()["created_numbers"] == ["520100009", "520100010"]
    assert any("身份证号" in w for w in checked.json()["warnings"])
    assert household_count(services) == 6

    applied = upload(app_client, admin, roster(GOOD, FIXED), dry_run="false")
    assert applied.status_code == 200 and applied.json()["detail"] == "导入完成：新增 2 户，更新 0 户，未变化 0 户。"
    shown = app_client.get("/api/v1/households/520100010", headers=admin).json()["household"]
    assert (shown["head_name"], shown["hamlet"], shown["population"]) == ("冯十二", "二组", 4)
    [row] = audit_rows(services, "households.import")
    assert row.actor == "王镇长" and row.target == "花名册.csv"
    assert row.detail == "新增 2 户，更新 0 户，未变化 0 户"
    again = upload(app_client, admin, roster(GOOD, FIXED), dry_run="false").json()
    assert (again["created"], again["unchanged"]) == (0, 2)


def test_village_cadre_cannot_import_into_another_village(
        app_client: TestClient, as_user: Callable, services: Services) -> None:
    cadre = as_user("石村干")
    other_village = ["520300009", "陈十三", "枫林村", "一组", "李四", HELPER_PHONE, "2", "", ""]
    moved = ["520300001", "周九", "石桥村", "一组", "李四", HELPER_PHONE, "3", "", ""]  # 枫林村's household
    body = upload(app_client, cadre, roster(GOOD, other_village, moved)).json()
    assert [(e["line"], e["reason"]) for e in body["errors"]] == [
        (3, "枫林村不在您负责的范围内。"),
        (4, "户编号 520300001 登记在您负责范围以外的村，不能在这里修改。"),
    ]
    assert body["errors"][0]["columns"] == [{"letter": "C", "label": "村"}]
    ok = upload(app_client, cadre, roster(GOOD), dry_run="false")
    assert ok.status_code == 200 and ok.json()["created"] == 1
    assert audit_rows(services, "households.import")[0].actor == "石村干"
    refused = upload(app_client, cadre, roster(GOOD), create_missing="true")
    assert refused.status_code == 403 and "只有镇管理员" in refused.json()["detail"]


@pytest.mark.parametrize("name, data, code, words", [
    ("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, 422, "不是 CSV 或 Excel"),
    ("empty.csv", b"", 422, "文件是空的"),
    ("blank.csv", b"\n\n  \n", 422, "文件是空的"),
    ("word.docx", b"PK\x03\x04 not really a zip", 422, "打不开"),
    ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, 422, "旧版 Excel"),
    ("big.csv", b"a" * (MAX_UPLOAD_BYTES + 1), 413, "文件太大了"),
    ("notes.csv", "姓名,电话\n张三,1\n".encode(), 422, "找不到表头"),
], ids=["photo", "empty", "blank", "not-xlsx-zip", "xls", "too-big", "no-header"])
def test_bad_uploads_are_kind_4xx(app_client: TestClient, as_user: Callable, name: str, data: bytes, code: int,
                                  words: str) -> None:
    response = upload(app_client, as_user("王镇长"), data, name=name)
    assert response.status_code == code, response.text
    detail = response.json()["detail"] if code == 413 else response.json()["errors"][0]["reason"]
    assert words in detail


def test_missing_file_and_bad_fields_are_chinese_422(app_client: TestClient, as_user: Callable) -> None:
    admin = as_user("王镇长")
    not_multipart = app_client.post("/api/v1/households/import", headers=admin, data={"dry_run": "true"})
    assert not_multipart.status_code == 415 and "multipart/form-data" in not_multipart.json()["detail"]
    missing = app_client.post("/api/v1/households/import", headers=admin, files={"dry_run": (None, "true")})
    assert missing.status_code == 422 and missing.json()["detail"] == "填写的内容不对：file：必须填写。"
    two = app_client.post("/api/v1/households/import", headers=admin,
                          files=[("file", ("a.csv", roster(GOOD))), ("file", ("b.csv", roster(GOOD)))])
    assert two.status_code == 400 and two.json()["detail"] == "一次只能导入一个文件。"
    broken = app_client.post("/api/v1/households/import", content=b"--x\r\nnonsense",
                             headers={**admin, "content-type": "multipart/form-data; boundary=x"})
    assert broken.status_code in (400, 422) and not broken.json()["detail"].isascii()
    huge = app_client.post("/api/v1/households/import", content=b"x" * 16,
                           headers={**admin, "content-type": "multipart/form-data; boundary=x",
                                    "content-length": str(MAX_UPLOAD_BYTES * 2)})
    assert huge.status_code == 413
    bad_flag = upload(app_client, admin, roster(GOOD), dry_run="maybe")
    assert bad_flag.status_code == 422 and "dry_run" in bad_flag.json()["detail"]
    assert app_client.get("/api/v1/households", headers=admin, params={"page": 0}).status_code == 422
    assert app_client.get("/api/v1/households", headers=admin, params={"per_page": 10_000}).status_code == 422
    assert app_client.get("/api/v1/households").status_code == 401


def test_csrf_for_cookie_callers(app_client: TestClient, services: Services) -> None:
    csrf = login(app_client, "王镇长")
    files = {"file": ("花名册.csv", roster(GOOD), "text/csv")}
    refused = app_client.post("/api/v1/households/import", files=files)
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
    accepted = app_client.post("/api/v1/households/import", files=files, headers={"X-CSRF-Token": csrf})
    assert accepted.status_code == 200
    page = app_client.post("/console/households/import", files=files, data={"csrf": "wrong"})
    assert page.status_code == 403 and "页面已过期" in page.text
    assert app_client.post("/api/v1/households/codes", json={}).status_code == 403
    assert household_count(services) == 6


# -- the pages: check, then 确认导入 exactly what was checked ----------------------------------------

def test_import_page_reports_then_applies_the_checked_file(app_client: TestClient, services: Services) -> None:
    csrf = login(app_client, "石村干")
    form = app_client.get("/console/households/import")
    assert "上传并检查" in form.text and "自动新建" not in form.text  # only 镇管理员 may create villages

    bad = app_client.post("/console/households/import", data={"csrf": csrf},
                          files={"file": ("花名册.csv", roster(GOOD, BAD), "text/csv")})
    assert bad.status_code == 200
    assert "第 3 行" in bad.text and "D 列（组）" in bad.text and "G 列（人口数）" in bad.text
    assert "没有导入任何内容" in bad.text and "确认导入" not in bad.text

    good = app_client.post("/console/households/import", data={"csrf": csrf},
                           files={"file": ("花名册.csv", roster(GOOD, FIXED), "text/csv")})
    assert "检查通过" in good.text and "确认导入" in good.text
    key = re.search(r'name="key" value="([^"]+)"', good.text).group(1)  # type: ignore[union-attr]
    assert household_count(services) == 6
    with services.db.session() as session:
        kept = session.scalar(select(ConsoleUpload))
        assert kept is not None and b"110101199001011234" not in zlib.decompress(kept.payload)  # no ID kept

    applied = app_client.post("/console/households/import/apply", data={"csrf": csrf, "key": key})
    assert applied.status_code == 200 and "导入完成：新增 2 户" in applied.text
    assert household_count(services) == 8
    again = app_client.post("/console/households/import/apply", data={"csrf": csrf, "key": key})
    assert "已经过期或已经导入过了" in again.text
    assert household_count(services) == 8
    assert len(audit_rows(services, "households.import")) == 1


def test_a_checked_file_is_only_its_uploaders_and_is_checked_again(
        app_client: TestClient, services: Services) -> None:
    csrf = login(app_client, "王镇长")
    good = app_client.post("/console/households/import", data={"csrf": csrf},
                           files={"file": ("花名册.csv", roster(GOOD), "text/csv")})
    key = re.search(r'name="key" value="([^"]+)"', good.text).group(1)  # type: ignore[union-attr]
    with TestClient(create_app(services), follow_redirects=False) as other:
        other_csrf = login(other, "石村干")
        stolen = other.post("/console/households/import/apply", data={"csrf": other_csrf, "key": key})
        assert "已经过期或已经导入过了" in stolen.text
    # Someone imports the same household meanwhile: the plan changed, nothing is written.
    with services.db.session() as session:
        township_id = session.scalar(select(Township.id))
        village_id = session.scalar(select(Village.id).where(Village.name == "石桥村"))
        session.add(Household(township_id=township_id, number="520100009", head_name="郑十一", village_id=village_id))
    changed = app_client.post("/console/households/import/apply", data={"csrf": csrf, "key": key})
    assert "有了变化" in changed.text and "上传并检查" in changed.text
    assert audit_rows(services, "households.import") == []


def test_kept_uploads_expire(services: Services) -> None:
    with services.db.session() as session:
        user_id = session.scalar(select(User.id).where(User.name == "王镇长"))
    key = uploads.keep(services.db, user_id, "households", "a.csv", b"[]", ttl=timedelta(seconds=-1))
    assert uploads.take(services.db, key, user_id, "households") is None
    fresh = uploads.keep(services.db, user_id, "households", "a.csv", b"[]")
    assert uploads.take(services.db, fresh, user_id + 1, "households") is None  # not another account's
    assert uploads.take(services.db, fresh, user_id, "org") is None
    taken = uploads.take(services.db, fresh, user_id, "households")
    assert taken is not None and taken.payload == b"[]"
    assert uploads.take(services.db, fresh, user_id, "households") is None  # once


def test_read_only_and_empty_page_uploads(app_client: TestClient) -> None:
    csrf = login(app_client, "赵督查")
    assert "只能查看，不能导入" in app_client.get("/console/households/import").text
    refused = app_client.post("/console/households/import", data={"csrf": csrf},
                              files={"file": ("花名册.csv", roster(GOOD), "text/csv")})
    assert refused.status_code == 403 and "只能查看" in refused.text
    app_client.post("/console/logout", data={"csrf": csrf})
    csrf = login(app_client, "王镇长")
    empty = app_client.post("/console/households/import", data={"csrf": csrf},
                            files={"file": ("", b"", "application/octet-stream")})
    assert empty.status_code == 400 and "请先选择要导入的文件" in empty.text


# -- a household's page, binding status, labels ----------------------------------------------------

def test_household_detail_shows_members_questions_and_handovers_masked(
        app_client: TestClient, as_user: Callable) -> None:
    detail = app_client.get("/api/v1/households/520100001", headers=as_user("石村干"))
    body = detail.json()
    assert body["household"]["bound_members"] == 1 and body["household"]["code_status"] == "issued"
    assert body["household"]["work_intent"] == "身份证 110101********1234 想去广东"
    [member] = body["members"]
    assert member["openid"] == "oHou…0001" and member["via"] == "code" and member["following"] is True
    assert [q["text"] for q in body["questions"]] == ["找人工", "低保怎么申请？我电话139****5678"]
    assert [q["kind"] for q in body["questions"]] == ["找人工", "政策问答"]
    [handover] = body["handovers"]
    assert (handover["question"], handover["state"], handover["state_label"]) == ("危房改造补助多少？", "open", "待答")
    assert OPENID not in detail.text and "别人的问题" not in detail.text
    assert "47218390" not in detail.text  # the code itself is handed out on labels only


def test_pages_list_detail_binding_and_labels(app_client: TestClient, services: Services) -> None:
    login(app_client, "石村干")
    listed = app_client.get("/console/households", params={"q": "张"})
    assert listed.status_code == 200 and "520100001" in listed.text and "139****4001" in listed.text
    assert "13912344001" not in listed.text and "枫林村" not in listed.text
    detail = app_client.get("/console/households/520100001")
    assert detail.status_code == 200 and "张三家" in detail.text and 'href="tel:13912344001"' in detail.text
    assert "oHou…0001" in detail.text and "待答" in detail.text and "低保怎么申请" in detail.text
    assert app_client.get("/console/households/520300001").status_code == 403
    assert app_client.get("/console/households", params={"village": "枫林村"}).status_code == 403

    binding = app_client.get("/console/households/binding")
    assert binding.status_code == 200 and "石桥村" in binding.text and "枫林村" not in binding.text
    assert "生成绑定码（2 户）" in binding.text
    labels = app_client.get("/console/households/labels", params={"village": "石桥村"})
    assert labels.status_code == 200 and "4721 8390" in labels.text and "张＊" in labels.text
    assert "张三" not in labels.text and "共 1 户" in labels.text
    assert app_client.get("/console/households/labels", params={"village": "枫林村"}).status_code == 403
    assert app_client.get("/console/households/labels", params={"village": "桃源村"}).status_code == 404


def test_issuing_codes_from_the_console_is_scoped_and_audited(
        app_client: TestClient, as_user: Callable, services: Services) -> None:
    cadre = as_user("石村干")
    assert app_client.post("/api/v1/households/codes", headers=cadre, json={"village": "枫林村"}).status_code == 403
    issued = app_client.post("/api/v1/households/codes", headers=cadre, json={})
    assert issued.status_code == 200 and issued.json() == {"issued": 2}
    status = app_client.get("/api/v1/households/binding-status", headers=cadre).json()
    assert status["villages"] == [{"village": "石桥村", "area": "东片", "households": 3, "bound": 1, "unbound": 2,
                                   "share": 0.3333, "codes_issued": 3}]
    with services.db.session() as session:
        uncoded = session.scalars(select(Household.number).where(Household.code.is_(None))).all()
    assert sorted(uncoded) == ["520200001", "520300001", "520300002"]
    [row] = audit_rows(services, "households.codes")
    assert row.actor == "石村干" and row.detail == "新发绑定码 2 户"
    csrf = login(app_client, "王镇长")
    page = app_client.post("/console/households/codes", data={"csrf": csrf, "village": "柳溪村"})
    assert page.status_code == 200 and "柳溪村：新发绑定码 1 户" in page.text


def test_openapi_documents_the_households_api(app_client: TestClient) -> None:
    paths = app_client.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/households", "/api/v1/households/{number}", "/api/v1/households/import",
                 "/api/v1/households/binding-status", "/api/v1/households/codes"):
        assert path in paths
    assert not any(p.startswith("/console/households") for p in paths)


# -- in a real browser (the scenario) ------------------------------------------------------

@pytest.mark.parametrize("backend", ["server"], indirect=True)
def test_import_in_a_real_browser(services: Services, live_url: str, browser: Any) -> None:
    """Log in on a phone, import a roster with one bad row, read the report, fix it, import; open a household."""
    from tests.support.browser import DESKTOP, PHONE, log_in, screenshot

    context = browser.new_context(viewport=PHONE, locale="zh-CN")
    page = context.new_page()
    log_in(page, live_url, "王镇长", PASSWORD)
    page.click("nav.tabs >> text=农户")
    page.click("text=导入户信息")
    page.set_input_files("#file", files=[{"name": "花名册.csv", "mimeType": "text/csv",
                                          "buffer": roster(GOOD, BAD)}])
    page.click("button:has-text('上传并检查')")
    report = page.inner_text("#row-errors")
    assert "第 3 行" in report and "D 列（组）" in report and "人口数「四口」不是整数" in report
    assert "没有导入任何内容" in page.inner_text("[role=alert]")
    assert page.locator("#confirm-import").count() == 0
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "households-import-375")

    page.set_input_files("#file", files=[{"name": "花名册.csv", "mimeType": "text/csv",
                                          "buffer": roster(GOOD, FIXED)}])
    page.click("button:has-text('上传并检查')")
    assert "检查通过" in page.inner_text("[role=status]")
    assert household_count(services) == 6
    page.click("#confirm-import")
    assert "导入完成：新增 2 户" in page.inner_text("[role=status]")
    assert household_count(services) == 8
    page.click("text=查看农户")

    page.click("text=绑定情况")
    page.click("#binding-status tr:has-text('石桥村') button:has-text('生成绑定码')")
    assert "石桥村：新发绑定码 4 户" in page.inner_text("[role=status]")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "households-binding-375")
    page.click("nav.tabs >> text=农户")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "households-list-375")
    page.set_viewport_size(DESKTOP)
    page.fill("#q", "冯")
    page.click("button:has-text('查找')")
    page.click("a:has-text('520100010')")
    assert "冯十二家" in page.inner_text("h1")
    assert "石桥村 二组" in page.inner_text("#household-info")
    screenshot(page, "households-1280")
    context.close()


def test_nul_and_odd_text_never_500(app_client: TestClient, as_user: Callable) -> None:
    admin = as_user("王镇长")
    for params in ({"q": "\x00"}, {"village": "\x00"}, {"q": "%"}, {"q": "＊＊＊"}):
        response = app_client.get("/api/v1/households", params=params, headers=admin)
        assert response.status_code < 500 and not response.json().get("detail", "中").isascii(), params
    for number in ("%00", "a%2Fb", "x" * 300):
        response = app_client.get(f"/api/v1/households/{number}", headers=admin)
        assert 400 <= response.status_code < 500, number


def test_org_import_takes_scope_and_is_audited_in_its_transaction(services: Services) -> None:
    """The organisation import (storage.org_import) refuses limited accounts and audits what it writes.

    Without an actor (``sisong org import``) the row says 命令行; the console's 干部与群 page passes its account.
    """
    from storage.org_import import import_org_file
    from storage.scope import OutOfScope, ReadOnly, Scope

    villages = "片区,村,组\n东片,石桥村,三组\n".encode()
    with pytest.raises(OutOfScope):
        import_org_file(services.db, TOWNSHIP, villages, "村.csv", scope=Scope(frozenset({1}), frozenset({1})))
    with pytest.raises(ReadOnly):
        import_org_file(services.db, TOWNSHIP, villages, "村.csv", scope=Scope(writable=False))
    assert import_org_file(services.db, TOWNSHIP, villages, "村.csv", dry_run=True).ok
    assert audit_rows(services, "org.import") == []
    more = "片区,村,组\n东片,石桥村,四组\n".encode()
    assert import_org_file(services.db, TOWNSHIP, more, "村.csv").ok
    [row] = audit_rows(services, "org.import")
    assert (row.actor, row.user_id, row.target) == ("命令行", None, "村.csv")
    assert row.detail == "村新增 0、更新 1；干部新增 0、更新 0；工作群新增 0、更新 0"
