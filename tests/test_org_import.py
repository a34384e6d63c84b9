"""Importing the organisation and households from the files cadres keep, and looking households up.

Files are built here (openpyxl, csv) the way Excel and WPS write them: GBK
CSVs, a title row above the header, trailing empty rows, numbers typed as
numbers, merged cells. Every import runs on SQLite and PostgreSQL (``backend``
via ``make_settings``); the command line is driven through ``bot.cli.app`` with
SISONG_DATABASE_URL pointing at the test's database, as a cadre's shell would.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select
from typer.testing import CliRunner

import knowledge.cli as knowledge_cli
from bot.cli import app
from bot.config import Settings, get_settings
from storage.db import Database
from storage.import_rows import parse_number, parse_phone, validate_households
from storage.models.base import utcnow
from storage.models.org import Area, Cadre, Hamlet, Household, HouseholdBinding, MessagingGroup, Village
from storage.org_import import import_households, import_households_file, import_org, import_org_file
from storage.sheets import Sheet, cell_text, read_table

TOWNSHIP = "青山镇"
ZONE = "Asia/Urumqi"  # +06:00: a time printed in UTC or Shanghai time would not match
ROBOT = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key="

runner = CliRunner()

HEADER = ["户编号", "户主姓名", "村", "组", "帮扶责任人", "责任人电话", "人口数", "劳动力人数", "联系电话", "监测对象"]
GOOD = ["520123001001", "张三", "青山村", "一组", "李四", "13812345678", "4", "2", "13912345678", "否"]
SECOND = ["520123001002", "王五", "青山村", "二组", "李四", "13812345678", "3", "1", "0851-8123456", "是"]


# -- files -------------------------------------------------------------------------------------

def write_csv(path: Path, rows: list[list[Any]], encoding: str = "utf-8-sig") -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def write_xlsx(path: Path, sheets: dict[str, list[list[Any]]]) -> Path:
    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


ORG = {
    "村": [
        ["片区", "村", "组"],
        ["东片区", "青山村", "一组、二组，三组"],
        ["东片区", "绿水村", "一组"],
        ["", "绿水村", "二组"],  # one row per 组 works too
        ["西片区", "白石社区", None],
    ],
    "干部": [
        ["姓名", "电话", "角色", "先锋队", "村", "企业微信"],
        ["李四", 13812345678, "帮扶责任人", "帮扶、产业", "青山村,绿水村", "lisi"],
        ["钱七", None, "村", "就业队", "白石社区", None],
        ["赵九", "13700000001", "督查", "督查", "", ""],
        ["赵九", "13700000002", "帮扶责任人", "帮扶", "绿水村", ""],
    ],
    "工作群": [
        ["群名", "机器人地址", "覆盖村", "覆盖片区", "覆盖先锋队", "全镇"],
        ["青山镇工作群", ROBOT + "allof-township", None, None, None, "是"],
        ["东片区群", ROBOT + "east-area-1", "", "东片区", "", "否"],
        ["产业队群", ROBOT + "industry-1", "青山村、白石社区", "", "产业", ""],
    ],
}


# -- fixtures ----------------------------------------------------------------------------------

@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(township=TOWNSHIP, timezone=ZONE)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.database_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def org(db: Database, tmp_path: Path) -> Database:
    report = import_org_file(db, TOWNSHIP, write_xlsx(tmp_path / "org.xlsx", ORG))
    assert report.ok, report.errors
    return db


@pytest.fixture
def sisong(settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Run ``sisong …`` with the test's database in SISONG_DATABASE_URL, as a shell would."""
    monkeypatch.setenv("SISONG_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SISONG_TOWNSHIP", TOWNSHIP)
    monkeypatch.setenv("SISONG_TIMEZONE", ZONE)
    get_settings.cache_clear()
    knowledge_cli.set_db_factory(knowledge_cli._default_db)

    def run(*args: str) -> Any:
        return runner.invoke(app, [str(a) for a in args])

    yield run
    if knowledge_cli._db is not None:
        knowledge_cli._db.dispose()
    knowledge_cli.set_db_factory(knowledge_cli._default_db)
    get_settings.cache_clear()


def households(db: Database) -> dict[str, Household]:
    with db.session() as session:
        return {h.number: h for h in session.scalars(select(Household))}


def count(db: Database, model: type) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def run_json(sisong: Callable[..., Any], *args: str) -> tuple[int, dict[str, Any]]:
    result = sisong(*args, "--json")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, json.loads(result.stdout)


# -- organisation ------------------------------------------------------------------------------

