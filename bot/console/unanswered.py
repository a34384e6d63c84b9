"""待答问题: the queue of questions the handbook could not answer, as pages and /api/v1 routes (issue 8).

A cadre answers one household privately (a customer-service message inside
WeChat's 48-hour window, else kept until the follower next writes), closes an
item, or - 镇管理员 only - promotes it to a township-wide FAQ. The routes only
translate: every rule (who sees which question, read-only accounts, the audit
row, the delivery) is in ``knowledge.store.unanswered`` and
``knowledge.store.faq``, the same functions ``sisong unanswered`` and
``sisong faq add --from-unanswered`` call.

Pages are forms that POST and redirect (303) back to the item with ``?done=…``
(there is no session flash store): the page then explains the item's delivery
state itself, so a reload shows the truth rather than a stale message.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Form, HTTPException, Path, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from bot.console.deps import ApiCsrf, Csrf, CurrentUser, PageUser, ServicesDep
from bot.console.templating import render
from bot.private_replies import sender
from bot.services import notify_followers
from knowledge.store.faq import FaqError, FaqNotFound, answer_message, promote_unanswered
from knowledge.store.unanswered import (
    MAX_REPLY_CHARS,
    UnansweredConflict,
    UnansweredError,
    UnansweredNotFound,
    UnansweredRecord,
    close_unanswered,
    count_unanswered,
    delivery_note,
    get_unanswered,
    list_unanswered,
    reply_unanswered,
)
from storage.accounts import Principal
from storage.clock import iso_local
from storage.models.accounts import ADMIN
from storage.models.org import Village
from storage.privacy import mask_text

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

pages = APIRouter(prefix="/console", include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["待答问题"])

PAGE_SIZE = 30
MAX_ID = 2_147_483_647  # the column is a 32-bit integer: a larger number is simply not found
NOT_FOUND = "没有找到这个问题，可能编号不对。"

State = Literal["open", "answered_delivered", "answered_pending", "answered_failed", "closed"]
StatusFilter = Literal["open", "answered_delivered", "answered_pending", "answered_failed", "closed", "all"]
ItemId = Annotated[int, Path(ge=1, le=MAX_ID, description="待答问题的编号")]

# Short labels for the page's filter tabs and badges (the CLI's STATES say the same, longer).
TABS: tuple[tuple[str, str], ...] = (
    ("open", "待答"), ("answered_pending", "待送达"), ("answered_delivered", "已送达"),
    ("answered_failed", "无法送达"), ("closed", "已关闭"), ("all", "全部"),
)
BADGES = {"open": "warn", "answered_delivered": "ok", "answered_pending": "warn", "answered_failed": "bad",
          "closed": ""}


# -- shared by pages and API ----------------------------------------------------------------------

def _status_error(exc: UnansweredError | FaqError) -> HTTPException:
    """A store's refusal as the HTTP status a script can act on; the message is the store's Chinese."""
    if isinstance(exc, (UnansweredNotFound, FaqNotFound)):
        return HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
    if isinstance(exc, UnansweredConflict):
        return HTTPException(status.HTTP_409_CONFLICT, f"{exc}。")
    return HTTPException(422, f"{exc}。")


def _village(village: str | None) -> str | None:
    """The village filter, refused kindly when it could not be a name (PostgreSQL refuses NUL in a query)."""
    village = (village or "").strip()
    if "\x00" in village:
        raise HTTPException(422, "村名不对，请检查后再试。")
    return village or None


def _item(user: Principal, item_id: int, services: "Services") -> UnansweredRecord:
    record = get_unanswered(services.db, item_id, user.scope)  # OutOfScope: 403
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
    return record


def _reply(services: "Services", user: Principal, item_id: int, text: str) -> UnansweredRecord:
    """Send a private reply as the CLI does (same store function, same WeChat sender)."""
    return reply_unanswered(services.db, item_id, text, user.name, send=sender(services), actor=user)


def _promote(services: "Services", user: Principal, item_id: int, answer: str, question: str | None,
             allow_contact: bool) -> tuple[UnansweredRecord, int | None, str]:
    """Promote to an FAQ and queue the answer to everyone who asked.

    Returns the item, how many answers were queued (None: queueing failed, promoting again resends) and
    a sentence for the cadre.
    """
    openids = promote_unanswered(services.db, item_id, answer, question=question, allow_contact=allow_contact,
                                 actor=user)
    record = get_unanswered(services.db, item_id, user.scope)
    assert record is not None
    try:
        queued = notify_followers(openids, answer_message(answer.strip()), services) if openids else 0
    except Exception as exc:  # noqa: BLE001 - the FAQ is saved; promoting again resends (see faq.py)
        log.warning("promoted answer not queued: %s", mask_text(str(exc)))
        return record, None, "已转为常见问题，但答案没有发出去；请稍后再点一次“转为常见问题”重发（不会重复添加）。"
    return record, queued, (f"已转为常见问题，答案已发给提问的 {queued} 位群众。" if queued
                            else "已转为常见问题（没有可以通知的提问人）。")


# -- API ------------------------------------------------------------------------------------------

class ErrorOut(BaseModel):
    detail: str = Field(description="中文说明")


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "没有登录"},
    403: {"model": ErrorOut, "description": "不在您负责的范围内，或账号只能查看"},
    404: {"model": ErrorOut, "description": "没有这个编号"},
    409: {"model": ErrorOut, "description": "问题的状态不允许这样做（如已关闭）"},
    422: {"model": ErrorOut, "description": "填写的内容不对"},
}


class AskerHouseholdOut(BaseModel):
    number: str = Field(description="户编号")
    head_name: str = Field(description="户主姓名")
    label: str = Field(description="户主和户编号，如 张三家（SQ-001）")
    village: str
    hamlet: str | None = Field(description="组")
    helper_name: str | None = Field(description="帮扶责任人")
    helper_phone: str | None = Field(description="帮扶责任人电话")


class UnansweredOut(BaseModel):
    id: int
    question: str = Field(description="群众的问题（电话、证件号已遮住）")
    asked_at: str = Field(description="提问时间（ISO 8601，镇上的时区）")
    status: State
    status_label: str = Field(description="状态的中文：待答、已答-已送达、已答-待送达、已答-无法送达、已关闭")
    household: AskerHouseholdOut | None = Field(description="提问人绑定的住户；没绑定为 null")
    village: str | None
    reply: str | None = Field(description="干部的私下答复（号码已遮住）")
    replied_by: str | None
    answered_at: str | None
    delivered_at: str | None
    closed_at: str | None
    faq_id: int | None = Field(description="转成的常见问题编号")
    delivery_note: str | None = Field(None, description="送达情况的说明；只在单条查询和操作后返回")


class UnansweredPage(BaseModel):
    items: list[UnansweredOut]
    total: int = Field(description="这个状态（和村）下您能看到的问题总数")
    limit: int
    offset: int
    counts: dict[str, int] = Field(description="各状态的问题数（您的范围内）")


class ReplyIn(BaseModel):
    reply: str = Field(min_length=1, max_length=MAX_REPLY_CHARS, description="只发给提问的这一户，不公开")


class PromoteIn(BaseModel):
    answer: str = Field(min_length=1, max_length=MAX_REPLY_CHARS, description="常见问题的答案，全镇住户都能看到")
    question: str | None = Field(None, max_length=200, description="换个说法的问题（默认用群众的原话，号码会遮住）")
    allow_contact: bool = Field(False, description="答案里的电话确实要公开（如帮扶干部或热线）")


class PromoteOut(BaseModel):
    faq_id: int
    notified: int = Field(description="已排队发送答案的提问人数")
    message: str
    item: UnansweredOut


def _out(record: UnansweredRecord, zone: str, note: str | None = None) -> UnansweredOut:
    h = record.household
    return UnansweredOut(
        id=record.id, question=mask_text(record.question), asked_at=iso_local(record.created_at, zone) or "",
        status=record.state,  # type: ignore[arg-type]
        status_label=record.label,
        household=AskerHouseholdOut(number=h.number, head_name=h.head_name, label=h.label, village=h.village,
                               hamlet=h.hamlet, helper_name=h.helper_name, helper_phone=h.helper_phone)
        if h is not None else None,
        village=h.village if h is not None else None,
        reply=mask_text(record.reply) if record.reply else None, replied_by=record.replied_by,
        answered_at=iso_local(record.answered_at, zone), delivered_at=iso_local(record.delivered_at, zone),
        closed_at=iso_local(record.closed_at, zone), faq_id=record.faq_id, delivery_note=note,
    )


@api.get("/unanswered", response_model=UnansweredPage, responses={k: ERRORS[k] for k in (401, 422)})
def api_list(
    services: ServicesDep,
    user: CurrentUser,
    status_: Annotated[StatusFilter, Query(alias="status", description="状态；all 为全部")] = "open",
    village: Annotated[str | None, Query(max_length=64, description="只看这个村（村名）")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> UnansweredPage:
    """您负责范围内的待答问题：待答的最早的在前，其余最新的在前。"""
    village = _village(village)
    wanted = None if status_ == "all" else status_
    counts = count_unanswered(services.db, scope=user.scope, village=village)
    items = list_unanswered(services.db, wanted, limit, offset=offset, scope=user.scope, village=village)
    zone = services.settings.timezone
    return UnansweredPage(items=[_out(r, zone) for r in items], limit=limit, offset=offset, counts=counts,
                          total=sum(counts.values()) if wanted is None else counts[wanted])


@api.get("/unanswered/{item_id}", response_model=UnansweredOut, responses={k: ERRORS[k] for k in (401, 403, 404)})
def api_get(services: ServicesDep, user: CurrentUser, item_id: ItemId) -> UnansweredOut:
    """一个问题：提问的住户、答复和送达情况。"""
    record = _item(user, item_id, services)
    return _out(record, services.settings.timezone, delivery_note(services.db, record))


@api.post("/unanswered/{item_id}/reply", response_model=UnansweredOut, responses=ERRORS)
def api_reply(services: ServicesDep, user: ApiCsrf, item_id: ItemId, body: ReplyIn) -> UnansweredOut:
    """私下答复提问的这一户：对方48小时内发过消息就马上发出；否则等对方下次发消息时自动送达。

    返回的 `status` 和 `delivery_note` 说明是否已送达。
    """
    try:
        record = _reply(services, user, item_id, body.reply)
    except UnansweredError as exc:
        raise _status_error(exc) from None
    return _out(record, services.settings.timezone, delivery_note(services.db, record))


@api.post("/unanswered/{item_id}/close", response_model=UnansweredOut, responses=ERRORS)
def api_close(services: ServicesDep, user: ApiCsrf, item_id: ItemId) -> UnansweredOut:
    """关闭一个问题（已电话联系、重复的、与帮扶无关的）。之前没送到的答复仍会在对方下次发消息时送达。"""
    try:
        record = close_unanswered(services.db, item_id, actor=user)
    except UnansweredError as exc:
        raise _status_error(exc) from None
    return _out(record, services.settings.timezone, delivery_note(services.db, record))


@api.post("/unanswered/{item_id}/promote", response_model=PromoteOut, responses=ERRORS)
def api_promote(services: ServicesDep, user: ApiCsrf, item_id: ItemId, body: PromoteIn) -> PromoteOut:
    """转为常见问题（只有镇管理员）：全镇住户以后问到都用这个答案，并把答案发给问过的人。

    问题或答案里有手机号、身份证号时不让公开，除非 `allow_contact` 为 true。再转一次会更新同一条常见问题并重发。
    """
    try:
        record, queued, message = _promote(services, user, item_id, body.answer, body.question, body.allow_contact)
    except (UnansweredError, FaqError) as exc:
        raise _status_error(exc) from None
    assert record.faq_id is not None
    return PromoteOut(faq_id=record.faq_id, notified=queued or 0, message=message,
                      item=_out(record, services.settings.timezone, delivery_note(services.db, record)))


# -- pages ----------------------------------------------------------------------------------------

def _visible_villages(services: "Services", user: Principal) -> list[str]:
    with services.db.session() as session:
        return list(session.scalars(select(Village.name).where(user.scope.village_rows()).order_by(Village.id)))


@pages.get("/unanswered", response_class=HTMLResponse)
def queue_page(
    request: Request,
    services: ServicesDep,
    user: PageUser,
    status_: Annotated[StatusFilter, Query(alias="status")] = "open",
    village: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    village = _village(village)
    wanted = None if status_ == "all" else status_
    counts = count_unanswered(services.db, scope=user.scope, village=village)
    total = sum(counts.values()) if wanted is None else counts[wanted]
    items = list_unanswered(services.db, wanted, PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, scope=user.scope,
                            village=village)
    villages = _visible_villages(services, user)
    return render(request, "unanswered.html", user, items=items, counts={**counts, "all": sum(counts.values())},
                  tabs=TABS, current=status_, village=village or "", villages=villages, page=page,
                  pages=max(1, -(-total // PAGE_SIZE)), total=total, badges=BADGES, short=dict(TABS))


def _flash(services: "Services", record: UnansweredRecord, done: str | None, notified: int | None) -> list[tuple[str, str]]:
    """The message after a form's redirect, from the item's state now (a reload tells the truth)."""
    if done == "replied" and record.reply:
        note = delivery_note(services.db, record)
        if record.state == "answered_delivered":
            return [("ok", "答复已发出，对方已收到（已送达）。")]
        if record.state == "answered_failed":
            return [("error", f"答复已记下，但{note}。")]
        return [("warn", f"答复已记下，{note}。")]
    if done == "closed" and record.state == "closed":
        return [("ok", "已关闭这个问题。")]
    if done == "promoted" and record.faq_id is not None:
        if notified is None:
            return [("warn", "已转为常见问题，但答案没有发出去；请稍后再转一次重发（不会重复添加）。")]
        return [("ok", f"已转为常见问题，答案已发给提问的 {notified} 位群众。" if notified
                 else "已转为常见问题。")]
    return []


def _item_page(request: Request, services: "Services", user: Principal, record: UnansweredRecord,
               flashes: list[tuple[str, str]], code: int = 200, **form: Any) -> Response:
    return render(request, "unanswered_item.html", user, code, item=record, flashes=flashes,
                  note=delivery_note(services.db, record), badge=BADGES.get(record.state, ""),
                  can_write=user.scope.writable, can_promote=user.role == ADMIN,
                  reply_draft=form.get("reply", ""), promote_answer=form.get("answer", ""),
                  promote_question=form.get("question") or mask_text(record.question),
                  allow_contact=form.get("allow_contact", False), open_promote=bool(form.get("open_promote")))


@pages.get("/unanswered/{item_id}", response_class=HTMLResponse)
def item_page(
    request: Request,
    services: ServicesDep,
    user: PageUser,
    item_id: ItemId,
    done: Annotated[Literal["replied", "closed", "promoted"] | None, Query()] = None,
    n: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
) -> Response:
    record = _item(user, item_id, services)
    return _item_page(request, services, user, record, _flash(services, record, done, n))


def _back(item_id: int, done: str, **extra: int) -> RedirectResponse:
    query = "&".join([f"done={done}", *(f"{k}={v}" for k, v in extra.items())])
    return RedirectResponse(f"/console/unanswered/{item_id}?{query}", status.HTTP_303_SEE_OTHER)


def _refused(request: Request, services: "Services", user: Principal, item_id: int, exc: UnansweredError | FaqError,
             **form: Any) -> Response:
    """The item again with the store's message and what the cadre typed, so nothing is lost."""
    http = _status_error(exc)
    if http.status_code == status.HTTP_404_NOT_FOUND:
        raise http
    record = _item(user, item_id, services)
    return _item_page(request, services, user, record, [("error", str(http.detail))], http.status_code, **form)


