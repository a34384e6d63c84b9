"""Handbooks in other shapes than 第X条: a 政策文件汇编 of several documents numbered 一、（一）,
and a 问答 booklet; how they are read, cited, and how replies look (the asked fact first,
a list for several measures, the matching table row).

The handbooks are the ones the project ships in knowledge/data/handbooks/ (fictional counties
written for this), read through the real importer into a real database and asked through
``sisong ask`` or the ``KnowledgeBase`` the WeChat handler uses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

import knowledge.cli as cli
from knowledge import KnowledgeBase
from knowledge.ingest.importer import import_files
from knowledge.ingest.readers import read_bytes
from knowledge.ingest.structure import parse_structure
from knowledge.ingest.undo import undo_last_import
from knowledge.settings import KnowledgeSettings
from knowledge.testing import sqlite_database
from storage.db import Database
from storage.models.knowledge import KbDocument

HANDBOOKS = Path(__file__).resolve().parent.parent / "knowledge" / "data" / "handbooks"
COMPILATION = HANDBOOKS / "yunxi_compilation.md"
BOOKLET = HANDBOOKS / "shiqiao_qa_booklet.md"
HOUSING = "云溪县农村低收入群体住房安全保障实施方案"
RELIEF = "云溪县农村低保和临时救助工作规程"
runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = sqlite_database(tmp_path)
    cli.set_db_factory(lambda: database)
    yield database
    cli.set_db_factory(cli._default_db)


def kb_for(db: Database, *files: Path) -> KnowledgeBase:
    import_files(db, list(files))
    return KnowledgeBase.open(db, KnowledgeSettings())


def body(text: str) -> str:
    """The quoted part of a reply (before the citation line)."""
    return text.split("\n——摘自", 1)[0]


# -- reading a compilation -----------------------------------------------------------------

def test_a_compilation_is_split_into_its_documents() -> None:
    text = (
        "某县政策文件汇编\n\n"
        "某县农村危房改造实施方案\n某住建发〔2025〕8号\n为保障农村低收入群体住房安全，结合本县实际，制定本方案。\n"
        "一、补助标准\n（一）拆除重建。D级危房每户补助4万元。\n（二）维修加固。C级危房每户补助1.8万元。\n"
        "二、申请程序\n农户向村民委员会提出申请。\n"
        "关于做好外出务工交通补助工作的通知\n各乡镇人民政府：\n为促进脱贫劳动力稳定就业，现将有关事项通知如下。\n"
        "一、补助标准\n（一）省内。每人补助300元。\n（二）省外。每人补助600元。\n"
    )
    doc = parse_structure(read_bytes("huibian.txt", text.encode(), ".txt"))
    assert doc.title == "某县政策文件汇编"
    rows = [(a.document, a.chapter_label, a.label, a.title) for a in doc.articles]
    assert rows == [
        ("某县农村危房改造实施方案", "", "", "说明"),
        ("某县农村危房改造实施方案", "一、", "（一）", "拆除重建"),
        ("某县农村危房改造实施方案", "一、", "（二）", "维修加固"),
        ("某县农村危房改造实施方案", "二、", "二、", "申请程序"),
        ("关于做好外出务工交通补助工作的通知", "", "", "说明"),
        ("关于做好外出务工交通补助工作的通知", "一、", "（一）", "省内"),
        ("关于做好外出务工交通补助工作的通知", "一、", "（二）", "省外"),
    ]
    assert not any("〔2025〕" in a.text for a in doc.articles)  # the issuing number is not policy text
    assert "各乡镇人民政府" in doc.articles[4].text


def test_a_single_document_with_a_plan_like_title_is_not_split() -> None:
    text = "某县低保工作实施方案\n一、对象\n人均收入低于标准的农户。\n二、标准\n每人每月500元。\n"
    doc = parse_structure(read_bytes("dibao.txt", text.encode(), ".txt"))
    assert doc.title == "某县低保工作实施方案"
    assert {a.document for a in doc.articles} == {""}
    assert [a.label for a in doc.articles] == ["一、", "二、"]


def test_importing_a_compilation_stores_each_document_and_stays_idempotent(db: Database) -> None:
    report = import_files(db, [COMPILATION])
    assert report.articles == 61 and report.changed
    with db.session() as session:
        titles = session.scalars(select(KbDocument.title).order_by(KbDocument.id)).all()
        names = set(session.scalars(select(KbDocument.name)))
    assert titles[0] == "云溪县巩固拓展脱贫攻坚成果政策文件汇编"  # the compilation's own 说明
    assert HOUSING in titles and RELIEF in titles and len(titles) == 9
    assert names == {"yunxi_compilation.md"}
    again = import_files(db, [COMPILATION])
    assert not again.changed and again.files[0].status == "unchanged" and again.files[0].articles == 61
    # An edited compilation replaces every document of its previous version; undo brings them back.
    edited = db.engine.url.database and Path(db.engine.url.database).parent / "yunxi_compilation.md"
    assert edited
    edited.write_text(COMPILATION.read_text(encoding="utf-8").replace("每户补助4万元", "每户补助4.2万元"),
                      encoding="utf-8")
    updated = import_files(db, [edited])
    assert updated.files[0].status == "updated"
    with db.session() as session:
        assert session.scalar(select(KbDocument.id).where(KbDocument.title == HOUSING).limit(1))
        assert len(session.scalars(select(KbDocument.id)).all()) == 9
    undone = undo_last_import(db)
    assert undone.removed == ["yunxi_compilation.md"] and undone.restored == ["yunxi_compilation.md"]
    kb = KnowledgeBase.open(db, KnowledgeSettings())
    assert "4万元" in kb.answer("D级危房拆了重建补好多").text


def test_ask_json_cites_document_title_and_section_label_as_written(db: Database) -> None:
    import_files(db, [COMPILATION])
    result = runner.invoke(cli.app, ["ask", "--json"], input="低保审批要多长时间\n危房维修加固补多少\n")
    assert result.exit_code == 0, result.output
    first, second = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert first["sources"][0]["document"] == RELIEF
    assert first["sources"][0]["article"] == "三、（二）"
    assert first["sources"][0]["chapter"] == "三、"
    assert "30个工作日" in first["answer"]
    assert f"——摘自《{RELIEF}》三、（二）审核审批" in first["answer"]
    assert second["sources"][0] == {**second["sources"][0], "document": HOUSING, "article": "二、（二）"}


def test_sections_without_subsections_are_cited_by_their_own_label(db: Database) -> None:
    kb = kb_for(db, COMPILATION)
    answer = kb.answer("低保标准一年好多")
    assert (answer.sources[0].document, answer.sources[0].article) == (RELIEF, "二、")
    assert "6000元" in answer.text


# -- reading a 问答 booklet -------------------------------------------------------------------

def test_a_booklet_is_read_question_by_question() -> None:
    doc = parse_structure(read_bytes("qa.md", BOOKLET.read_bytes(), ".md"))
    by_label = {a.label: a for a in doc.articles}
    assert len(by_label) == 31  # 30 questions and the booklet's own 说明
    assert by_label["2．"].title == "养老保险一年要交多少钱？困难户有没有照顾？"
    assert by_label["2．"].chapter_label == "一、" and by_label["2．"].chapter_title == "养老和社会保障"
    assert by_label["6．"].title == "我家房子是危房，能补多少钱？"
    assert not any(a.text.startswith("答") for a in doc.articles)


def test_booklet_answers_cite_the_question_number(db: Database) -> None:
    kb = kb_for(db, BOOKLET)
    answer = kb.answer("残疾证咋个办")
    assert answer.sources[0].article == "5．" and answer.sources[0].document == "石桥县乡村振兴惠民政策问答"
    assert "残联" in answer.text


# -- what a reply looks like ----------------------------------------------------------------

def test_the_asked_fact_comes_first_and_the_reply_is_short(db: Database) -> None:
    kb = kb_for(db, COMPILATION)
    when = kb.answer("危房改造的钱好久到卡上")
    assert when.sources[0].article == "三、（四）"
    first = re.split(r"(?<=。)", body(when.text))[0]
    assert re.search(r"\d+个工作日|开工后|50%", first), when.text
    for question in ("危房维修加固补多少", "低保审批要多长时间", "交通补助去哪哈领", "产业奖补啥时候报名"):
        answer = kb.answer(question)
        assert len(body(answer.text)) <= 120, answer.text
        assert answer.text.endswith("回复“详细”看全文 / 回复“0”转人工")


def test_a_table_is_answered_with_the_matching_row(db: Database) -> None:
    kb = kb_for(db, COMPILATION)
    answer = kb.answer("种魔芋一亩补好多")
    quoted = body(answer.text)
    assert quoted.startswith("品种：魔芋；奖补标准：每亩400元"), quoted
    assert "茶叶" not in quoted and "中药材" not in quoted


def test_an_article_listing_several_measures_is_answered_with_the_list(db: Database) -> None:
    kb = kb_for(db, BOOKLET)
    answer = kb.answer("残疾人有啥子补贴")
    quoted = body(answer.text)
    assert quoted.startswith("①困难残疾人生活补贴") and "②重度残疾人护理补贴" in quoted
    assert "90元" in quoted and "100元" in quoted


def test_explain_shows_words_candidates_and_the_sentences_chosen(db: Database) -> None:
    import_files(db, [COMPILATION])
    result = runner.invoke(cli.app, ["ask", "--explain", "低保审批要多长时间"])
    assert result.exit_code == 0, result.output
    for expected in ("读懂的词", "候选条文", "选用的句子", "30个工作日", "问时间"):
        assert expected in result.output, result.output
    as_json = runner.invoke(cli.app, ["ask", "--explain", "--json", "低保审批要多长时间"])
    data = json.loads(as_json.output)
    assert data["cited"]["label"] == "三、（二）" and data["cited"]["document"] == RELIEF
    assert any("30个工作日" in s for s in data["sentences"])
    assert data["candidates"][0]["cited"] and data["concepts"]