def test_org_workbook_imports_villages_cadres_and_groups(db: Database, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "org.xlsx", {**ORG, "说明": [["每个工作表的填法见 docs/households.md"]]})
    report = import_org_file(db, TOWNSHIP, path)
    assert report.ok, report.errors
    data = report.to_json()
    assert data["villages"] == {"created": 3, "updated": 0, "unchanged": 0}
    assert data["cadres"]["created"] == 4 and data["groups"]["created"] == 3
    assert data["areas"]["created"] == 2 and data["hamlets"]["created"] == 5
    assert (data["created"], data["updated"], data["unchanged"]) == (10, 0, 0)
    assert any("说明" in w for w in report.warnings)
    with db.session() as session:
        villages = {v.name: v for v in session.scalars(select(Village))}
        assert villages["绿水村"].area.name == "东片区" and villages["白石社区"].area.name == "西片区"
        hamlets = {(h.village_id, h.name) for h in session.scalars(select(Hamlet))}
        assert {name for vid, name in hamlets if vid == villages["青山村"].id} == {"一组", "二组", "三组"}
        assert {name for vid, name in hamlets if vid == villages["绿水村"].id} == {"一组", "二组"}
        li = session.scalar(select(Cadre).where(Cadre.name == "李四"))
        assert li.phone == "13812345678" and li.role == "帮扶责任人" and li.wecom_userid == "lisi"
        assert {t.name for t in li.teams} == {"帮扶", "产业"}
        assert {v.name for v in li.villages} == {"青山村", "绿水村"}
        assert len(session.scalars(select(Cadre).where(Cadre.name == "赵九")).all()) == 2
        groups = {g.name: g for g in session.scalars(select(MessagingGroup))}
        assert groups["青山镇工作群"].covers_all and not groups["东片区群"].covers_all
        assert [a.name for a in groups["东片区群"].areas] == ["东片区"]
        assert {v.name for v in groups["产业队群"].villages} == {"青山村", "白石社区"}
        assert [t.name for t in groups["产业队群"].teams] == ["产业"]

    again = import_org_file(db, TOWNSHIP, path).to_json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 10)
    assert count(db, Cadre) == 4 and count(db, Village) == 3 and count(db, Hamlet) == 5

    changed = {**ORG, "干部": [ORG["干部"][0], ["李四", 13812345678, "片区", "建房", "白石社区", ""]]}
    report = import_org_file(db, TOWNSHIP, write_xlsx(tmp_path / "org2.xlsx", changed))
    assert report.cadres.updated == 1 and report.cadres.unchanged == 0
    with db.session() as session:
        li = session.scalar(select(Cadre).where(Cadre.name == "李四"))
        assert li.role == "片区" and [t.name for t in li.teams] == ["建房"] and li.wecom_userid is None
        assert [v.name for v in li.villages] == ["白石社区"]


def test_org_csv_kind_is_told_by_its_header(db: Database, tmp_path: Path) -> None:
    villages = write_csv(tmp_path / "villages.csv", ORG["村"], encoding="gbk")
    cadres = write_csv(tmp_path / "cadres.csv", [["青山镇干部名单"], *ORG["干部"]])
    groups = write_csv(tmp_path / "groups.csv", ORG["工作群"])
    assert import_org_file(db, TOWNSHIP, villages).villages.created == 3
    assert import_org_file(db, TOWNSHIP, cadres).cadres.created == 4
    assert import_org_file(db, TOWNSHIP, groups).groups.created == 3
    report = import_org_file(db, TOWNSHIP, write_csv(tmp_path / "hh.csv", [HEADER, GOOD]))
    assert not report.ok and "sisong households import" in report.errors[0].reason


