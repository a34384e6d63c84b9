"""政策库 in the console (issue 8): import with its report, undo, browse, 试一试, FAQ and synonyms.

API tests run on both backends through the real app: multipart uploads, roles
(only 镇管理员 changes the township-wide handbook), CSRF for cookie callers,
Chinese 4xx on bad input. Undo is checked by what matters to households: the
answers after undo are the answers before the import.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

import knowledge.cli as knowledge_cli
from bot.app import create_app
from bot.services import Services
from knowledge import ensure_sample_loaded
from knowledge.ingest.importer import SAMPLE_HANDBOOK
from storage.accounts import create_api_token, create_user
from storage.models import Area, AuditLog, Township, Village
from tests.support.browser import DESKTOP, PHONE, log_in, screenshot

PASSWORD = "qingshan-2026"
QUESTIONS = ["危房改造补多少钱", "低保咋个申请", "娃儿读中专有补助没", "考驾照有补贴吗", "第六条说的啥"]

HANDBOOK_V1 = """# 示例县帮扶政策汇编

## 第一章 住房

第一条【危房改造补助】D级危房拆除重建的，每户补助3.5万元。

第二条【危房改造申请】农户向村委会提出申请，带身份证和户口簿。

## 第二章 兜底

第三条【低保标准】农村低保标准为每人每月450元。
"""
HANDBOOK_V2 = HANDBOOK_V1.replace("每户补助3.5万元", "每户补助4万元")


@pytest.fixture
def web(services: Services) -> Iterator[TestClient]:
    with services.db.session() as session:
        township = Township(name="青山镇")
        session.add(township)
        session.flush()
        area = Area(township_id=township.id, name="东片")
        session.add(area)
        session.flush()
        session.add(Village(township_id=township.id, area_id=area.id, name="石桥村"))
    create_user(services.db, "王镇长", PASSWORD, "镇管理员")
    create_user(services.db, "李村", PASSWORD, "村干部", ["石桥村"])
    create_user(services.db, "督查甲", PASSWORD, "督查")
    ensure_sample_loaded(services.db)
    with TestClient(create_app(services), follow_redirects=False) as client:
        yield client


def bearer(services: Services, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_token(services.db, name)}"}


def upload(client: TestClient, headers: dict[str, str], *files: tuple[str, bytes], replace: bool = False,
           url: str = "/api/v1/handbook/import", data: dict[str, str] | None = None) -> Any:
    parts = [("files", (name, content, "application/octet-stream")) for name, content in files]
    fields = dict(data or {})
    if replace:
        fields["replace"] = "true"
    return client.post(url, headers=headers, files=parts, data=fields)


def replies(client: TestClient, headers: dict[str, str]) -> list[tuple[str, list[tuple[str, float]]]]:
    """What each question gets, and the candidates behind it."""
    out = []
    for question in QUESTIONS:
        response = client.get("/api/v1/handbook/try", params={"q": question}, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        out.append((body["reply"], [(c["title"], c["score"]) for c in body["candidates"]]))
    return out


def login(client: TestClient, name: str) -> str:
    """Log in with the form; returns this session's CSRF token (the hidden field of a console page)."""
    page = client.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    assert client.post("/console/login", data={"name": name, "password": PASSWORD,
                                               "csrf": token.group(1)}).status_code == 303
    handbook = client.get("/console/handbook")
    csrf = re.search(r'name="csrf" value="([^"]+)"', handbook.text)
    assert csrf is not None
    return csrf.group(1)


def audits(services: Services, prefix: str) -> list[tuple[str, str, str]]:
    with services.db.session() as session:
        rows = session.scalars(select(AuditLog).where(AuditLog.action.startswith(prefix)).order_by(AuditLog.id))
        return [(r.actor, r.action, r.target) for r in rows]


# -- import, browse -----------------------------------------------------------------------------------

