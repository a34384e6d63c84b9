"""The cadres' command line: handbook import/list, ask (also as JSON lines), FAQ, unanswered, synonyms."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import knowledge.cli as cli
from knowledge.service import SAMPLE_HANDBOOK
from knowledge.testing import sqlite_database
from storage.db import Database

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = sqlite_database(tmp_path)
    cli.set_db_factory(lambda: database)
    yield database
    cli.set_db_factory(cli._default_db)


def run(*args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(cli.app, list(args), input=stdin)


def test_import_shows_a_summary_and_list_shows_documents(db: Database) -> None:
    result = run("handbook", "import", str(SAMPLE_HANDBOOK))
    assert result.exit_code == 0, result.output
    assert "新导入" in result.output and "共 1 个文件，12 章，56 条；警告 0 条" in result.output
    again = run("handbook", "import", str(SAMPLE_HANDBOOK))
    assert "未变化" in again.output
    listing = run("handbook", "list")
    assert "青山县" in listing.output


def test_import_failure_names_the_file_and_exits_non_zero(db: Database, tmp_path: Path) -> None:
    bad = tmp_path / "scan.pdf"
    bad.write_bytes(b"%PDF-1.4\nbroken")
    result = run("handbook", "import", str(SAMPLE_HANDBOOK), str(bad))
    assert result.exit_code == 1
    assert "scan.pdf" in result.output and "没有导入任何内容" in result.output
    assert "还没有导入" in run("handbook", "list").output


def test_ask_json_reads_questions_from_stdin(db: Database) -> None:
    result = run("ask", "--json", stdin="雨露计划一年补多少\n\n考驾照有补贴吗\n")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [line["question"] for line in lines] == ["雨露计划一年补多少", "考驾照有补贴吗"]
    first, second = lines
    assert set(first) == {"question", "answer", "sources", "handover"}
    assert first["sources"][0]["article"] == "第三十条" and first["handover"] is False
    assert set(first["sources"][0]) == {"document", "chapter", "article", "title", "score"}
    assert second["handover"] is True and second["sources"] == []


def test_ask_plain_text(db: Database) -> None:
    result = run("ask", "娃儿读中专有补助没")
    assert result.exit_code == 0 and "1500元" in result.output and "第三十条" in result.output


def test_faq_add_list_remove(db: Database) -> None:
    assert "编号 1" in run("faq", "add", "村部在哪", "村部在老学校旁边。").output
    listing = run("faq", "list", "--json")
    assert json.loads(listing.output.strip())["question"] == "村部在哪"
    assert "村部在老学校旁边" in run("ask", "村部在哪").output
    assert run("faq", "remove", "1").exit_code == 0
    assert run("faq", "remove", "1").exit_code == 1


def test_unanswered_list_and_promotion_notify_the_askers(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    from knowledge.store.unanswered import record_unanswered

    sent: list[tuple[list[str], str]] = []
    monkeypatch.setattr("bot.services.notify_followers", lambda openids, text: sent.append((openids, text)))
    item = record_unanswered(db, "oHousehold", "考驾照有补贴吗")
    listed = [json.loads(line) for line in run("unanswered", "list", "--json").output.splitlines()]
    assert listed[0]["id"] == item and listed[0]["question"] == "考驾照有补贴吗"
    result = run("faq", "add", "--from-unanswered", str(item), "驾照不在帮扶政策里。")
    assert result.exit_code == 0, result.output
    assert sent == [(["oHousehold"], "您之前问的问题，工作人员回复如下：\n驾照不在帮扶政策里。")]
    assert "没有待答问题" in run("unanswered", "list").output


def test_synonyms_from_the_command_line(db: Database) -> None:
    assert run("synonym", "add", "钩钩车", "挖掘机", "培训").exit_code == 0
    assert "钩钩车" in run("synonym", "list").output
    assert "第二十五条" in run("ask", "学开钩钩车有补贴没").output
    assert run("synonym", "remove", "1").exit_code == 0


def test_every_command_has_help() -> None:
    for args in (["--help"], ["handbook", "import", "--help"], ["ask", "--help"], ["faq", "add", "--help"],
                 ["unanswered", "list", "--help"], ["synonym", "add", "--help"]):
        assert run(*args).exit_code == 0


def test_promotion_masks_the_askers_numbers_and_can_be_rephrased(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    from knowledge.store.faq import list_faqs
    from knowledge.store.unanswered import record_unanswered

    monkeypatch.setattr("bot.services.notify_followers", lambda openids, text: None)
    masked = record_unanswered(db, "oA", "我电话13812345678身份证510123199001011234能办残疾证不")
    assert run("faq", "add", "--from-unanswered", str(masked), "请带材料到乡镇办理。").exit_code == 0
    question = list_faqs(db)[0].question
    assert "13812345678" not in question and "510123199001011234" not in question
    rephrased = record_unanswered(db, "oB", "我屋头那个老汉儿138啥子的能不能领高龄补贴")
    result = run("faq", "add", "--from-unanswered", str(rephrased), "--question", "八十岁老人能领高龄补贴吗",
                 "年满80周岁可以申请高龄补贴。")
    assert result.exit_code == 0, result.output
    assert list_faqs(db)[1].question == "八十岁老人能领高龄补贴吗"


def test_a_failed_notification_is_reported_and_a_retry_adds_no_second_faq(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from knowledge.store.faq import list_faqs
    from knowledge.store.unanswered import record_unanswered

    def broken(openids: list[str], text: str) -> None:
        raise ConnectionError("微信接口超时")

    monkeypatch.setattr("bot.services.notify_followers", broken)
    item = record_unanswered(db, "oHousehold", "考驾照有补贴吗")
    result = run("faq", "add", "--from-unanswered", str(item), "驾照不在帮扶政策里。")
    assert result.exit_code == 1
    assert "没有发给" in result.output and "微信接口超时" in result.output
    assert isinstance(result.exception, SystemExit)  # a clear line and exit 1, not a traceback
    sent: list[list[str]] = []
    monkeypatch.setattr("bot.services.notify_followers", lambda openids, text: sent.append(openids))
    assert run("faq", "add", "--from-unanswered", str(item), "驾照不在帮扶政策里。").exit_code == 0
    assert sent == [["oHousehold"]]
    assert len(list_faqs(db)) == 1
