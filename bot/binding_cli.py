"""``sisong households codes``: binding codes, households' QR codes and the printable label sheet.

Importing this module registers the command on ``households_app`` (bot.org_cli).
The command is thin: :mod:`storage.binding` issues the codes, :mod:`bot.binding`
asks WeChat for QR codes, :mod:`bot.binding_sheet` draws the labels; the
console will call the same functions.

Codes are secrets, but handing them out is what this command is for: they go
to stdout (a table, or JSON with ``--json``) and to the sheet, never to the log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from bot.org_cli import households_app
from storage.privacy import mask_name, mask_text

out_console = Console()
console = Console(stderr=True, soft_wrap=True)

DEFAULT_SHEET = "binding-labels.html"


@households_app.command("codes")
def codes(
    village: Annotated[Optional[str], typer.Option("--village", help="只处理这个村（村名）。")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="输出 JSON：[{\"household\": 户编号, \"code\": 绑定码}]。")] = False,
    reissue: Annotated[
        Optional[str],
        typer.Option("--reissue", metavar="户编号", help="作废这一户的绑定码（和二维码）并重发；已绑定的家人不受影响。"),
    ] = None,
    qr: Annotated[bool, typer.Option("--qr", help="同时向微信申请每户的永久二维码（已有的沿用），并生成打印用的标签页。")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", help=f"标签页文件（HTML，A4 打印），默认 {DEFAULT_SHEET}。")] = None,
    cadres: Annotated[bool, typer.Option("--cadres", help="也给还没有绑定码的干部发码（干部用它绑定自己的微信）。")] = False,
) -> None:
    """给还没有绑定码的户发绑定码（全家共用一个码）；--reissue 重发一户；--qr 生成二维码标签页。"""
    from bot.config import load_settings
    from bot.services import build_services
    from storage.binding import BindingError, households_in_scope, issue_cadre_codes, issue_codes
    from storage.binding import reissue as reissue_code
    from storage.households import ensure_township

    settings = load_settings()
    services = build_services(settings)
    try:
        with services.db.session() as session:
            township = ensure_township(session, settings.township)
            try:
                issued = [reissue_code(session, township, reissue)] if reissue else issue_codes(
                    session, township, village
                )
                cadre_codes = issue_cadre_codes(session, township) if cadres else []
            except BindingError as exc:
                console.print(f"[red]{exc}[/red]")
                raise typer.Exit(1) from None
            # What the sheet shows: the reissued household, or every household in scope with a code.
            if reissue:
                scope_ids = [issued[0].household_id]
            else:
                scope_ids = [h.id for h in households_in_scope(session, township, village) if h.code]
            rows = _table_rows(session, [i.household_id for i in issued])
        # The codes are committed: show them before WeChat is asked for anything that may fail.
        _report(issued, rows, cadre_codes, as_json=as_json, reissued=bool(reissue), cadres=cadres)
        if qr:
            _create_qr_codes(services, scope_ids)
        if qr or out is not None:
            path = out or Path(DEFAULT_SHEET)
            count = _write_sheet(services, scope_ids, path, village)
            console.print(f"标签页已写入 {path}（{count} 户，HTML，用浏览器打开后按 A4 打印）")
    finally:
        services.close()


def _report(issued: list, rows: list, cadre_codes: list, *, as_json: bool, reissued: bool,  # type: ignore[type-arg]
            cadres: bool) -> None:
    if as_json:
        payload: list[dict[str, str]] = [i.as_json() for i in issued]
        payload += [{"cadre": c.name, "phone": mask_text(c.phone), "code": c.code} for c in cadre_codes]
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    _print_table(rows, cadre_codes)
    what = "重发了 1 户的绑定码" if reissued else f"新发绑定码 {len(issued)} 户"
    console.print(what + (f"，干部 {len(cadre_codes)} 人" if cadres else "") + "。")


def _table_rows(session, household_ids: list[int]) -> list[tuple[str, str, str, str]]:  # type: ignore[no-untyped-def]
    from storage.binding import format_code
    from storage.models.org import Household

    rows = []
    for household_id in household_ids:
        household = session.get(Household, household_id)
        rows.append((household.number, household.village.name, mask_name(household.head_name),
                     format_code(household.code or "")))
    return rows


def _print_table(rows: list[tuple[str, str, str, str]], cadre_codes: list) -> None:  # type: ignore[type-arg]
    from storage.binding import format_code

    if rows:
        table = Table("户编号", "村", "户主", "绑定码")
        for row in rows:
            table.add_row(*row)
        out_console.print(table)
    if cadre_codes:
        table = Table("干部", "电话", "绑定码")
        for cadre in cadre_codes:
            table.add_row(cadre.name, mask_text(cadre.phone), format_code(cadre.code))
        out_console.print(table)


def _create_qr_codes(services, household_ids: list[int]) -> None:  # type: ignore[no-untyped-def]
    """One permanent QR code per household, reused when it exists; stops at WeChat's first refusal."""
    from rich.progress import Progress

    from bot.binding import ensure_qr
    from bot.wechat_client import WeChatAPIError

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("二维码", total=len(household_ids))
        for household_id in household_ids:
            try:
                ensure_qr(services, household_id)
            except WeChatAPIError as exc:
                console.print(f"[red]微信二维码申请失败：{exc}。已生成的已保存，稍后再运行本命令会接着做。[/red]")
                raise typer.Exit(1) from None
            progress.advance(task)


def _write_sheet(services, household_ids: list[int], path: Path,  # type: ignore[no-untyped-def]
                 village: str | None = None) -> int:
    from bot.binding_sheet import sheet_for
    from storage.models.org import Household

    with services.db.session() as session:
        html, count = sheet_for((h for h in (session.get(Household, i) for i in household_ids) if h is not None),
                                village)
    path.write_text(html, encoding="utf-8")
    return count