def test_import_through_the_api_reports_each_file_and_the_handbook_can_be_browsed(
        services: Services, web: TestClient) -> None:
    admin = bearer(services, "王镇长")
    response = upload(web, admin, ("policy.md", HANDBOOK_V1.encode()))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["changed"] and report["sample_removed"]
    assert report["removed"] == [SAMPLE_HANDBOOK.name]
    (file,) = report["files"]
    assert (file["name"], file["title"], file["status"], file["status_label"]) == (
        "policy.md", "示例县帮扶政策汇编", "imported", "新导入")
    assert (file["chapters"], file["articles"], file["passages"]) == (2, 3, 3)
    again = upload(web, admin, ("policy.md", HANDBOOK_V1.encode())).json()
    assert again["files"][0]["status_label"] == "未变化" and not again["changed"]
    assert "没有变化" in again["message"]

    documents = web.get("/api/v1/handbook/documents", headers=admin).json()
    assert [(d["name"], d["articles"], d["sample"]) for d in documents] == [("policy.md", 3, False)]
    detail = web.get(f"/api/v1/handbook/documents/{documents[0]['id']}", headers=admin).json()
    assert [(c["label"], c["title"], [a["label"] for a in c["articles"]]) for c in detail["chapters"]] == [
        ("第一章", "住房", ["第一条", "第二条"]), ("第二章", "兜底", ["第三条"])]
    first = detail["chapters"][0]["articles"][0]
    article = web.get(f"/api/v1/handbook/articles/{first['id']}", headers=admin).json()
    assert article["label"] == "第一条" and article["title"] == "危房改造补助"
    assert "3.5万元" in article["text"] and article["chapter_label"] == "第一章"
    assert article["previous_id"] is None and article["next_id"] == detail["chapters"][0]["articles"][1]["id"]
    assert audits(services, "handbook.") == [("王镇长", "handbook.import", "policy.md")] * 2


def test_a_broken_file_imports_nothing_and_names_the_file(services: Services, web: TestClient) -> None:
    admin = bearer(services, "王镇长")
    before = web.get("/api/v1/handbook/documents", headers=admin).json()
    response = upload(web, admin, ("policy.md", HANDBOOK_V1.encode()), ("scan.pdf", b"%PDF-1.4\nbroken"),
                      ("empty.txt", b""))
    assert response.status_code == 400
    body = response.json()
    assert body["detail"].startswith("没有导入任何内容")
    assert [f["file"] for f in body["failures"]] == ["scan.pdf", "empty.txt"]
    assert all(f["reason"] for f in body["failures"])
    wrong = upload(web, admin, ("表格.xls", b"not a handbook"))
    assert wrong.status_code == 400 and "不支持的文件格式" in wrong.json()["failures"][0]["reason"]
    assert web.get("/api/v1/handbook/documents", headers=admin).json() == before
    assert web.get("/api/v1/handbook/undo", headers=admin).json()["possible"] is False


def test_uploads_that_are_too_big_not_multipart_or_empty_are_refused_in_chinese(
        services: Services, web: TestClient) -> None:
    admin = bearer(services, "王镇长")
    big = upload(web, admin, ("huge.txt", b"x" * (20 * 1024 * 1024 + 1)))
    assert big.status_code == 413 and "20 MB" in big.json()["detail"]
    not_multipart = web.post("/api/v1/handbook/import", headers=admin, json={"files": []})
    assert not_multipart.status_code == 415 and "multipart" in not_multipart.json()["detail"]
    nothing = web.post("/api/v1/handbook/import", headers=admin, data={"replace": "1"}, files={"x": ("", b"")})
    assert nothing.status_code == 400 and "请选择" in nothing.json()["detail"]
    garbage = web.post("/api/v1/handbook/import", headers={**admin, "content-type": "multipart/form-data"},
                       content=b"no boundary")
    assert garbage.status_code == 400 and not garbage.json()["detail"].isascii()