def test_org_import_with_bad_rows_writes_nothing(db: Database, tmp_path: Path, sisong: Callable[..., Any]) -> None:
    bad = {
        "村": ORG["村"] + [["北片区", "", "一组"]],  # line 6: no village
        "干部": [
            ORG["干部"][0],
            ["李四", "13812345678", "村长", "帮扶", "青山村", ""],  # line 2: unknown role
            ["钱七", "", "村", "宣传队", "白石社区", ""],  # line 3: unknown team
            ["孙八", "", "村", "", "黑水村", ""],  # line 4: unknown village
            ["周十", "12345", "村", "", "", ""],  # line 5: bad phone
        ],
        "工作群": [
            ORG["工作群"][0],
            ["东片区群", "http://example.com/hook", "", "东片区", "", ""],  # line 2: not a WeCom robot
            ["空群", ROBOT + "nothing-covered", "", "", "", "否"],  # line 3: covers nothing
            ["重复群", ROBOT + "duplicate-1", "", "", "", "是"],
            ["重复群", ROBOT + "duplicate-2", "", "", "", "是"],  # line 5: duplicate name
        ],
    }
    code, data = run_json(sisong, "org", "import", write_xlsx(tmp_path / "bad.xlsx", bad))
    assert code == 1
    where = [(e["sheet"], e["line"]) for e in data["errors"]]
    assert where == [("村", 6), ("干部", 2), ("干部", 3), ("干部", 4), ("干部", 5),
                     ("工作群", 2), ("工作群", 3), ("工作群", 5)]
    reasons = " ".join(e["reason"] for e in data["errors"])
    for expected in ("村是空的", "角色「村长」不对", "没有「宣传队」这个先锋队", "没有村「黑水村」",
                     "电话「12345」不是手机号", "机器人地址不对", "也不是全镇群", "与第 4 行重复"):
        assert expected in reasons
    assert "example.com" not in reasons  # a robot address is a key: never echoed
    assert data["created"] == 0
    for model in (Area, Village, Hamlet, Cadre, MessagingGroup):
        assert count(db, model) == 0
    text = sisong("org", "import", tmp_path / "bad.xlsx")
    assert text.exit_code == 1 and "工作表「干部」第 4 行：没有村「黑水村」" in text.output
    assert "没有导入任何内容" in text.output


def test_org_dry_run_counts_but_writes_nothing(db: Database, tmp_path: Path, sisong: Callable[..., Any]) -> None:
    code, data = run_json(sisong, "org", "import", write_xlsx(tmp_path / "org.xlsx", ORG), "--dry-run")
    assert code == 0 and data["dry_run"] is True and data["villages"]["created"] == 3
    assert count(db, Village) == 0 and count(db, Cadre) == 0 and count(db, MessagingGroup) == 0
    text = sisong("org", "import", tmp_path / "org.xlsx")
    assert text.exit_code == 0 and "村：新增 3，更新 0，未变化 0" in text.output


# -- households: the command line --------------------------------------------------------------

def test_households_import_then_reimport_updates_without_duplicates(
    org: Database, tmp_path: Path, sisong: Callable[..., Any]
) -> None:
    first = write_csv(tmp_path / "hh.csv", [HEADER, GOOD, SECOND])
    result = sisong("households", "import", first)
    assert result.exit_code == 0, result.output
    assert "新增 2 户，更新 0 户，未变化 0 户" in result.output
    stored = households(org)
    assert set(stored) == {"520123001001", "520123001002"}
    zhang = stored["520123001001"]
    assert (zhang.head_name, zhang.population, zhang.labourers, zhang.phone, zhang.monitored) == (
        "张三", 4, 2, "13912345678", False)
    assert stored["520123001002"].phone == "0851-8123456" and stored["520123001002"].monitored

    changed = [HEADER, GOOD[:6] + ["5", "2", "13912345670", "是"], SECOND]
    code, data = run_json(sisong, "households", "import", write_csv(tmp_path / "hh2.csv", changed))
    assert code == 0
    assert (data["created"], data["updated"], data["unchanged"]) == (0, 1, 1)
    assert data["changes"] == [{"number": "520123001001", "fields": ["population", "phone", "monitored"]}]
    assert data["errors"] == []
    assert count(org, Household) == 2
    zhang = households(org)["520123001001"]
    assert (zhang.population, zhang.phone, zhang.monitored) == (5, "13912345670", True)
    assert zhang.updated_at > zhang.created_at


def test_dry_run_shows_changes_and_writes_nothing(org: Database, tmp_path: Path, sisong: Callable[..., Any]) -> None:
    assert sisong("households", "import", write_csv(tmp_path / "a.csv", [HEADER, GOOD])).exit_code == 0
    before = households(org)["520123001001"].updated_at
    rows = [HEADER, GOOD[:1] + ["张三丰"] + GOOD[2:], SECOND]
    code, data = run_json(sisong, "households", "import", write_csv(tmp_path / "b.csv", rows), "--dry-run")
    assert code == 0 and data["dry_run"] is True
    assert (data["created"], data["updated"], data["unchanged"]) == (1, 1, 0)
    assert data["changes"] == [{"number": "520123001001", "fields": ["head_name"]}]
    stored = households(org)
    assert set(stored) == {"520123001001"}
    assert stored["520123001001"].head_name == "张三" and stored["520123001001"].updated_at == before
    text = sisong("households", "import", tmp_path / "b.csv", "--dry-run")
    assert "预览（没有写入）" in text.output and "520123001001：户主姓名" in text.output


