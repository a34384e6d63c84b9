"""Reading the organisation and the households: the queries every part of Sisong shares.

The chat (who is this follower's household and helper?), the CLI and the
console all ask the same questions; they ask them here, and ``list`` /
``show`` read the same views (``HouseholdView``). Writes that belong to
one operation (import, binding) live with that operation.

Every function a person's request reaches takes a ``Scope``
(``storage.scope``): the console passes the account's, the CLI passes
``EVERYTHING``. Filtering here, not in the pages, is what keeps a village
cadre from reading another village's household by guessing its 户编号 in
the API.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import Session

from storage.clock import iso_local
from storage.models.org import Area, Hamlet, Household, HouseholdBinding, Township, Village
from storage.privacy import mask_text
from storage.scope import OutOfScope, Scope


def ensure_township(session: Session, name: str) -> Township:
    """This deployment's township (``SISONG_TOWNSHIP``), created on first use."""
    township = session.scalar(select(Township).where(Township.name == name))
    if township is None:
        township = Township(name=name)
        session.add(township)
        session.flush()
    return township


def household_of(session: Session, openid: str) -> Household | None:
    """The household this follower is bound to, with village, hamlet, helper and team loaded."""
    return session.scalar(
        select(Household).join(HouseholdBinding, HouseholdBinding.household_id == Household.id)
        .where(HouseholdBinding.openid == openid)
    )


def household_by_number(session: Session, township_id: int, number: str) -> Household | None:
    return session.scalar(
        select(Household).where(Household.township_id == township_id, Household.number == number.strip())
    )


def village_by_name(session: Session, township_id: int, name: str) -> Village | None:
    return session.scalar(select(Village).where(Village.township_id == township_id, Village.name == name.strip()))


# -- views for people (CLI, console): what `households list` / `show` print --------------


@dataclass(frozen=True)
class HouseholdView:
    number: str
    head_name: str
    village: str
    area: str | None
    hamlet: str | None
    population: int | None
    labourers: int | None
    work_intent: str | None
    helper_name: str | None
    helper_phone: str | None
    team: str | None
    monitored: bool
    lifted: bool
    phone: str | None
    code_issued: bool
    code_issued_at: datetime | None
    bound_members: int
    created_at: datetime
    updated_at: datetime

    def to_json(self, zone: str = "Asia/Shanghai") -> dict[str, object]:
        """Times as ISO 8601 on the township's clock (``SISONG_TIMEZONE``), with the offset."""
        return {
            "number": self.number,
            "head_name": self.head_name,
            "village": self.village,
            "area": self.area,
            "hamlet": self.hamlet,
            "population": self.population,
            "labourers": self.labourers,
            "work_intent": self.work_intent,
            "helper_name": self.helper_name,
            "helper_phone": self.helper_phone,
            "team": self.team,
            "monitored": self.monitored,
            "lifted": self.lifted,
            "phone": self.phone,
            "code_status": "issued" if self.code_issued else "none",
            "code_issued_at": iso_local(self.code_issued_at, zone),
            "bound_members": self.bound_members,
            "created_at": iso_local(self.created_at, zone),
            "updated_at": iso_local(self.updated_at, zone),
        }


    def shown(self, *, in_list: bool) -> "HouseholdView":
        """The view as the console shows it to an account whose scope includes the household.

        Free text (务工意向) never shows an ID or bank number; a list (many
        households on one screen, or a script's bulk download) also masks
        every phone. A household's own page keeps its phones: the cadre calls them.
        """
        return replace(
            self,
            work_intent=mask_text(self.work_intent) if self.work_intent else self.work_intent,
            phone=mask_phone(self.phone) if in_list else self.phone,
            helper_phone=mask_phone(self.helper_phone) if in_list else self.helper_phone,
        )


def _view(household: Household, bound: int) -> HouseholdView:
    village = household.village
    helper = household.helper
    return HouseholdView(
        number=household.number,
        head_name=household.head_name,
        village=village.name,
        area=village.area.name if village.area else None,
        hamlet=household.hamlet.name if household.hamlet else None,
        population=household.population,
        labourers=household.labourers,
        work_intent=household.work_intent,
        helper_name=helper.name if helper else None,
        helper_phone=(helper.phone or None) if helper else None,
        team=household.team.name if household.team else None,
        monitored=household.monitored,
        lifted=household.lifted,
        phone=household.phone,
        code_issued=household.code is not None,
        code_issued_at=household.code_issued_at,
        bound_members=bound,
        created_at=household.created_at,
        updated_at=household.updated_at,
    )


