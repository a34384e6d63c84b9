"""Command line for cadres: load the handbook, ask, manage FAQ, synonyms and unanswered questions.

Mounted on the ``sisong`` app with ``knowledge.cli.register(app)``; runs on its
own as ``python -m knowledge.cli``. Every command gets its database from
``get_db()``, which the host application may replace with ``set_db_factory``.

Whatever it prints that came from households (queued questions, FAQ questions,
error text) goes through ``storage.privacy.mask_text`` even though the store masks
it already: terminals are screenshotted and JSON output is piped on.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from storage.clock import iso_local, local
from storage.privacy import mask_text
from knowledge.ingest.importer import HandbookImportError, ImportReport, import_files
from knowledge.ingest.undo import UndoError, undo_last_import
from knowledge.explain import Explanation
from knowledge.service import KnowledgeBase, ensure_sample_loaded
from knowledge.store.handbook import list_documents
from knowledge.store.faq import FaqError, add_faq, answer_message, list_faqs, promote_unanswered, remove_faq
from knowledge.store.synonyms import add_synonym, list_synonyms, remove_synonym
from knowledge.store.unanswered import (
    STATES,
    UnansweredError,
    close_unanswered,
    delivery_note,
    list_unanswered,
    reply_unanswered,
)
from storage.db import Database

console = Console()
errors = Console(stderr=True)

handbook_app = typer.Typer(help="政策汇编：导入、查看、撤销最近一次导入。", no_args_is_help=True)
faq_app = typer.Typer(help="常见问题（FAQ）：添加、查看、删除；把待答问题转成 FAQ。", no_args_is_help=True)
unanswered_app = typer.Typer(help="答不上来、等人工回复的问题。", no_args_is_help=True)
synonym_app = typer.Typer(help="群众说法 → 政策用语 的同义词（补充 knowledge/data/synonyms.txt）。", no_args_is_help=True)


# -- the host: what these commands need from the service they are mounted in ----------------


@dataclass(frozen=True)
class Host:
    """The service around the knowledge commands (``bot/knowledge_host.py`` installs Sisong's).

    knowledge/ never imports bot/: the settings (``database_url``, ``timezone``),
    the WeChat service layer, sending an answer to followers and a cadre's
    private reply come in through here.
    """

    settings: Callable[[], Any]
    services: Callable[[], Any]  # a service container; the caller closes it
    notify_followers: Callable[[list[str], str], None]
    reply_sender: Callable[[Any], Callable[[str, str], None]]
    config_error: type[Exception] = ValueError


_host: Host | None = None


def set_host(host: Host) -> None:
    global _host
    _host = host


def _the_host() -> Host:
    if _host is None:
        raise RuntimeError("the knowledge commands run inside sisong: bot/knowledge_host.py installs their host")
    return _host


# -- database hook --------------------------------------------------------------------

def _default_db() -> Database:
    db = Database(_the_host().settings().database_url)
    if db.is_sqlite:
        db.upgrade()  # the embedded default migrates itself; PostgreSQL uses `sisong db upgrade`
    return db


_db_factory: Callable[[], Database] = _default_db
_db: Database | None = None


def set_db_factory(factory: Callable[[], Database]) -> None:
    """Let the host application (or a test) decide where the database is."""
    global _db_factory, _db
    _db_factory, _db = factory, None


def get_db() -> Database:
    global _db
    if _db is None:
        _db = _db_factory()
    return _db


# -- handbook ---------------------------------------------------------------------------

_STATUS = {"imported": "新导入", "updated": "已更新", "unchanged": "未变化（已导入过）"}


def _print_report(report: ImportReport) -> None:
    table = Table(title="导入结果")
    for column in ("文件", "标题", "状态", "章", "条", "段落"):
        table.add_column(column)
    for f in report.files:
        table.add_row(f.name, f.title, _STATUS.get(f.status, f.status), str(f.chapters), str(f.articles),
                      str(f.passages))
    console.print(table)
    warnings = report.warnings
    console.print(f"共 {report.documents} 个文件，{report.chapters} 章，{report.articles} 条；警告 {len(warnings)} 条。")
    for name in report.removed:
        console.print(f"[yellow]已移除：{name}[/yellow]")
    if report.sample_removed:
        console.print("[yellow]已移除内置的示例汇编（青山县，虚构），现在只按导入的政策汇编回答。[/yellow]")
    for warning in warnings:
        console.print(f"[yellow]警告：{warning}[/yellow]")


@handbook_app.command("import")
def handbook_import(
    paths: Annotated[list[Path], typer.Argument(help="一个或多个 .docx / .pdf / .md / .txt 文件")],
    replace: Annotated[bool, typer.Option("--replace", help="导入后只保留这些文件，移除其他已导入的文件")] = False,
) -> None:
    """导入政策汇编。同一文件重复导入不会重复；有一个文件出错则全部不导入。"""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=errors,
                  transient=True) as progress:
        task = progress.add_task("读取文件", total=2 * len(paths) + 1)

        def step(stage: str, name: str) -> None:
            label = {"read": "读取", "write": "写入", "index": "建立索引"}.get(stage, stage)
            progress.update(task, advance=1, description=f"{label} {name}".strip())

        try:
            report = import_files(get_db(), paths, replace=replace, progress=step)
        except HandbookImportError as exc:
            progress.stop()
            for failure in exc.failures:
                errors.print(f"[red]导入失败 {failure}[/red]")
            errors.print("没有导入任何内容。请处理上面的文件后重新导入。")
            raise typer.Exit(1) from None
    _print_report(report)


@handbook_app.command("undo")
def handbook_undo() -> None:
    """撤销最近一次导入：文件、条文、检索索引（和被它移除的示例汇编）回到导入之前。只能撤销一次。"""
    try:
        report = undo_last_import(get_db())
    except UndoError as exc:
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"已撤销 {local(report.imported_at, _zone())} 的导入（{report.actor}：{'、'.join(report.files)}）。")
    if report.removed:
        console.print(f"已移除：{'、'.join(report.removed)}")
    if report.restored:
        console.print(f"已恢复：{'、'.join(report.restored)}")
    if report.sample_restored:
        console.print("[yellow]内置的示例汇编（青山县，虚构）已恢复。[/yellow]")


@handbook_app.command("list")
def handbook_list() -> None:
    """列出已导入的文件。"""
    rows = [(d.id, d.name, d.title, d.chapters, d.articles, d.imported_at) for d in list_documents(get_db())]
    if not rows:
        console.print("还没有导入任何政策汇编。用 `sisong handbook import 文件` 导入。")
        return
    table = Table(title="已导入的政策汇编")
    for column in ("编号", "文件", "标题", "章", "条", "导入时间"):
        table.add_column(column)
    zone = _zone()
    for doc_id, name, title, chapters, articles, imported in rows:
        table.add_row(str(doc_id), name, title, str(chapters), str(articles), local(imported, zone))
    console.print(table)


# -- ask ----------------------------------------------------------------------------------

def ask(
    question: Annotated[Optional[str], typer.Argument(help="问题；配合 --json 省略时，从标准输入每行读一个问题")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="每个问题输出一行 JSON")] = False,
    explain: Annotated[bool, typer.Option("--explain", help="同时说明为什么这样答：读懂的词、候选条文和分数、选用的句子")] = False,
) -> None:
    """像群众一样提问，看助手怎么回答（知识库为空时先载入示例汇编）。"""
    db = get_db()
    ensure_sample_loaded(db)
    kb = KnowledgeBase.open(db)

    def one(line: str) -> None:
        if explain:
            explanation = kb.explain(line)
            if as_json:
                print(json.dumps(explanation.to_json(), ensure_ascii=False), flush=True)
            else:
                _print_explanation(explanation)
            return
        answer = kb.answer(line)
        if as_json:
            print(json.dumps(answer.to_json(line), ensure_ascii=False), flush=True)
            return
        console.print(answer.text, markup=False, highlight=False)
        if answer.sources:
            console.print("[dim]来源：" + "；".join(
                f"{_cited(s.document, s.article or s.title)}（{s.score:g}）" for s in answer.sources) + "[/dim]")
        if answer.handover:
            console.print("[yellow]（将转人工）[/yellow]")

    if question is None:
        if not as_json:
            errors.print("请给出问题，例如：sisong ask \"低保咋个申请\"；或用 --json 从标准输入读取。")
            raise typer.Exit(2)
        for line in sys.stdin:
            line = line.strip()
            if line:
                one(line)
        return
    one(question)


def _cited(document: str, label: str) -> str:
    return f"《{document}》{label}" if document else label


def _print_explanation(e: Explanation) -> None:
    """试一试 in a terminal: the reply, then why, in the order a cadre reads it."""
    console.print(e.reply, markup=False, highlight=False)
    console.print(f"\n[bold]怎么答的：[/bold]{e.route_name}{'（转人工）' if e.handover else ''}。{e.reason}",
                  highlight=False)
    if e.concepts:
        console.print("[bold]读懂的词：[/bold]", highlight=False)
        for c in e.concepts:
            tags = "（问法）" if c.asks else ("（汇编里没有）" if not c.in_handbook else "")
            extra = f"；同义词加的：{'、'.join(c.from_synonyms)}" if c.from_synonyms else ""
            console.print(f"  {c.words}{tags} → 搜 {'、'.join(c.means)}{extra}；分量 {c.weight:.2f}",
                          markup=False, highlight=False)
    if e.cues:
        console.print(f"[bold]问题类型：[/bold]{'、'.join(e.cues)}", highlight=False)
    for h in e.homophones:
        console.print(f"同音纠错：{h['heard']} → {h['meant']}", markup=False, highlight=False)
    if e.candidates:
        table = Table(title=f"候选条文（覆盖至少 {e.min_confidence:.0%} 才回答）")
        for column in ("条文", "相关度", "覆盖", "排序分", "对上的", "没对上的"):
            table.add_column(column)
        for c in e.candidates:
            mark = "✔ " if c.cited else ""
            table.add_row(f"{mark}{c.label} {c.title}《{c.document}》", f"{c.bm25:.2f}",
                          f"{c.coverage:.0%}", f"{c.score:.2f}", "、".join(c.matched), "、".join(c.missing))
        console.print(table)
    if e.sentences:
        console.print("[bold]选用的句子：[/bold]", highlight=False)
        for sentence in e.sentences:
            console.print(f"  · {sentence}", markup=False, highlight=False)


# -- FAQ -----------------------------------------------------------------------------------

def _notify(openids: list[str], text: str) -> None:
    """Send the answer to everyone who asked, through the WeChat service layer."""
    _the_host().notify_followers(openids, text)


@faq_app.command("add")
def faq_add(
    question: Annotated[Optional[str], typer.Argument(help="问题（用 --from-unanswered 时省略）")] = None,
    answer: Annotated[Optional[str], typer.Argument(help="答案")] = None,
    from_unanswered: Annotated[Optional[int], typer.Option("--from-unanswered", help="把这个编号的待答问题转成 FAQ，并把答案发给提问的人")] = None,
    rephrased: Annotated[Optional[str], typer.Option("--question", help="配合 --from-unanswered：FAQ 里显示的问题换个说法（默认用群众的原话，电话、身份证号、银行卡号会被遮住）")] = None,
    allow_contact: Annotated[bool, typer.Option("--allow-contact", help="配合 --from-unanswered：问题或答案里有电话、证件号也照样公开（答案里的号码保留，问题里的遮住）")] = False,
) -> None:
    """添加一条常见问题；或用 --from-unanswered 编号 答案 回复待答问题。"""
    db = get_db()
    try:
        if from_unanswered is not None:
            text = answer if answer is not None else question
            if not text:
                errors.print("请给出答案：sisong faq add --from-unanswered 编号 \"答案\"")
                raise typer.Exit(2)
            openids = promote_unanswered(db, from_unanswered, text, question=rephrased, allow_contact=allow_contact)
            console.print(f"已转为常见问题；提问的 {len(openids)} 位群众将收到答复。")
            if openids:
                try:
                    _notify(openids, answer_message(text))
                except Exception as exc:  # noqa: BLE001 - any sending failure is reported the same way
                    errors.print(f"[red]常见问题已保存，但答复没有发给提问的群众（{type(exc).__name__}: {mask_text(str(exc))}）。"
                                 f"稍后再运行同一条命令即可重发，不会重复添加常见问题。[/red]")
                    raise typer.Exit(1) from None
            return
        if rephrased is not None:
            errors.print("--question 只和 --from-unanswered 一起用；直接添加请写：sisong faq add \"问题\" \"答案\"")
            raise typer.Exit(2)
        if not question or not answer:
            errors.print("请给出问题和答案：sisong faq add \"问题\" \"答案\"")
            raise typer.Exit(2)
        faq_id = add_faq(db, question, answer)
        console.print(f"已添加常见问题，编号 {faq_id}。")
    except FaqError as exc:
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


@faq_app.command("list")
def faq_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """列出常见问题。"""
    faqs = list_faqs(get_db())
    if as_json:
        for f in faqs:
            print(json.dumps({"id": f.id, "question": mask_text(f.question), "answer": f.answer}, ensure_ascii=False))
        return
    if not faqs:
        console.print("还没有常见问题。")
        return
    table = Table(title="常见问题")
    for column in ("编号", "问题", "答案"):
        table.add_column(column)
    for f in faqs:
        table.add_row(str(f.id), mask_text(f.question), f.answer)  # answers are the cadres' own words
    console.print(table)


@faq_app.command("remove")
def faq_remove(faq_id: Annotated[int, typer.Argument(help="编号")]) -> None:
    """删除一条常见问题。"""
    if not remove_faq(get_db(), faq_id):
        errors.print(f"[red]没有编号为 {faq_id} 的常见问题。[/red]")
        raise typer.Exit(1)
    console.print(f"已删除常见问题 {faq_id}。")


# -- unanswered ----------------------------------------------------------------------------

_services_factory: Callable[[], Any] | None = None


def set_services_factory(factory: Callable[[], Any] | None) -> None:
    """Let the host application (or a test) give the services a private reply is sent with."""
    global _services_factory
    _services_factory = factory


@contextmanager
def _services() -> Iterator[Any]:
    """The WeChat service layer for sending: the host's, or built from settings for this command."""
    if _services_factory is not None:
        yield _services_factory()
        return
    services = _the_host().services()
    try:
        yield services
    finally:
        services.close()


def _zone() -> str:
    """SISONG_TIMEZONE: the township's clock, for every time shown."""
    host = _the_host()
    try:
        return host.settings().timezone
    except host.config_error:
        return "Asia/Shanghai"



def _state_key(value: str) -> str:
    """An English state key, or its Chinese label (待答, 已答-已送达, ...)."""
    value = value.strip()
    for key, label in STATES.items():
        if value in (key, label):
            return key
    errors.print(f"[red]没有这个状态：{value}。可用：{'、'.join(f'{k}（{v}）' for k, v in STATES.items())}[/red]")
    raise typer.Exit(2)


def _who() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name (a container): say so rather than fail
        return "-"


@unanswered_app.command("list")
def unanswered_list(
    as_json: Annotated[bool, typer.Option("--json", help="每个问题输出一行 JSON")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="包括已答复、已关闭的")] = False,
    status: Annotated[Optional[str], typer.Option("--status", help="只看一种状态：open 待答、answered_delivered 已答-已送达、answered_pending 已答-待送达、answered_failed 已答-无法送达、closed 已关闭")] = None,
) -> None:
    """列出待人工回复的问题（默认只列待答的），时间按 SISONG_TIMEZONE。"""
    wanted = _state_key(status) if status else (None if show_all else "open")
    items = list_unanswered(get_db(), status=wanted)
    zone = _zone()
    if as_json:
        for u in items:
            print(json.dumps({
                "id": u.id, "openid": u.openid, "question": mask_text(u.question), "status": u.state,
                "created_at": iso_local(u.created_at, zone), "faq_id": u.faq_id,
                "reply": mask_text(u.reply) if u.reply else None, "replied_by": u.replied_by,
                "answered_at": iso_local(u.answered_at, zone), "delivered_at": iso_local(u.delivered_at, zone),
                "closed_at": iso_local(u.closed_at, zone),
            }, ensure_ascii=False))
        return
    if not items:
        console.print("没有待答问题。" if wanted == "open" else "没有这样的问题。")
        return
    table = Table(title="待答问题（私下答复：sisong unanswered reply 编号 \"答复\"；"
                        "公开成常见问题：sisong faq add --from-unanswered 编号 \"答案\"）")
    table.add_column("编号", no_wrap=True)
    table.add_column("问题", overflow="fold")
    table.add_column("状态", no_wrap=True)
    table.add_column("提问时间", no_wrap=True)
    table.add_column("答复", overflow="fold")
    for u in items:
        reply = ""
        if u.reply:
            when = local(u.delivered_at or u.answered_at, zone, "%m-%d %H:%M")
            reply = f"{mask_text(u.reply)}（{u.replied_by or '-'} {when}）"
        if u.closed_at:
            reply += f"（{local(u.closed_at, zone, '%m-%d %H:%M')} 关闭）"
        table.add_row(str(u.id), mask_text(u.question), STATES.get(u.state, u.state),
                      local(u.created_at, zone, "%m-%d %H:%M"), reply)
    console.print(table)