@pages.post("/unanswered/{item_id}/reply")
def reply_form(
    request: Request,
    services: ServicesDep,
    user: Csrf,
    item_id: ItemId,
    reply: Annotated[str, Form()] = "",
) -> Response:
    try:
        _reply(services, user, item_id, reply)
    except UnansweredError as exc:
        return _refused(request, services, user, item_id, exc, reply=reply)
    return _back(item_id, "replied")


@pages.post("/unanswered/{item_id}/close")
def close_form(request: Request, services: ServicesDep, user: Csrf, item_id: ItemId) -> Response:
    try:
        close_unanswered(services.db, item_id, actor=user)
    except UnansweredError as exc:
        return _refused(request, services, user, item_id, exc)
    return _back(item_id, "closed")


@pages.post("/unanswered/{item_id}/promote")
def promote_form(
    request: Request,
    services: ServicesDep,
    user: Csrf,
    item_id: ItemId,
    answer: Annotated[str, Form()] = "",
    question: Annotated[str, Form()] = "",
    allow_contact: Annotated[bool, Form()] = False,
) -> Response:
    form = {"answer": answer, "question": question, "allow_contact": allow_contact, "open_promote": True}
    try:
        _, queued, _ = _promote(services, user, item_id, answer, question or None, allow_contact)
    except (UnansweredError, FaqError) as exc:
        return _refused(request, services, user, item_id, exc, **form)
    return _back(item_id, "promoted") if queued is None else _back(item_id, "promoted", n=queued)