def _bound_counts(session: Session, household_ids: list[int]) -> dict[int, int]:
    if not household_ids:
        return {}
    rows = session.execute(
        select(HouseholdBinding.household_id, func.count()).where(HouseholdBinding.household_id.in_(household_ids))
        .group_by(HouseholdBinding.household_id)
    )
    return {household_id: count for household_id, count in rows}


def mask_phone(phone: str | None) -> str:
    """A household's phone as lists show it: ``138****5678``, ``0851-***3456``.

    ``mask_text`` leaves landlines alone (they are office numbers in free
    text); in a household list every number is a person's, so it is masked too.
    """
    if not phone:
        return ""
    masked = mask_text(phone)
    if masked != phone:
        return masked
    head, dash, tail = phone.rpartition("-")
    if dash and len(tail) > 4:
        return f"{head}-{'*' * (len(tail) - 4)}{tail[-4:]}"
    return phone[:3] + "*" * max(len(phone) - 7, 0) + phone[-4:] if len(phone) > 7 else "*" * len(phone)


@dataclass(frozen=True)
class HouseholdPage:
    """One page of a search: the households shown and how many matched in all."""

    items: list[HouseholdView]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_clause(q: str) -> ColumnElement[bool] | None:
    """What ``q`` matches: part of a 户编号, 户主姓名, 组, 村 or 联系电话; ``张＊＊`` matches a name's shape.

    Labels and group notices show a 户主 masked (张＊＊), so a cadre holding a
    label can type what it says: each ＊ (or *) stands for one character. A
    caller's number is often all a cadre has after a phone call, so four or
    more digits also match the household's phone (stored as ``13812345678`` or
    ``0851-8123456``).
    """
    text = unicodedata.normalize("NFKC", q or "").strip()
    if not text:
        return None
    if "*" in text:
        pattern = _like(re.sub(r"\s+", "", text)).replace("*", "_")
        return Household.head_name.like(pattern, escape="\\")
    like = f"%{_like(text)}%"
    clauses = [Household.number.ilike(like, escape="\\"), Household.head_name.like(like, escape="\\"),
               Hamlet.name.like(like, escape="\\"), Village.name.like(like, escape="\\")]
    digits = re.sub(r"[\s-]", "", text)
    if len(digits) >= 4 and digits.isdigit():
        clauses.append(func.replace(Household.phone, "-", "").like(f"%{digits}%"))
    return or_(*clauses)


def search_households(
    session: Session,
    township_id: int,
    scope: Scope,
    *,
    village_id: int | None = None,
    q: str | None = None,
    bound: bool | None = None,
    page: int = 1,
    per_page: int | None = None,
) -> HouseholdPage:
    """The households ``scope`` may see, filtered, by village, 组 and 户编号; one page of them.

    ``bound``: True only households with a member bound, False only those with
    none (the "not yet bound" list of the binding page). ``per_page`` None is
    every match on one page (the CLI). Sorting happens here, not in SQL,
    because PostgreSQL and SQLite collate Chinese differently; only the sort
    keys of all matches are read, the page's households afterwards.
    """
    query = (
        select(Household.id, Village.name, Hamlet.name, Household.number)
        .join(Village, Village.id == Household.village_id)
        .outerjoin(Hamlet, Hamlet.id == Household.hamlet_id)
        .where(Household.township_id == township_id, scope.households())
    )
    if village_id is not None:
        query = query.where(Household.village_id == village_id)
    clause = search_clause(q or "")
    if clause is not None:
        query = query.where(clause)
    if bound is not None:
        has_member = exists().where(HouseholdBinding.household_id == Household.id)
        query = query.where(has_member if bound else ~has_member)
    keys = sorted(session.execute(query), key=lambda row: (row[1], row[2] or "", row[3]))
    total = len(keys)
    page = max(page, 1)
    if per_page is not None:
        keys = keys[(page - 1) * per_page: page * per_page]
    ids = [row[0] for row in keys]
    loaded = {h.id: h for h in session.scalars(select(Household).where(Household.id.in_(ids)))} if ids else {}
    counts = _bound_counts(session, ids)
    items = [_view(loaded[i], counts.get(i, 0)) for i in ids]
    return HouseholdPage(items, total, page, per_page or max(total, 1))