def _row(**cells: str) -> list[str]:
    """A household row for 孙八 of 青山村一组 (helped by 李四), with some cells changed."""
    row = dict(zip(HEADER, ["520123001009", "孙八", "青山村", "一组", "李四", "", "4", "2", "", "否"]))
    row.update(cells)
    return list(row.values())


WITH_TEAM = [*HEADER, "先锋队"]
WITH_AREA = [*HEADER, "片区"]
BAD_ROWS: dict[str, tuple[list[str], list[list[str]], int, str]] = {
    # name: (header, rows below it — the first is good, line reported, part of the reason)
    "missing required column": ([h for h in HEADER if h != "帮扶责任人"],
                                [[v for h, v in zip(HEADER, GOOD) if h != "帮扶责任人"]], 1, "缺少「帮扶责任人」列"),
    "unknown header": ([*HEADER, "劳力数量"], [[*GOOD, "3"]], 1, "不认识的列「劳力数量」"),
    "missing required value": (HEADER, [GOOD, _row(户主姓名="")], 3, "户主姓名是空的"),
    "duplicate number": (HEADER, [GOOD, _row(户编号=GOOD[0])], 3, "户编号 520123001001 与第 2 行重复"),
    "number in scientific notation": (HEADER, [GOOD, _row(户编号="5.20123E+17")], 3, "科学计数法"),
    "unknown village": (HEADER, [GOOD, _row(村="黑水村", 组="")], 3, "没有村「黑水村」"),
    "unknown hamlet": (HEADER, [GOOD, _row(组="九组")], 3, "村「青山村」没有「九组」"),
    "village in another area": (WITH_AREA, [[*GOOD, "东片区"], [*_row(), "西片区"]], 3,
                                "村「青山村」属于片区「东片区」，这里写的是「西片区」"),
    "unknown cadre": (HEADER, [GOOD, _row(帮扶责任人="周十")], 3, "没有干部「周十」"),
    "cadre with another phone": (HEADER, [GOOD, _row(责任人电话="13800000000")], 3,
                                 "没有电话为 13800000000 的干部「李四」"),
    "same-name cadres": (HEADER, [GOOD, _row(村="绿水村", 组="", 帮扶责任人="赵九")], 3, "有 2 位干部叫「赵九」"),
    "malformed mobile": (HEADER, [GOOD, _row(联系电话="1391234567")], 3, "联系电话「1391234567」不是手机号"),
    "landline without area code": (HEADER, [GOOD, _row(联系电话="8123456")], 3, "联系电话「8123456」不是手机号"),
    "malformed helper phone": (HEADER, [GOOD, _row(责任人电话="138123")], 3, "责任人电话「138123」不是手机号"),
    "non-numeric population": (HEADER, [GOOD, _row(人口数="四口")], 3, "人口数「四口」不是整数"),
    "non-numeric labourers": (HEADER, [GOOD, _row(劳动力人数="2.5")], 3, "劳动力人数「2.5」不是整数"),
    "more labourers than people": (HEADER, [GOOD, _row(人口数="2", 劳动力人数="3")], 3, "劳动力人数（3）比人口数（2）还多"),
    "bad yes/no flag": (HEADER, [GOOD, _row(监测对象="可能")], 3, "监测对象只能填“是”或“否”"),
    "unknown team": (WITH_TEAM, [[*GOOD, "帮扶"], [*_row(), "宣传队"]], 3, "没有「宣传队」这个先锋队"),
}


@pytest.mark.parametrize("case", list(BAD_ROWS), ids=list(BAD_ROWS))
def test_a_bad_row_imports_nothing(case: str, org: Database, tmp_path: Path, sisong: Callable[..., Any]) -> None:
    header, rows, line, reason = BAD_ROWS[case]
    good = write_csv(tmp_path / "good.csv", [header, rows[0]]) if line > 1 else None
    path = write_csv(tmp_path / "hh.csv", [header, *rows])
    code, data = run_json(sisong, "households", "import", path)
    assert code == 1, data
    assert (data["created"], data["updated"], data["unchanged"]) == (0, 0, 0)
    assert [e["line"] for e in data["errors"]] == [line], data["errors"]
    assert reason in data["errors"][0]["reason"]
    assert count(org, Household) == 0  # the good row was not imported either
    text = sisong("households", "import", path)
    assert text.exit_code == 1
    assert f"第 {line} 行：" in text.output and reason in text.output and "没有导入任何内容" in text.output
    if good is not None:  # the file is fine without its bad row
        assert sisong("households", "import", good).exit_code == 0 and count(org, Household) == 1


