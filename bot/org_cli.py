"""Command line for the organisation and households: ``sisong org …`` and ``sisong households …``.

The commands are thin: each calls the service function the chat and the
console call too, and prints its result in Chinese (or JSON for scripts).
File layouts, JSON keys and every error are described in docs/households.md.

These are the cadres' own tools: names and phones of households and helpers
are printed in clear (a cadre needs them to visit), as the household's cadres
may see them. Nothing here logs them.

The command line runs as the machine's operator: it sees and may change the
whole township (``storage.scope.EVERYTHING``), and its imports are audited as
“命令行”.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from storage.import_rows import RowError, nfkc
from storage.org_import import (
    FIELD_LABELS,
    ImportReport,
    OrgImportReport,
    import_households_file,
    import_org_file,
)

org_app = typer.Typer(help="镇、片区、村、组、干部和工作群。", no_args_is_help=True)
households_app = typer.Typer(help="建档立卡户和监测户：导入、查看、绑定码。", no_args_is_help=True)

console = Console(highlight=False, soft_wrap=True, emoji=False)
errors = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

FileArgument = Annotated[Path, typer.Argument(help="CSV 或 Excel（.xlsx）文件", show_default=False)]
DryRun = Annotated[bool, typer.Option("--dry-run", help="只预览会新增、更新哪些，不写入")]
AsJson = Annotated[bool, typer.Option("--json", help="输出 JSON（给脚本用）")]


def _db():  # type: ignore[no-untyped-def]
    from knowledge.cli import get_db

    return get_db()


def _settings():  # type: ignore[no-untyped-def]
    from bot.config import get_settings

    return get_settings()


def _say(text: str, style: str | None = None, *, err: bool = False) -> None:
    """Print text that may hold names from a file: never read as rich markup."""
    (errors if err else console).print(text, style=style, markup=False)


def _print_errors(found: list[RowError]) -> None:
    for error in found:
        _say(str(error), "red", err=True)
    rows = len({(e.sheet, e.line) for e in found})
    _say(f"共 {rows} 处问题，没有导入任何内容。请在 Excel 里改好后重新导入。", "bold", err=True)


def _print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        _say(f"提示：{warning}", "yellow", err=True)


def _emit_json(payload: dict[str, object]) -> None:
    print(json.dumps(payload, ensure_ascii=False))


# -- org import -------------------------------------------------------------------------------

@org_app.command("import")
def org_import(file: FileArgument, dry_run: DryRun = False, as_json: AsJson = False) -> None:
    """导入片区、村、组，干部，工作群。

    Excel 里用名为 村 / 干部 / 工作群 的工作表（有哪个导哪个）；CSV 一个文件一种表，看表头认。
    有一行出错就全部不导入，并列出每一行的问题。格式见 docs/households.md。
    """
    report = import_org_file(_db(), _settings().township, file, dry_run=dry_run)
    if as_json:
        _emit_json(report.to_json())
    else:
        _print_org_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_org_report(report: OrgImportReport) -> None:
    if not report.ok:
        _print_errors(report.errors)
        _print_warnings(report.warnings)
        return
    _print_warnings(report.warnings)
    _say("预览（没有写入）：" if report.dry_run else "导入完成：", "bold")
    for label, counts in (("村", report.villages), ("干部", report.cadres), ("工作群", report.groups)):
        _say(f"{label}：新增 {counts.created}，更新 {counts.updated}，未变化 {counts.unchanged}")
    extra = [f"新建片区 {report.areas.created} 个"] if report.areas.created else []
    if report.hamlets.created:
        extra.append(f"新建组 {report.hamlets.created} 个")
    if extra:
        _say("；".join(extra) + "。")


# -- households import ------------------------------------------------------------------------

@households_app.command("import")
def households_import(
    file: FileArgument,
    dry_run: DryRun = False,
    create_missing: Annotated[bool, typer.Option(
        "--create-missing", help="表里有、系统里还没有的村、片区、组和帮扶责任人，自动新建")] = False,
    as_json: AsJson = False,
) -> None:
    """导入户信息（户编号、户主姓名、村、帮扶责任人…）。

    按户编号更新，重复导入不会重复；有一行出错就全部不导入，并列出每一行的问题。
    格式见 docs/households.md。
    """
    report = import_households_file(_db(), _settings().township, file, dry_run=dry_run,
                                    create_missing=create_missing)
    if as_json:
        _emit_json(report.to_json())
    else:
        _print_households_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_households_report(report: ImportReport) -> None:
    if not report.ok:
        _print_errors(report.errors)
        _print_warnings(report.warnings)
        return
    _print_warnings(report.warnings)
    _say("预览（没有写入）：" if report.dry_run else "导入完成：", "bold")
    _say(f"新增 {report.created} 户，更新 {report.updated} 户，未变化 {report.unchanged} 户。")
    created = (
        ("片区", report.created_areas),
        ("村", report.created_villages),
        ("组", [f"{v}{h}" for v, h in report.created_hamlets]),
        ("干部", [f"{n}（{p}）" if p else n for n, p in report.created_cadres]),
    )
    verb = "将新建" if report.dry_run else "新建"
    for label, names in created:
        if names:
            _say(f"{verb}{label}：{'、'.join(names)}")
    if report.changes:
        _say("更新的户：")
        for change in report.changes:
            _say(f"  {change.number}：{'、'.join(FIELD_LABELS[f] for f in change.fields)}")


# -- households list / show -------------------------------------------------------------------

@households_app.command("list")
def households_list(
    village: Annotated[Optional[str], typer.Option("--village", help="只看这个村")] = None,
    as_json: AsJson = False,
) -> None:
    """列出户（可按村筛选）。--json 每户输出一行 JSON。"""
    from storage.households import ensure_township, list_households, village_by_name
    from storage.scope import EVERYTHING

    settings = _settings()
    with _db().session() as session:
        township = ensure_township(session, settings.township)
        village_id = None
        if village is not None:
            found = village_by_name(session, township.id, nfkc(village))
            if found is None:
                _say(f"没有村「{village}」。", "red", err=True)
                raise typer.Exit(1)
            village_id = found.id
        views = list_households(session, township.id, EVERYTHING, village_id)
    if as_json:
        for view in views:
            _emit_json(view.to_json(settings.timezone))
        return
    if not views:
        _say("还没有户信息。用 sisong households import 文件 导入。")
        return
    table = Table(title=f"户信息（共 {len(views)} 户）", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("户编号", "户主", "村", "组", "人口", "劳力", "责任人", "先锋队", "监测", "绑定"):
        table.add_column(column, no_wrap=column == "户编号", overflow="fold")
    for v in views:
        table.add_row(v.number, v.head_name, v.village, v.hamlet or "", _num(v.population), _num(v.labourers),
                      v.helper_name or "", v.team or "", "是" if v.monitored else "", str(v.bound_members))
    console.print(table, markup=False)


def _num(value: int | None) -> str:
    return "" if value is None else str(value)


@households_app.command("show")
def households_show(
    number: Annotated[str, typer.Argument(help="户编号", show_default=False)],
    as_json: AsJson = False,
) -> None:
    """查看一户的登记信息、帮扶责任人和绑定情况。"""
    from storage.clock import local
    from storage.households import ensure_township, household_view
    from storage.scope import EVERYTHING

    settings = _settings()
    with _db().session() as session:
        view = household_view(session, ensure_township(session, settings.township).id, nfkc(number), EVERYTHING)
    if view is None:
        _say(f"没有户编号为 {number} 的户。", "red", err=True)
        raise typer.Exit(1)
    if as_json:
        _emit_json(view.to_json(settings.timezone))
        return
    zone = settings.timezone
    helper = " ".join(part for part in (view.helper_name, view.helper_phone) if part) or "（未登记）"
    code = f"已生成（{local(view.code_issued_at, zone)}）" if view.code_issued else "未生成"
    lines = [
        ("户编号", view.number),
        ("户主", view.head_name),
        ("村", view.village + (f"（片区：{view.area}）" if view.area else "")),
        ("组", view.hamlet or "（未登记）"),
        ("人口数", _num(view.population) or "（未登记）"),
        ("劳动力人数", _num(view.labourers) or "（未登记）"),
        ("务工意向", view.work_intent or "（未登记）"),
        ("帮扶责任人", helper),
        ("先锋队", view.team or "（未登记）"),
        ("监测对象", "是" if view.monitored else "否"),
        ("脱贫状态", "已脱贫" if view.lifted else "未脱贫"),
        ("联系电话", view.phone or "（未登记）"),
        ("绑定码", code),
        ("已绑定家庭成员", f"{view.bound_members} 人"),
        ("登记时间", local(view.created_at, zone)),
        ("更新时间", local(view.updated_at, zone)),
    ]
    for label, value in lines:
        _say(f"{label}：{value}")


def register(app: typer.Typer) -> None:
    import bot.binding_cli  # noqa: F401  (households codes)

    app.add_typer(org_app, name="org")
    app.add_typer(households_app, name="households")