@unanswered_app.command("reply")
def unanswered_reply(
    item_id: Annotated[int, typer.Argument(help="待答问题的编号")],
    reply: Annotated[str, typer.Argument(help="给提问的这一户的答复（只发给他，不公开）")],
    by: Annotated[Optional[str], typer.Option("--by", help="答复人（默认当前系统用户名）")] = None,
) -> None:
    """私下答复一户：对方48小时内发过消息就马上发（客服消息）；否则先存着，对方下次发消息时自动送达。"""
    sender = _the_host().reply_sender
    replied_by = (by or "").strip() or _who()
    with _services() as services:
        try:
            record = reply_unanswered(get_db(), item_id, reply, replied_by, send=sender(services))
        except UnansweredError as exc:
            errors.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
    line = f"已答复问题 {item_id}：{delivery_note(get_db(), record)}。（{record.label}）"
    if record.state == "answered_pending":
        line += "用 sisong unanswered list --status answered_pending 查看。"
    console.print(f"[yellow]{line}[/yellow]" if record.state == "answered_failed" else line, highlight=False,
                  soft_wrap=True)


@unanswered_app.command("close")
def unanswered_close(
    item_id: Annotated[int, typer.Argument(help="待答问题的编号")],
    by: Annotated[Optional[str], typer.Option("--by", help="操作人（默认当前系统用户名）")] = None,
) -> None:
    """关闭一个问题（已电话联系、重复的、与帮扶无关的等）。"""
    try:
        record = close_unanswered(get_db(), item_id, (by or "").strip() or _who())
    except UnansweredError as exc:
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    note = "；之前的答复仍会在对方下次发消息时送达" if record.delivery in ("pending", "sending") else ""
    console.print(f"已关闭问题 {item_id}（已关闭）{note}。")