def list_households(session: Session, township_id: int, scope: Scope,
                    village_id: int | None = None) -> list[HouseholdView]:
    """Every household ``scope`` may see (or of one village), by village, 组 and 户编号."""
    return search_households(session, township_id, scope, village_id=village_id).items


def visible_village(session: Session, township_id: int, name: str, scope: Scope) -> Village | None:
    """The village called ``name`` if ``scope`` may list it; None if there is none; OutOfScope otherwise."""
    village = village_by_name(session, township_id, unicodedata.normalize("NFKC", name))
    if village is not None and not scope.sees_village(village.id):
        raise OutOfScope(f"{village.name}不在您负责的范围内。")
    return village


def visible_villages(session: Session, township_id: int, scope: Scope) -> list[str]:
    """Names of the villages ``scope`` lists (for a village filter), sorted as people read them."""
    return sorted(session.scalars(select(Village.name).where(Village.township_id == township_id,
                                                             scope.village_rows())))


def find_household(session: Session, township_id: int, number: str, scope: Scope) -> Household | None:
    """The household numbered ``number``: None if there is none, OutOfScope if it is not this account's."""
    household = household_by_number(session, township_id, unicodedata.normalize("NFKC", number or ""))
    if household is not None:
        scope.check_household(household)
    return household


def household_view(session: Session, township_id: int, number: str, scope: Scope) -> HouseholdView | None:
    household = find_household(session, township_id, number, scope)
    if household is None:
        return None
    return _view(household, _bound_counts(session, [household.id]).get(household.id, 0))


# -- one household's page: members, what they asked, hand-overs ----------------------------------

QUESTION_LIMIT = 20
REPLY_CLIP = 300  # a reply can be a whole handbook article; the page shows its start


def _clip(text: str, size: int = REPLY_CLIP) -> str:
    return text if len(text) <= size else text[:size].rstrip() + "…"

# What the chat did with a message, by the handler's module (bot.router.handler_name).
HANDLER_KINDS = {
    "policy_qa": "政策问答",
    "handover": "找人工",
    "helper": "问帮扶责任人",
    "binding": "绑定",
    "welcome": "关注",
    "menu": "菜单",
    "help": "帮助",
    "more": "更多",
    "voice": "语音",
    "too_fast": "发得太快",
    "fallback": "其他",
}


@dataclass(frozen=True)
class Member:
    """A family member's WeChat bound to the household: never the openid in clear."""

    openid: str  # short_openid: enough to tell two members apart
    via: str  # code | qr
    bound_at: datetime
    following: bool

    def to_json(self, zone: str) -> dict[str, object]:
        return {"openid": self.openid, "via": self.via, "bound_at": iso_local(self.bound_at, zone),
                "following": self.following}


@dataclass(frozen=True)
class Asked:
    """A message a member sent, masked, with what the chat did and answered."""

    at: datetime
    member: str  # short openid
    text: str
    kind: str
    reply: str

    def to_json(self, zone: str) -> dict[str, object]:
        return {"at": iso_local(self.at, zone), "member": self.member, "text": self.text, "kind": self.kind,
                "reply": self.reply}


@dataclass(frozen=True)
class HandOver:
    """A question handed to a person (``kb_unanswered``); ``status``/``delivery`` as stored."""

    id: int
    at: datetime
    member: str
    question: str
    status: str
    delivery: str | None
    reply: str | None
    replied_by: str | None
    answered_at: datetime | None
    closed_at: datetime | None


@dataclass(frozen=True)
class HouseholdDetail:
    view: HouseholdView
    members: list[Member] = field(default_factory=list)
    asked: list[Asked] = field(default_factory=list)
    handovers: list[HandOver] = field(default_factory=list)