def test_a_body_without_a_length_is_counted_as_it_arrives(services: Services, web: TestClient,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.console import handbook

    monkeypatch.setattr(handbook, "MAX_UPLOAD_BYTES", 4096)

    def chunks() -> Iterator[bytes]:  # sent chunked: no Content-Length to refuse it by
        yield b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n\r\n'
        for _ in range(100):  # past the limit and the multipart framing allowance (bot.console.uploads)
            yield b"x" * 1024

    refused = web.post("/api/v1/handbook/import", content=chunks(),
                       headers={**bearer(services, "王镇长"), "content-type": "multipart/form-data; boundary=b"})
    assert refused.status_code == 413 and "20 MB" in refused.json()["detail"]


# -- undo ---------------------------------------------------------------------------------------------

def test_undo_puts_back_the_answers_households_got_before_the_import(services: Services, web: TestClient) -> None:
    admin = bearer(services, "王镇长")
    assert web.get("/api/v1/handbook/undo", headers=admin).json() == {
        "possible": False, "description": "没有可以撤销的导入。", "imported_at": None, "actor": None, "files": []}
    documents = web.get("/api/v1/handbook/documents", headers=admin).json()
    before = replies(web, admin)
    assert upload(web, admin, ("a.md", HANDBOOK_V1.encode()), ("b.txt", "第一条 临时救助一般不超过3000元。\n".encode()),
                  replace=True).status_code == 200
    assert replies(web, admin) != before
    info = web.get("/api/v1/handbook/undo", headers=admin).json()
    assert info["possible"] and info["files"] == ["a.md", "b.txt"] and info["actor"] == "王镇长"
    assert re.fullmatch(r"撤销 \d{1,2}月\d{1,2}日 \d\d:\d\d 的导入（2 个文件）", info["description"])

    undone = web.post("/api/v1/handbook/undo", headers=admin)
    assert undone.status_code == 200, undone.text
    body = undone.json()
    assert body["removed"] == ["a.md", "b.txt"] and body["restored"] == [SAMPLE_HANDBOOK.name]
    assert body["sample_restored"] and body["message"].startswith("已撤销")
    assert replies(web, admin) == before
    assert web.get("/api/v1/handbook/documents", headers=admin).json() == documents  # same ids, same times
    again = web.post("/api/v1/handbook/undo", headers=admin)
    assert again.status_code == 409 and "没有可以撤销的导入" in again.json()["detail"]
    assert [a for _, a, _ in audits(services, "handbook.")] == ["handbook.import", "handbook.undo"]


def test_undo_of_an_edited_file_brings_back_its_previous_version(services: Services, web: TestClient) -> None:
    admin = bearer(services, "王镇长")
    upload(web, admin, ("policy.md", HANDBOOK_V1.encode()))
    question = {"q": "危房拆除重建补多少钱"}
    assert "3.5万元" in web.get("/api/v1/handbook/try", params=question, headers=admin).json()["reply"]
    updated = upload(web, admin, ("policy.md", HANDBOOK_V2.encode())).json()
    assert updated["files"][0]["status"] == "updated"
    assert "4万元" in web.get("/api/v1/handbook/try", params=question, headers=admin).json()["reply"]
    assert web.post("/api/v1/handbook/undo", headers=admin).json()["restored"] == ["policy.md"]
    assert "3.5万元" in web.get("/api/v1/handbook/try", params=question, headers=admin).json()["reply"]
    # One level: the import before it (which removed the sample) is not undone by a second click.
    assert web.post("/api/v1/handbook/undo", headers=admin).status_code == 409


def test_undo_refuses_when_the_handbook_changed_since_and_leaves_synonyms_alone(
        services: Services, web: TestClient, tmp_path: Any) -> None:
    from knowledge.ingest.importer import import_files
    from knowledge.ingest.undo import CHANGED_SINCE, UndoError, pending_undo, undo_last_import
    from knowledge.store.handbook import delete_documents, list_documents
    from knowledge.store.synonyms import add_synonym, list_synonyms

    path = tmp_path / "policy.md"
    path.write_text(HANDBOOK_V1, encoding="utf-8")
    import_files(services.db, [path])
    add_synonym(services.db, "养蜂", "养殖")  # not part of the import: undo keeps it
    assert undo_last_import(services.db).restored == [SAMPLE_HANDBOOK.name]
    assert [r.phrase for r in list_synonyms(services.db)] == ["养蜂"]

    import_files(services.db, [path])
    with services.db.session() as session:  # the handbook changes another way (a manual edit)
        delete_documents(session, [d.id for d in list_documents(services.db)])
    pending = pending_undo(services.db)
    assert pending is not None and not pending.possible
    with pytest.raises(UndoError, match=CHANGED_SINCE):
        undo_last_import(services.db)
    assert ensure_sample_loaded(services.db)  # loading the sample is not an import anyone undoes
    assert pending_undo(services.db) is None
    with services.db.session() as session:
        details = list(session.scalars(select(AuditLog.detail).where(AuditLog.action == "handbook.import")))
    assert details == ["新导入 policy.md（3 条）；移除 qingshan_handbook.md"] * 2


def test_handbook_undo_on_the_command_line(services: Services, web: TestClient, tmp_path: Any) -> None:
    knowledge_cli.set_db_factory(lambda: services.db)
    try:
        runner = CliRunner()
        nothing = runner.invoke(knowledge_cli.app, ["handbook", "undo"])
        assert nothing.exit_code == 1 and "没有可以撤销的导入" in nothing.output
        path = tmp_path / "policy.md"
        path.write_text(HANDBOOK_V1, encoding="utf-8")
        assert runner.invoke(knowledge_cli.app, ["handbook", "import", str(path)]).exit_code == 0
        result = runner.invoke(knowledge_cli.app, ["handbook", "undo"])
        assert result.exit_code == 0, result.output
        assert "policy.md" in result.output and "示例汇编" in result.output
        assert "青山县" in runner.invoke(knowledge_cli.app, ["handbook", "list"]).output
    finally:
        knowledge_cli.set_db_factory(knowledge_cli._default_db)
    assert [(actor, action) for actor, action, _ in audits(services, "handbook.")] == [
        ("命令行", "handbook.import"), ("命令行", "handbook.undo")]


# -- 试一试 --------------------------------------------------------------------------------------------

def test_try_shows_the_reply_the_candidates_and_why(services: Services, web: TestClient) -> None:
    village = bearer(services, "李村")  # every role may try
    body = web.get("/api/v1/handbook/try", params={"q": "娃儿读中专有补助没"}, headers=village).json()
    assert body["reply"] == services.knowledge.answer("娃儿读中专有补助没").text
    assert not body["handover"] and body["route"] == "search"
    assert body["cited"]["label"] == "第三十条" and body["candidates"][0]["cited"]
    assert body["candidates"][0]["score"] >= body["candidates"][1]["score"]
    assert {"phrase": "娃儿", "expansions": ["子女", "学生", "幼儿", "儿童"], "whole": True} in body["synonyms"]
    assert "第三十条" in body["reason"]
    homophone = web.get("/api/v1/handbook/try", params={"q": "底保咋个申请"}, headers=village).json()
    assert homophone["homophones"] == [{"heard": "底保", "meant": "低保"}]
    unknown = web.get("/api/v1/handbook/try", params={"q": "考驾照有补贴吗"}, headers=village).json()
    assert unknown["handover"] and unknown["cited"] is None
    assert "考驾照" in unknown["reason"] and "转给工作人员" in unknown["reason"]
    vague = web.get("/api/v1/handbook/try", params={"q": "要什么材料"}, headers=village).json()
    assert vague["route"] == "clarify" and not vague["handover"]
    with services.db.session() as session:
        from storage.models.knowledge import KbUnanswered

        assert session.scalar(select(KbUnanswered.id)) is None  # trying never queues a question


def test_a_synonym_for_a_word_without_an_entry_changes_the_answer_at_once(
        services: Services, web: TestClient) -> None:
    admin = bearer(services, "王镇长")
    question = {"q": "养蜂有补贴吗"}
    before = web.get("/api/v1/handbook/try", params=question, headers=admin).json()
    assert before["handover"]
    added = web.post("/api/v1/handbook/synonyms", headers=admin, json={"phrase": "养蜂", "expansion": "养殖"})
    assert added.status_code == 201, added.text
    assert added.json()["missing_words"] == [] and added.json()["warning"] is None
    after = web.get("/api/v1/handbook/try", params=question, headers=admin).json()  # no waiting for a reload
    assert not after["handover"] and after["cited"]["label"] == "第十五条"
    assert {"phrase": "养蜂", "expansions": ["养殖"], "whole": True} in after["synonyms"]
    useless = web.post("/api/v1/handbook/synonyms", headers=admin, json={"phrase": "趸船", "expansion": "渡船"}).json()
    assert useless["missing_words"] == ["渡船"] and "渡船" in useless["warning"]
    rules = web.get("/api/v1/handbook/synonyms", headers=admin).json()
    assert [(r["phrase"], r["expansion"]) for r in rules] == [("养蜂", "养殖"), ("趸船", "渡船")]
    assert web.delete(f"/api/v1/handbook/synonyms/{rules[0]['id']}", headers=admin).status_code == 200
    assert web.get("/api/v1/handbook/try", params=question, headers=admin).json()["handover"]
    assert web.delete(f"/api/v1/handbook/synonyms/{rules[0]['id']}", headers=admin).status_code == 404
    assert audits(services, "synonym.") == [("王镇长", "synonym.add", "养蜂"), ("王镇长", "synonym.add", "趸船"),
                                            ("王镇长", "synonym.remove", "养蜂")]


def test_faq_editing_changes_the_answer(services: Services, web: TestClient) -> None:
    admin = bearer(services, "王镇长")
    question = {"q": "村部在哪"}
    added = web.post("/api/v1/handbook/faqs", headers=admin, json={"question": "村部在哪", "answer": "村部在老学校旁边。"})
    assert added.status_code == 201, added.text
    faq_id = added.json()["id"]
    tried = web.get("/api/v1/handbook/try", params=question, headers=admin).json()
    assert tried["route"] == "faq" and "老学校" in tried["reply"] and tried["faq"]["id"] == faq_id
    changed = web.put(f"/api/v1/handbook/faqs/{faq_id}", headers=admin,
                      json={"question": "村部在哪", "answer": "村部搬到了新修的综合楼。"})
    assert changed.status_code == 200 and changed.json()["answer"] == "村部搬到了新修的综合楼。"
    assert "综合楼" in web.get("/api/v1/handbook/try", params=question, headers=admin).json()["reply"]
    assert [f["id"] for f in web.get("/api/v1/handbook/faqs", headers=admin).json()] == [faq_id]
    assert web.delete(f"/api/v1/handbook/faqs/{faq_id}", headers=admin).status_code == 200
    assert web.get("/api/v1/handbook/try", params=question, headers=admin).json()["route"] != "faq"
    assert web.put(f"/api/v1/handbook/faqs/{faq_id}", headers=admin,
                   json={"question": "问", "answer": "答"}).status_code == 404
    assert web.delete(f"/api/v1/handbook/faqs/{faq_id}", headers=admin).status_code == 404
    empty = web.post("/api/v1/handbook/faqs", headers=admin, json={"question": "？？", "answer": "答案"})
    assert empty.status_code == 400 and "问题不能为空" in empty.json()["detail"]
    assert [action for _, action, _ in audits(services, "faq.")][:3] == ["faq.add", "faq.update", "faq.remove"]


# -- who may do what ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["李村", "督查甲"])
def test_only_the_township_admin_changes_the_handbook(services: Services, web: TestClient, name: str) -> None:
    other = bearer(services, name)
    refused = [
        upload(web, other, ("policy.md", HANDBOOK_V1.encode())),
        web.post("/api/v1/handbook/undo", headers=other),
        web.post("/api/v1/handbook/synonyms", headers=other, json={"phrase": "养蜂", "expansion": "养殖"}),
        web.delete("/api/v1/handbook/synonyms/1", headers=other),
        web.post("/api/v1/handbook/faqs", headers=other, json={"question": "村部在哪", "answer": "老学校旁边"}),
        web.put("/api/v1/handbook/faqs/1", headers=other, json={"question": "村部在哪", "answer": "老学校旁边"}),
        web.delete("/api/v1/handbook/faqs/1", headers=other),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert all("权限" in r.json()["detail"] for r in refused)
    documents = web.get("/api/v1/handbook/documents", headers=other)
    assert documents.status_code == 200 and documents.json()[0]["sample"]
    detail = web.get(f"/api/v1/handbook/documents/{documents.json()[0]['id']}", headers=other).json()
    article_id = detail["chapters"][0]["articles"][0]["id"]
    assert web.get(f"/api/v1/handbook/articles/{article_id}", headers=other).status_code == 200
    assert web.get("/api/v1/handbook/try", params={"q": "低保咋个申请"}, headers=other).status_code == 200
    assert web.get("/api/v1/handbook/faqs", headers=other).status_code == 200
    assert web.get("/api/v1/handbook/synonyms", headers=other).status_code == 200
    page = web.get("/console/handbook", cookies={})
    assert page.status_code == 303  # pages need a session
    assert audits(services, "handbook.") == [] and audits(services, "synonym.") == []
    assert web.get("/api/v1/handbook/documents").status_code == 401


def test_cookie_callers_need_the_csrf_token(services: Services, web: TestClient) -> None:
    csrf = login(web, "王镇长")
    rule = {"phrase": "养蜂", "expansion": "养殖"}
    missing = web.post("/api/v1/handbook/synonyms", json=rule)
    assert missing.status_code == 403 and "X-CSRF-Token" in missing.json()["detail"]
    assert web.post("/api/v1/handbook/undo").status_code == 403
    assert upload(web, {}, ("policy.md", HANDBOOK_V1.encode())).status_code == 403
    assert web.post("/api/v1/handbook/synonyms", json=rule, headers={"X-CSRF-Token": csrf}).status_code == 201
    # Pages: the form's hidden field.
    form = web.post("/console/handbook/synonyms", data={"phrase": "养蜂子", "expansion": "养殖"})
    assert form.status_code == 403 and "页面已过期" in form.text
    no_token = upload(web, {}, ("policy.md", HANDBOOK_V1.encode()), url="/console/handbook/import")
    assert no_token.status_code == 403
    assert [r["phrase"] for r in web.get("/api/v1/handbook/synonyms").json()] == ["养蜂"]


def test_bad_input_gets_a_chinese_4xx(services: Services, web: TestClient) -> None:
    admin = bearer(services, "王镇长")
    cases = [
        (web.get("/api/v1/handbook/try", params={"q": ""}, headers=admin), 422),
        (web.get("/api/v1/handbook/try", params={"q": "   "}, headers=admin), 400),
        (web.get("/api/v1/handbook/try", headers=admin), 422),
        (web.get("/api/v1/handbook/try", params={"q": "问" * 2001}, headers=admin), 422),
        (web.get("/api/v1/handbook/documents/999999", headers=admin), 404),
        (web.get("/api/v1/handbook/articles/999999", headers=admin), 404),
        (web.get("/api/v1/handbook/articles/0", headers=admin), 422),
        (web.get("/api/v1/handbook/articles/abc", headers=admin), 422),
        (web.delete("/api/v1/handbook/synonyms/999999", headers=admin), 404),
        (web.post("/api/v1/handbook/synonyms", headers=admin, json={"phrase": "", "expansion": "养殖"}), 422),
        (web.post("/api/v1/handbook/synonyms", headers=admin, json={"phrase": "  ", "expansion": "养殖"}), 400),
        (web.post("/api/v1/handbook/faqs", headers=admin, content=b"{not json"), 422),
    ]
    for response, code in cases:
        assert response.status_code == code, (response.request.url, response.text)
        detail = response.json()["detail"]
        assert isinstance(detail, str) and not detail.isascii(), detail


# -- pages ----------------------------------------------------------------------------------------

def test_pages_import_report_undo_browse_and_try(services: Services, web: TestClient) -> None:
    csrf = login(web, "王镇长")
    page = web.get("/console/handbook")
    assert "导入政策汇编" in page.text and "没有可以撤销的导入" in page.text and "示例（虚构）" in page.text
    bad = upload(web, {}, ("policy.md", HANDBOOK_V1.encode()), ("scan.pdf", b"%PDF-1.4\nbroken"),
                 url="/console/handbook/import", data={"csrf": csrf})
    assert bad.status_code == 400 and "没有导入任何内容" in bad.text and "scan.pdf" in bad.text
    done = upload(web, {}, ("policy.md", HANDBOOK_V1.encode()), url="/console/handbook/import", data={"csrf": csrf})
    assert done.status_code == 200 and "新导入" in done.text and "示例汇编（青山县，虚构）已移除" in done.text
    assert re.search(r"撤销 \d{1,2}月\d{1,2}日 \d\d:\d\d 的导入（1 个文件）", done.text)
    tried = web.get("/console/handbook/try", params={"q": "危房拆除重建补多少钱"})
    assert "3.5万元" in tried.text and "排序分" in tried.text
    assert web.get("/console/handbook/try", params={"q": " "}).status_code == 400
    document_id = web.get("/api/v1/handbook/documents").json()[0]["id"]
    document = web.get(f"/console/handbook/documents/{document_id}")
    assert "第一章 住房" in document.text
    article_id = re.search(r'/console/handbook/articles/(\d+)">第一条', document.text)
    assert article_id is not None
    article = web.get(f"/console/handbook/articles/{article_id.group(1)}")
    assert "第一条" in article.text and "每户补助3.5万元" in article.text
    assert web.get("/console/handbook/articles/999999").status_code == 404
    undone = web.post("/console/handbook/undo", data={"csrf": csrf})
    assert undone.status_code == 200 and "已撤销" in undone.text and "示例汇编" in undone.text
    assert web.post("/console/handbook/undo", data={"csrf": csrf}).status_code == 409
    synonyms = web.post("/console/handbook/synonyms", data={"csrf": csrf, "phrase": "养蜂", "expansion": "养殖"})
    assert synonyms.status_code == 200 and "已添加同义词" in synonyms.text
    rule_id = web.get("/api/v1/handbook/synonyms").json()[0]["id"]
    removed = web.post(f"/console/handbook/synonyms/{rule_id}/remove", data={"csrf": csrf})
    assert removed.status_code == 200 and "已删除同义词" in removed.text


def test_a_village_cadre_reads_and_tries_but_sees_no_editing(services: Services, web: TestClient) -> None:
    csrf = login(web, "李村")
    page = web.get("/console/handbook")
    assert page.status_code == 200 and "试一试" in page.text
    assert "导入政策汇编" not in page.text and "撤销" not in page.text
    assert 'name="phrase"' not in web.get("/console/handbook/synonyms").text
    assert web.get("/console/handbook/faqs").status_code == 200
    refused = upload(web, {}, ("policy.md", HANDBOOK_V1.encode()), url="/console/handbook/import", data={"csrf": csrf})
    assert refused.status_code == 403 and "只有镇管理员" in refused.text
    assert web.post("/console/handbook/undo", data={"csrf": csrf}).status_code == 403
    tried = web.get("/console/handbook/try", params={"q": "低保咋个申请"})
    assert tried.status_code == 200 and "第四十条" in tried.text


# -- in a real browser ----------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["server"], indirect=True)
def test_trying_a_question_on_a_phone(services: Services, live_url: str, browser: Any) -> None:
    create_user(services.db, "王镇长", PASSWORD, "镇管理员")
    ensure_sample_loaded(services.db)
    context = browser.new_context(viewport=PHONE, locale="zh-CN")
    page = context.new_page()
    log_in(page, live_url, "王镇长", PASSWORD)
    page.goto(f"{live_url}/console/handbook")
    page.fill("#q", "娃儿读中专有补助没")
    page.click("form[role=search] button[type=submit]")
    page.wait_for_selector("#try-reply")
    assert "1500元" in page.inner_text("#try-reply")
    assert "第三十条" in page.inner_text("#try-candidates")
    first = page.locator("#try-candidates tbody tr").first
    assert float(first.locator("td[data-label=排序分]").inner_text()) > 0
    assert first.locator("td[data-label=覆盖]").inner_text() == "100%"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "handbook-try-375")
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_url}/console/handbook/try?q=考驾照有补贴吗")
    assert "转人工" in page.inner_text("#try-result")
    screenshot(page, "handbook-1280")
    context.close()