def test_every_bad_row_is_reported_with_all_its_reasons(org: Database, tmp_path: Path) -> None:
    rows = [
        HEADER,
        GOOD,
        ["520123001003", "", "黑水村", "", "周十", "", "四", "", "12345", "也许"],
        SECOND,
        ["520123001002", "王五", "青山村", "二组", "李四", "", "1", "3", "", ""],
    ]
    report = import_households_file(org, TOWNSHIP, write_csv(tmp_path / "hh.csv", rows))
    assert not report.ok and report.created == 0
    assert [e.line for e in report.errors] == [3, 5]
    first = report.errors[0].reason
    for reason in ("户主姓名是空的", "人口数「四」不是整数", "联系电话「12345」", "监测对象只能填", "没有村「黑水村」", "没有干部「周十」"):
        assert reason in first
    assert "与第 4 行重复" in report.errors[1].reason and "比人口数（1）还多" in report.errors[1].reason
    assert any("--create-missing" in w for w in report.warnings)
    assert count(org, Household) == 0


def test_create_missing_adds_villages_hamlets_areas_and_helpers(db: Database, tmp_path: Path,
                                                                  sisong: Callable[..., Any]) -> None:
    header = [*HEADER, "片区", "先锋队"]
    rows = [
        header,
        [*GOOD, "东片区", "帮扶"],
        [*SECOND[:5], "", *SECOND[6:], "东片区", ""],  # 李四 without a phone: the one created above
        ["520123001003", "赵六", "绿水村", "", "钱七", "", "2", "0", "", "", "", "产业"],
        ["520123001004", "孙八", "绿水村", "", "李四", "13700000000", "2", "0", "", "", "", ""],  # another 李四
    ]
    path = write_csv(tmp_path / "hh.csv", rows)
    code, data = run_json(sisong, "households", "import", path)
    assert code == 1 and len(data["errors"]) == 4 and count(db, Village) == 0

    code, data = run_json(sisong, "households", "import", path, "--create-missing", "--dry-run")
    assert code == 1 and [e["line"] for e in data["errors"]] == [3]  # two 李四 now: which one?
    assert "有 2 位干部叫「李四」" in data["errors"][0]["reason"]

    rows[2][5] = "13812345678"
    code, data = run_json(sisong, "households", "import", write_csv(path, rows), "--create-missing")
    assert code == 0, data
    assert data["created"] == 4
    assert data["created_areas"] == ["东片区"] and data["created_villages"] == ["青山村", "绿水村"]
    assert data["created_hamlets"] == [{"village": "青山村", "hamlet": "一组"}, {"village": "青山村", "hamlet": "二组"}]
    assert sorted((c["name"], c["phone"]) for c in data["created_cadres"]) == [
        ("李四", "13700000000"), ("李四", "13812345678"), ("钱七", "")]
    with db.session() as session:
        li = session.scalar(select(Cadre).where(Cadre.name == "李四", Cadre.phone == "13812345678"))
        assert li.role == "帮扶责任人" and [v.name for v in li.villages] == ["青山村"]
        assert [t.name for t in li.teams] == ["帮扶"]
        qian = session.scalar(select(Cadre).where(Cadre.name == "钱七"))
        assert [v.name for v in qian.villages] == ["绿水村"] and [t.name for t in qian.teams] == ["产业"]
        green = session.scalar(select(Village).where(Village.name == "绿水村"))
        assert green.area is None
    stored = households(db)
    assert stored["520123001003"].helper.name == "钱七" and stored["520123001003"].team.name == "产业"
    again = import_households_file(db, TOWNSHIP, path, create_missing=True)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 4) and not again.created_cadres
    assert count(db, Cadre) == 3 and count(db, Village) == 2


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8", "gbk", "utf-16"])
def test_csv_encodings_excel_and_wps_write(encoding: str, org: Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "hh.csv", [HEADER, GOOD, SECOND], encoding=encoding)
    report = import_households_file(org, TOWNSHIP, path)
    assert report.ok, report.errors
    assert {h.head_name for h in households(org).values()} == {"张三", "王五"}