def household_detail(session: Session, township_id: int, number: str, scope: Scope,
                     limit: int = QUESTION_LIMIT) -> HouseholdDetail | None:
    """Everything a household's page shows, newest first; None if there is no such household.

    Messages and hand-overs are found through the members bound now: what a
    member wrote before unbinding leaves the household's page with them.
    Text is masked again on the way out (it was masked when stored; masking is
    idempotent and may have learnt a format since).
    """
    from storage.models import Follower, KbUnanswered, MessageLog
    from storage.privacy import short_openid

    household = find_household(session, township_id, number, scope)
    if household is None:
        return None
    rows = session.execute(
        select(HouseholdBinding, Follower.subscribed)
        .outerjoin(Follower, Follower.openid == HouseholdBinding.openid)
        .where(HouseholdBinding.household_id == household.id)
        .order_by(HouseholdBinding.bound_at)
    ).all()
    members = [Member(short_openid(b.openid), b.via, b.bound_at, subscribed is not False) for b, subscribed in rows]
    openids = [b.openid for b, _ in rows]
    asked: list[Asked] = []
    handovers: list[HandOver] = []
    if openids:
        messages = session.scalars(
            select(MessageLog)
            .where(MessageLog.openid.in_(openids), MessageLog.direction == "in",
                   MessageLog.msg_type.in_(("text", "voice")), MessageLog.text.is_not(None), MessageLog.text != "")
            .order_by(MessageLog.created_at.desc(), MessageLog.id.desc()).limit(limit)
        )
        for m in messages:
            module = (m.handler or "").split(".", 1)[0]
            asked.append(Asked(m.created_at, short_openid(m.openid), mask_text(m.text or ""),
                               HANDLER_KINDS.get(module, "其他"), _clip(mask_text(m.reply or ""))))
        for u in session.scalars(
            select(KbUnanswered).where(KbUnanswered.openid.in_(openids))
            .order_by(KbUnanswered.created_at.desc(), KbUnanswered.id.desc()).limit(limit)
        ):
            handovers.append(HandOver(u.id, u.created_at, short_openid(u.openid), mask_text(u.question), u.status,
                                      u.delivery, mask_text(u.reply) if u.reply else None, u.replied_by,
                                      u.answered_at, u.closed_at))
    view = _view(household, len(members))
    return HouseholdDetail(view, members, asked, handovers)


# -- binding by village ----------------------------------------------------------------------------

@dataclass(frozen=True)
class VillageBinding:
    """How far binding has got in one village, counting only the households the account sees."""

    village: str
    area: str | None
    households: int
    bound: int
    coded: int  # households with a binding code issued

    @property
    def unbound(self) -> int:
        return self.households - self.bound

    @property
    def share(self) -> float:
        return self.bound / self.households if self.households else 0.0

    def to_json(self) -> dict[str, object]:
        return {"village": self.village, "area": self.area, "households": self.households, "bound": self.bound,
                "unbound": self.unbound, "share": round(self.share, 4), "codes_issued": self.coded}


def binding_status(session: Session, township_id: int, scope: Scope) -> list[VillageBinding]:
    """Per village the account sees: households, households with a member bound, codes issued."""
    villages = session.execute(
        select(Village.id, Village.name, Area.name).outerjoin(Area, Area.id == Village.area_id)
        .where(Village.township_id == township_id, scope.village_rows())
    ).all()
    visible = (Household.township_id == township_id, scope.households())
    totals = dict(session.execute(
        select(Household.village_id, func.count()).where(*visible).group_by(Household.village_id)).all())
    coded = dict(session.execute(
        select(Household.village_id, func.count()).where(*visible, Household.code.is_not(None))
        .group_by(Household.village_id)).all())
    bound = dict(session.execute(
        select(Household.village_id, func.count(func.distinct(Household.id)))
        .join(HouseholdBinding, HouseholdBinding.household_id == Household.id)
        .where(*visible).group_by(Household.village_id)).all())
    rows = [VillageBinding(name, area, int(totals.get(vid, 0)), int(bound.get(vid, 0)), int(coded.get(vid, 0)))
            for vid, name, area in villages]
    return sorted(rows, key=lambda r: (r.area or "", r.village))