# -- synonyms --------------------------------------------------------------------------------

@synonym_app.command("add")
def synonym_add(
    phrase: Annotated[str, typer.Argument(help="群众的说法，如 “娃儿”")],
    expansion: Annotated[list[str], typer.Argument(help="汇编里的用语，可多个，如 子女 学生")],
) -> None:
    """添加一条同义词：群众说 PHRASE 时，按 EXPANSION 去找政策。"""
    try:
        synonym_id = add_synonym(get_db(), phrase, " ".join(expansion))
    except ValueError as exc:
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"已添加同义词，编号 {synonym_id}。")


@synonym_app.command("list")
def synonym_list() -> None:
    """列出在数据库里添加的同义词。"""
    rows = list_synonyms(get_db())
    if not rows:
        console.print("数据库里还没有同义词（内置词表见 knowledge/data/synonyms.txt）。")
        return
    table = Table(title="同义词")
    for column in ("编号", "群众说法", "政策用语"):
        table.add_column(column)
    for r in rows:
        table.add_row(str(r.id), r.phrase, r.expansion)
    console.print(table)


@synonym_app.command("remove")
def synonym_remove(synonym_id: Annotated[int, typer.Argument(help="编号")]) -> None:
    """删除一条同义词。"""
    if not remove_synonym(get_db(), synonym_id):
        errors.print(f"[red]没有编号为 {synonym_id} 的同义词。[/red]")
        raise typer.Exit(1)
    console.print(f"已删除同义词 {synonym_id}。")


# -- mounting --------------------------------------------------------------------------------

def register(app: typer.Typer) -> None:
    """Mount every knowledge command on the host Typer app."""
    app.add_typer(handbook_app, name="handbook")
    app.command("ask")(ask)
    app.add_typer(faq_app, name="faq")
    app.add_typer(unanswered_app, name="unanswered")
    app.add_typer(synonym_app, name="synonym")


app = typer.Typer(help="四送助手·政策问答", no_args_is_help=True)
register(app)

if __name__ == "__main__":  # the commands need Sisong as their host: run them as `sisong …`
    sys.exit("请用 sisong 运行这些命令，例如：sisong ask \"危房改造补多少\"")
