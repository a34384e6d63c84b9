"""送岗位 in the chat: “岗位” lists the open postings, “报名 7” signs the household up, and the rest.

* “岗位” / “找工作” / the menu's 岗位信息: open postings, those pushed to the
  follower's village first, five to a page (“更多” for the next), then
  “回复编号看详情，回复“报名 编号”报名”.
* A bare number: right after a push (“想报名请回复：1”) a “1” signs up for the
  pushed posting; after a list, a number shows that posting. Which one is
  meant is decided by which came last. The push is remembered by its delivery
  row (durable, per follower), the list by the conversation.
* “报名 7”: one sign-up per household and posting (``storage.jobs.signup``);
  the village's group and the household's helper hear of it after the
  message's unit of work commits. “取消报名 7” withdraws; the first household
  waiting gets the place and is told.
* “退订岗位” / “订阅岗位”: the household's preference; pushes skip it.

Followers not bound to a household may look, but signing up and the
preference belong to a household: they are asked, kindly, to bind first.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

from bot.context import Context
from bot.jobs import announce_promotion, announce_signup, detail_text, list_line
from bot.notices import notify
from bot.router import router
from bot.textfit import MORE_HINT
from storage import jobs, pushes
from storage.households import ensure_township, household_of
from storage.import_rows import nfkc
from storage.models.base import utcnow
from storage.models.jobs import POSTING_LABELS
from storage.models.org import Household
from storage.privacy import mask_name

PAGE = 5
# A push is "just now" for a bare "1" this long (a household may read it the next evening).
PUSH_MEMORY = timedelta(days=7)
LIST_MEMORY = 1800.0  # seconds a list's numbers stay meaningful (the conversation's own TTL)

NOT_BOUND = (
    "报名要先绑定您家的信息，这样村里才知道是哪一户报的名。\n"
    "请向帮扶干部要“绑定码”，然后回复：绑定 绑定码；也可以用微信扫政策汇编上的二维码。"
)
HOW_TO_SIGN_UP = "回复编号看详情，回复“报名 编号”报名，比如“报名 {example}”。"
NONE_OPEN = "现在没有正在招人的就业岗位。有合适的新岗位，我们会推送给您。"


def _zone(ctx: Context) -> str:
    return ctx.services.settings.timezone


def _township_id(ctx: Context, household: Household | None) -> int:
    if household is not None:
        return household.township_id
    return ensure_township(ctx.session, ctx.services.settings.township).id


def _number(text: str) -> int | None:
    digits = re.sub(r"\D", "", nfkc(text))
    return int(digits) if digits and len(digits) <= 9 else None


# -- the list ------------------------------------------------------------------------------------


@router.keyword("岗位", "找工作", "工作", "岗位信息", "看岗位", "招工", "招聘", "打工", "有什么工作",
                "有没有工作", "有工作吗", "我要找工作", "我想找工作", overrides_state=True)
@router.click("JOBS")
def list_jobs(ctx: Context) -> str:
    household = household_of(ctx.session, ctx.openid)
    views = jobs.open_postings_for(ctx.session, _township_id(ctx, household),
                                   household.village_id if household is not None else None, _zone(ctx))
    if not views:
        return NONE_OPEN
    mine = jobs.household_signups(ctx.session, household.id) if household is not None else {}
    local_first = household is not None and household.village_id in views[0].village_ids
    head = f"现在有{len(views)}个岗位" + ("，本村的排在前面" if local_first else "") + "："
    footer = HOW_TO_SIGN_UP.format(example=views[0].id)
    pages = []
    for start in range(0, len(views), PAGE):
        lines = [list_line(v, mine.get(v.id)) for v in views[start:start + PAGE]]
        pages.append("\n".join(([head] if start == 0 else []) + lines + [footer]))
    ctx.conversation.set(jobs_listed_at=time.time(), jobs_listed=[v.id for v in views])
    if len(pages) > 1:
        ctx.conversation.set(more_pages=pages[1:])  # "更多" (handlers/more.py) adds its own hint
        return pages[0] + MORE_HINT
    return pages[0]


def _detail(ctx: Context, posting_id: int) -> str:
    household = household_of(ctx.session, ctx.openid)
    view = jobs.posting_view(ctx.session, _township_id(ctx, household), posting_id, _zone(ctx))
    if view is None or view.status == "draft":
        return f"没有编号为 {posting_id} 的岗位。回复“岗位”看现在有哪些岗位。"
    if view.status not in jobs.VISIBLE:
        return f"岗位 {posting_id}（{view.title}）{POSTING_LABELS[view.status]}，不能报名了。回复“岗位”看其他岗位。"
    mine = jobs.household_signups(ctx.session, household.id).get(posting_id) if household is not None else None
    return detail_text(view, mine)


# -- a bare number: "1" after a push, or a number from the list -------------------------------------


@router.pattern(r"^\s*[1-9１-９]\d{0,5}\s*[。.]?\s*$")
def bare_number(ctx: Context) -> str:
    """“1” right after a push signs up for it; a number after “岗位” shows that posting; else policy Q&A."""
    number = _number(ctx.text or "") or 0
    listed_at = float(ctx.conversation.get("jobs_listed_at") or 0)
    listed = ctx.conversation.get("jobs_listed") or []
    if time.time() - listed_at > LIST_MEMORY:
        listed = []
    pushed = pushes.last_sent(ctx.session, ctx.openid, jobs.KIND, utcnow() - PUSH_MEMORY)
    push_is_newer = pushed is not None and pushed[1].timestamp() > listed_at
    if number == 1 and pushed is not None and (push_is_newer or 1 not in listed):
        return _sign_up(ctx, pushed[0])
    if number in listed:
        return _detail(ctx, number)
    from handlers.policy_qa import ask

    return ask(ctx)


# -- signing up ----------------------------------------------------------------------------------


@router.pattern(r"^\s*(?:我要|我想)?报名\s*[:：]?\s*(?:[0-9０-９]{1,9}\s*号?)?\s*[。.!！]?\s*$", overrides_state=True)
def sign_up(ctx: Context) -> str:
    posting_id = _number(ctx.text or "")
    if posting_id is None:
        return "请在“报名”后面写上岗位编号，比如“报名 3”。回复“岗位”看有哪些岗位和编号。"
    return _sign_up(ctx, posting_id)


def _sign_up(ctx: Context, posting_id: int) -> str:
    household = household_of(ctx.session, ctx.openid)
    if household is None:
        return NOT_BOUND + f"\n绑定好了再回复“报名 {posting_id}”就行。"
    result = jobs.signup(ctx.session, posting_id, household, openid=ctx.openid, zone=_zone(ctx))
    posting = result.posting
    if result.status == jobs.NO_SUCH or posting is None:
        return f"没有编号为 {posting_id} 的岗位。回复“岗位”看现在有哪些岗位。"
    name = f"“{posting.title}”（编号 {posting.id}）"
    if result.status == jobs.NOT_OPEN:
        return f"岗位{name}{POSTING_LABELS[result.effective or 'closed']}，不能报名了。回复“岗位”看其他岗位。"
    if result.status in (jobs.NEW_SIGNED, jobs.NEW_WAITING):
        services = ctx.services
        notice = announce_signup(ctx.session, services, posting, household, result)
        ctx.after_commit(lambda: notice.dispatch(services))
    cancel = f"要取消，回复“取消报名 {posting.id}”。"
    if result.status == jobs.NEW_SIGNED:
        return (f"报名成功！岗位：{name}。\n请联系：{posting.contact}，说是在四送助手报的名。\n"
                f"我们也告诉了村里和您家的帮扶干部。{cancel}")
    if result.status == jobs.ALREADY_SIGNED:
        return f"您家已经报名了岗位{name}，不用再报。\n联系：{posting.contact}\n{cancel}"
    if result.status == jobs.NEW_WAITING:
        return (f"岗位{name}已经招满了，已帮您家排上队，现在排第 {result.position} 位。"
                f"有人取消时会按顺序补上，补上了我们告诉您。\n联系：{posting.contact}\n{cancel}")
    return f"您家已经在岗位{name}的排队名单里，现在排第 {result.position} 位。\n{cancel}"


@router.pattern(r"^\s*(?:取消报名|不报名了|退出报名|撤销报名)\s*[:：]?\s*(?:[0-9０-９]{1,9}\s*号?)?\s*[。.!！]?\s*$",
                overrides_state=True)
def cancel(ctx: Context) -> str:
    household = household_of(ctx.session, ctx.openid)
    if household is None:
        return "您的微信还没有绑定家里的信息，没有报名记录。"
    posting_id = _number(ctx.text or "")
    if posting_id is None:
        mine = {pid: s for pid, s in jobs.household_signups(ctx.session, household.id).items()}
        if len(mine) != 1:
            if not mine:
                return "您家现在没有报名的岗位。"
            return "您家报名了几个岗位，请写上编号，比如“取消报名 " + str(min(mine)) + "”。"
        posting_id = next(iter(mine))
    result = jobs.cancel_signup(ctx.session, posting_id, household)
    if not result.cancelled or result.posting is None:
        return f"您家没有报名编号为 {posting_id} 的岗位，不用取消。"
    posting, services = result.posting, ctx.services
    markdown = "\n".join(["### 住户取消了岗位报名", f"> 岗位：{posting.title}（编号 {posting.id}）",
                          f"> 住户：{mask_name(household.head_name)}（户编号 {household.number}）"])
    notice = notify(ctx.session, services, markdown, household=household)
    ctx.after_commit(lambda: notice.dispatch(services))
    if result.promoted is not None:
        for effect in announce_promotion(ctx.session, services, posting, result.promoted):
            ctx.after_commit(effect)
    return f"已取消岗位“{posting.title}”（编号 {posting.id}）的报名。想再报，回复“报名 {posting.id}”。"


# -- preferences ---------------------------------------------------------------------------------


@router.keyword("退订岗位", "不要岗位", "不要推送岗位", "不再推送岗位", "取消订阅岗位", "岗位退订", overrides_state=True)
def opt_out(ctx: Context) -> str:
    household = household_of(ctx.session, ctx.openid)
    if household is None:
        return "您的微信还没有绑定家里的信息，我们不会给您推送岗位。"
    pushes.set_opt_out(ctx.session, household.id, jobs.KIND, True, ctx.openid)
    return "好的，以后不再给您家推送岗位信息。想看岗位时回复“岗位”；想重新接收，回复“订阅岗位”。"


@router.keyword("订阅岗位", "接收岗位", "推送岗位", "岗位订阅", "恢复岗位推送", overrides_state=True)
def opt_in(ctx: Context) -> str:
    household = household_of(ctx.session, ctx.openid)
    if household is None:
        return NOT_BOUND + "\n绑定好了，村里有合适的岗位会推送给您。"
    pushes.set_opt_out(ctx.session, household.id, jobs.KIND, False)
    return "好的，以后有合适的岗位会推送给您家。不想收时回复“退订岗位”。"