def test_title_row_above_the_header_and_trailing_empty_rows(org: Database, tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.title = "花名册"
    sheet.append(["青山镇2026年建档立卡户花名册"])
    sheet.merge_cells("A1:J1")
    sheet.append(["填报单位：青山镇", None, None, None, None, None, None, None, "2026年11月"])
    sheet.append(HEADER)
    sheet.append(GOOD)
    sheet.append([*SECOND[:6], "三", *SECOND[7:]])
    for _ in range(5):
        sheet.append([None] * len(HEADER))
    sheet.append(["", " ", None])
    path = tmp_path / "hh.xlsx"
    book.save(path)
    report = import_households_file(org, TOWNSHIP, path)
    assert [(e.sheet, e.line) for e in report.errors] == [("花名册", 5)]  # the Excel row, title rows counted
    sheet["G5"] = 3
    book.save(path)
    report = import_households_file(org, TOWNSHIP, path)
    assert report.ok and report.created == 2


def test_numbers_typed_as_numbers_in_excel(org: Database, tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(HEADER)
    sheet.append([520123001001, "张三", "青山村", "一组", "李四", 13812345678, 4, 2.0, 13912345678, False])
    sheet.append([123, "王五", "青山村", "二组", "李四", 13812345678, 3, 1, 8518123456, True])
    sheet["A3"].number_format = "000000"  # Excel shows 000123: the leading zeros are the 户编号's
    path = tmp_path / "hh.xlsx"
    book.save(path)
    report = import_households_file(org, TOWNSHIP, path)
    assert [e.line for e in report.errors] == [3] and "联系电话「8518123456」" in report.errors[0].reason
    sheet["I3"] = "0851-8123456"
    book.save(path)
    report = import_households_file(org, TOWNSHIP, path)
    assert report.ok, report.errors
    stored = households(org)
    assert set(stored) == {"520123001001", "000123"}
    assert stored["520123001001"].phone == "13912345678" and stored["520123001001"].labourers == 2
    assert stored["000123"].monitored and not stored["520123001001"].monitored

    sheet["A2"] = 520123199001011234  # 18 digits: Excel keeps 15, the rest is already lost
    book.save(path)
    report = import_households_file(org, TOWNSHIP, path)
    assert [e.line for e in report.errors] == [2] and "科学计数法" in report.errors[0].reason


def test_header_variants_are_understood_and_unknown_ones_reported(org: Database, tmp_path: Path) -> None:
    header = ["序号", " 户 编 号 ", "户主", "村（社区）", "组", "帮扶责任人", "帮扶责任人电话", "人口数（人）",
              "劳动力", "手机", "是否监测对象", "脱贫状态", "身份证号"]
    row = ["1", "520123001001", "张　三", "青山村", "一组", "李四", "138-1234-5678", "4人", "2",
           "＋86 １３９ １２３４ ５６７８", "√", "已脱贫", "520123199001011234"]
    report = import_households_file(org, TOWNSHIP, write_csv(tmp_path / "hh.csv", [header, row]))
    assert report.ok, report.errors
    assert any("身份证号" in w for w in report.warnings) and any("序号" in w for w in report.warnings)
    zhang = households(org)["520123001001"]
    assert (zhang.head_name, zhang.phone, zhang.population, zhang.monitored, zhang.lifted) == (
        "张三", "13912345678", 4, True, True)
    assert zhang.helper.phone == "13812345678"

    twice = ["户编号", "户主", "户主姓名", "村", "帮扶责任人"]
    report = import_households_file(org, TOWNSHIP, write_csv(tmp_path / "t.csv", [twice, ["1", "a", "a", "青山村", "李四"]]))
    assert not report.ok and "都是“户主姓名”" in report.errors[0].reason


def test_merged_cells(org: Database, tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(HEADER)
    sheet.append(GOOD)
    sheet.append([SECOND[0], SECOND[1], None, *SECOND[3:]])
    sheet.merge_cells("C2:C3")  # 青山村 merged over its households: read on every row, as the cadre sees it
    path = tmp_path / "hh.xlsx"
    book.save(path)
    report = import_households_file(org, TOWNSHIP, path)
    assert report.ok and households(org)["520123001002"].village.name == "青山村"

    sheet.append(["520123001003", "赵六", "青山村", "一组", "李四", "", "4", "2", "", ""])
    sheet.merge_cells("G4:H4")  # across columns: which column is the value? Reported, not guessed
    book.save(path)
    report = import_households_file(org, TOWNSHIP, path)
    assert [e.line for e in report.errors] == [4] and "G4:H4" in report.errors[0].reason
    assert count(org, Household) == 2


def test_column_left_out_keeps_the_field_and_blank_cell_clears_it(org: Database, tmp_path: Path) -> None:
    assert import_households_file(org, TOWNSHIP, write_csv(tmp_path / "a.csv", [HEADER, GOOD])).ok
    slim = ["户编号", "户主姓名", "村", "帮扶责任人", "责任人电话", "联系电话"]
    report = import_households_file(org, TOWNSHIP, write_csv(
        tmp_path / "b.csv", [slim, ["520123001001", "张三", "青山村", "李四", "13812345678", ""]]))
    assert report.ok and [c.fields for c in report.changes] == [["phone"]]
    zhang = households(org)["520123001001"]
    assert zhang.phone is None and zhang.population == 4 and zhang.hamlet.name == "一组"


def test_uploaded_bytes_and_unreadable_files(org: Database, tmp_path: Path) -> None:
    data = write_xlsx(tmp_path / "hh.xlsx", {"户": [HEADER, GOOD]}).read_bytes()
    report = import_households_file(org, TOWNSHIP, data, filename="上传.xlsx", dry_run=True)
    assert report.ok and report.created == 1 and count(org, Household) == 0
    old = import_households_file(org, TOWNSHIP, b"\xd0\xcf\x11\xe0" + b"\0" * 100, filename="old.xls")
    assert not old.ok and ".xlsx" in old.errors[0].reason and old.errors[0].line is None
    missing = import_households_file(org, TOWNSHIP, tmp_path / "nope.csv")
    assert "找不到文件" in missing.errors[0].reason


def test_the_service_takes_sheets_directly(org: Database) -> None:
    from storage.sheets import Row

    sheet = Sheet(None, [Row(1, HEADER), Row(2, GOOD)])
    assert import_households(org, TOWNSHIP, [sheet]).created == 1
    assert import_org(org, TOWNSHIP, [Sheet("干部", [Row(1, ["姓名", "电话"]), Row(2, ["吴一", "13600000000"])])]).ok


def test_logs_carry_no_names_or_phones(org: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bad = [HEADER, GOOD, ["520123001009", "孙八", "黑水村", "", "周十", "13700000009", "4", "2", "", ""]]
    import_households_file(org, TOWNSHIP, write_csv(tmp_path / "bad.csv", bad))
    import_households_file(org, TOWNSHIP, write_csv(tmp_path / "hh.csv", [HEADER, GOOD, SECOND]))
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("storage"))
    assert "households import" in logged
    for secret in ("张三", "孙八", "李四", "周十", "13812345678", "13912345678", "13700000009"):
        assert secret not in logged


# -- households: list and show ----------------------------------------------------------------

def test_list_and_show(org: Database, tmp_path: Path, sisong: Callable[..., Any]) -> None:
    header = [*HEADER, "先锋队", "务工意向", "片区"]
    rows = [header, [*GOOD, "就业", "想去广东进厂", "东片区"], [*SECOND, "", "", "东片区"],
            ["520123009001", "赵六", "白石社区", "", "钱七", "", "2", "0", "", "", "", "", ""]]
    assert sisong("households", "import", write_csv(tmp_path / "hh.csv", rows)).exit_code == 0
    with org.session() as session:
        zhang = session.scalar(select(Household).where(Household.number == "520123001001"))
        zhang.code, zhang.code_issued_at = "K7Q2", utcnow()
        session.add_all([HouseholdBinding(household_id=zhang.id, openid=f"oMember{i:020d}") for i in range(2)])

    listed = [json.loads(line) for line in sisong("households", "list", "--json").stdout.splitlines()]
    assert [h["number"] for h in listed] == ["520123009001", "520123001001", "520123001002"]  # by village, 组
    keys = {"number", "head_name", "village", "area", "hamlet", "population", "labourers", "work_intent",
            "helper_name", "helper_phone", "team", "monitored", "lifted", "phone", "code_status",
            "code_issued_at", "bound_members", "created_at", "updated_at"}
    assert all(set(h) == keys for h in listed)
    village = [json.loads(line) for line in
               sisong("households", "list", "--village", "白石社区", "--json").stdout.splitlines()]
    assert [h["number"] for h in village] == ["520123009001"] and village[0]["helper_phone"] is None

    code, shown = run_json(sisong, "households", "show", "520123001001")
    assert code == 0
    assert shown["village"] == "青山村" and shown["area"] == "东片区" and shown["hamlet"] == "一组"
    assert (shown["population"], shown["labourers"], shown["work_intent"]) == (4, 2, "想去广东进厂")
    assert (shown["helper_name"], shown["helper_phone"], shown["team"]) == ("李四", "13812345678", "就业")
    assert shown["code_status"] == "issued" and shown["bound_members"] == 2
    assert shown["created_at"].endswith("+06:00") and shown["code_issued_at"].endswith("+06:00")
    assert "K7Q2" not in json.dumps(shown)

    text = sisong("households", "show", "520123001001").stdout
    for expected in ("户主：张三", "村：青山村（片区：东片区）", "组：一组", "帮扶责任人：李四 13812345678",
                     "先锋队：就业", "联系电话：13912345678", "绑定码：已生成", "已绑定家庭成员：2 人",
                     "务工意向：想去广东进厂", "监测对象：否"):
        assert expected in text
    from storage.clock import local

    with org.session() as session:
        created = session.scalar(select(Household.created_at).where(Household.number == "520123001001"))
    assert f"登记时间：{local(created, ZONE)}" in text

    table = sisong("households", "list").stdout
    assert "共 3 户" in table and "520123009001" in table


def test_list_and_show_when_nothing_matches(db: Database, sisong: Callable[..., Any]) -> None:
    assert "还没有户信息" in sisong("households", "list").stdout
    result = sisong("households", "list", "--village", "黑水村")
    assert result.exit_code == 1 and "没有村「黑水村」" in result.output
    result = sisong("households", "show", "520123001001")
    assert result.exit_code == 1 and "没有户编号为 520123001001 的户" in result.output


def test_every_new_command_has_help() -> None:
    for args in (["org", "import"], ["households", "import"], ["households", "list"], ["households", "show"]):
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


# -- the pure parts -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("13812345678", "13812345678"),
    ("138 1234 5678", "13812345678"),
    ("+86 138-1234-5678", "13812345678"),
    ("８６１３８１２３４５６７８", "13812345678"),
    ("0851-8123456", "0851-8123456"),
    ("085188123456", "0851-88123456"),
    ("(010)62345678", "010-62345678"),
    ("", ""),
])
def test_phones_are_normalised(text: str, expected: str) -> None:
    assert parse_phone(text, "电话") == expected


@pytest.mark.parametrize("text", ["1381234567", "23812345678", "8518123456", "0851-0123456",
                                  "13812345678/13912345678", "1.3812345678E+10", "电话"])
def test_bad_phones_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_phone(text, "电话")


def test_cells_keep_every_digit() -> None:
    assert cell_text(520123001001) == "520123001001"
    assert cell_text(13812345678.0) == "13812345678"
    assert cell_text(123, "000000") == "000123"
    assert cell_text(5.201231990010113e17) == "5.20123199001011E+17"
    assert cell_text(4.5) == "4.5" and cell_text(True) == "是" and cell_text(None) == ""
    assert parse_number(" ０００１２３ ") == "000123"


def test_validation_alone_reports_rows_without_a_database() -> None:
    sheets = read_table(("\n".join([",".join(HEADER), ",".join(GOOD), ",".join(GOOD)])).encode(), "hh.csv")
    records, errors, _ = validate_households(sheets)
    assert errors == [] and [r.problems for r in records] == [[], ["户编号 520123001001 与第 2 行重复"]]


def test_a_cell_beyond_the_header_is_reported(org: Database, tmp_path: Path) -> None:
    report = import_households_file(org, TOWNSHIP, write_csv(tmp_path / "hh.csv", [HEADER, GOOD, [*SECOND, "", "多写的"]]))
    assert [e.line for e in report.errors] == [1] and "L 列有内容，但没有表头" in report.errors[0].reason
    assert count(org, Household) == 0


def test_org_import_tells_cadres_apart_by_phone(org: Database, tmp_path: Path) -> None:
    rows = [ORG["干部"][0],
            ["钱七", "13600000007", "", "", "", ""],  # registered without a phone: the phone is added
            ["李四", "13600000004", "", "", "", ""]]  # 李四 has another phone: a second 李四
    report = import_org_file(org, TOWNSHIP, write_xlsx(tmp_path / "c.xlsx", {"干部": rows}))
    assert report.ok and (report.cadres.created, report.cadres.updated) == (1, 1)
    assert any("第 3 行" in w and "李四" in w for w in report.warnings)
    with org.session() as session:
        assert session.scalar(select(Cadre.phone).where(Cadre.name == "钱七")) == "13600000007"
        assert sorted(session.scalars(select(Cadre.phone).where(Cadre.name == "李四"))) == ["13600000004", "13812345678"]
        assert session.scalar(select(Cadre.role).where(Cadre.name == "钱七")) == "村"  # blank role: unchanged
    ambiguous = import_org_file(org, TOWNSHIP, write_csv(tmp_path / "a.csv", [["姓名", "角色"], ["李四", "镇"]]))
    assert [e.line for e in ambiguous.errors] == [2] and "2 位干部叫「李四」" in ambiguous.errors[0].reason
