"""送岗位: every operation on job postings and sign-ups, one implementation each.

The CLI (``bot/jobs_cli.py``), the chat (``handlers/jobs.py``) and later the
console's 岗位 page all call these functions; none of them writes a posting or
a sign-up by itself. Each takes the caller's session (the chat's message unit
of work, the CLI's own), an optional ``scope`` (``storage.scope.Scope``; the
CLI runs with ``EVERYTHING``) and an optional ``actor`` (a console user or
``Principal``; None is the command line): changes by people write an audit
row in the same transaction (``job_add``, ``job_import``, ``job_close``,
``job_push``, ``job_outcome``).

Sending a push is ``bot.jobs`` (it needs the services: notices, the queue);
who gets it and the delivery rows are ``storage.pushes``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.clock import iso_local, local
from storage.import_rows import (
    BadValue,
    Col,
    Layout,
    RowError,
    compact,
    nfkc,
    read_layout,
)
from storage.accounts import actor_name, audit
from storage.models.base import utcnow
from storage.models.jobs import (
    CANCELLED,
    CLOSED,
    DRAFT,
    EXPIRED,
    FULL,
    HIRED,
    NO_SHOW,
    OPEN,
    OUTCOME_LABELS,
    POSTING_LABELS,
    REJECTED,
    SIGNED,
    SIGNUP_LABELS,
    WAITING,
    JobPosting,
    JobSignup,
    job_posting_villages,
)
from storage.models.org import Hamlet, Household, Village
from storage.models.pushes import DELIVERED, FAILED, SENT, SKIPPED, UNCONFIRMED, UNREACHABLE, Push, PushDelivery
from storage.pushes import Progress, PushCreated, Targets, candidates, create_push, progress, resolve_villages
from storage.scope import EVERYTHING, OutOfScope, Scope
from storage.sheets import Sheet, SheetError, read_table, text_not_formulas

if TYPE_CHECKING:
    from storage.accounts import Principal
    from storage.models.accounts import User

KIND = "job"  # the push purpose of a posting
OUTCOME_WORDS = {"录用": HIRED, "未录用": REJECTED, "未到岗": NO_SHOW,
                 "hired": HIRED, "rejected": REJECTED, "no_show": NO_SHOW}
VISIBLE = (OPEN, FULL)  # what households see in the chat
MAX_HEADCOUNT = 9999


class JobError(ValueError):
    """A request the cadre (or household) can fix; the message is Chinese and safe to show."""


def today(zone: str = "Asia/Shanghai") -> date:
    """The township's date: a deadline is the last day to sign up on its clock, not UTC's."""
    return date.fromisoformat(local(utcnow(), zone, "%Y-%m-%d"))


def effective_status(posting: JobPosting, on: date) -> str:
    """The status to show and act on: an open or full posting past its deadline is 已截止 already."""
    if posting.status in VISIBLE and posting.deadline is not None and posting.deadline < on:
        return EXPIRED
    return posting.status


# -- input -----------------------------------------------------------------------------------------


@dataclass
class JobInput:
    """A posting as a cadre gives it (CLI options, a row of the import file, later a console form)."""

    title: str
    employer: str
    location: str
    salary: str
    headcount: int | str
    contact: str
    requirements: str = ""
    deadline: date | str | None = None


_LIMITS = {"title": ("岗位名称", 64), "employer": ("用工单位", 64), "location": ("工作地点", 64),
           "salary": ("薪资", 64), "contact": ("联系方式", 128)}


def parse_deadline(value: date | str | None, on: date | None = None) -> date | None:
    """``2026-12-31``, ``2026/12/31``, ``2026.12.31``, ``2026年12月31日``; None for blank. Past dates refused."""
    if value is None or isinstance(value, date):
        parsed = value
    else:
        text = nfkc(value)
        if not text:
            return None
        match = re.fullmatch(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?",
                             text)
        if not match:
            raise BadValue(f"截止日期「{text}」看不懂，请写成 2026-12-31")
        try:
            parsed = date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            raise BadValue(f"截止日期「{text}」不是一个真实的日期") from None
    if parsed is not None and on is not None and parsed < on:
        raise BadValue(f"截止日期 {parsed.isoformat()} 已经过了")
    return parsed


def parse_headcount(value: int | str) -> int:
    text = re.sub(r"\s+", "", nfkc(str(value))).removesuffix("人").removesuffix("名")
    match = re.fullmatch(r"(\d+)(?:\.0+)?", text)
    if not match:
        raise BadValue(f"招聘人数「{nfkc(str(value))}」不是整数")
    number = int(match.group(1))
    if not 1 <= number <= MAX_HEADCOUNT:
        raise BadValue(f"招聘人数「{number}」应在 1–{MAX_HEADCOUNT} 之间")
    return number


def validate(data: JobInput, on: date) -> tuple[dict[str, Any], list[str]]:
    """The posting's clean values and every reason it cannot be saved (all of them, in one go)."""
    values: dict[str, Any] = {}
    reasons: list[str] = []
    for key, (label, limit) in _LIMITS.items():
        text = re.sub(r"\s+", " ", nfkc(str(getattr(data, key) or "")))
        if not text:
            reasons.append(f"{label}是空的")
        elif len(text) > limit:
            reasons.append(f"{label}「{text[:limit]}…」太长（最多 {limit} 个字）")
        values[key] = text
    requirements = nfkc(data.requirements or "")
    if len(requirements) > 500:
        reasons.append("岗位要求太长（最多 500 个字）")
    values["requirements"] = requirements
    try:
        values["headcount"] = parse_headcount(data.headcount)
    except BadValue as exc:
        reasons.append(str(exc))
    try:
        values["deadline"] = parse_deadline(data.deadline, on)
    except BadValue as exc:
        reasons.append(str(exc))
    return values, reasons


def add_posting(session: Session, township_id: int, data: JobInput, *, draft: bool = False,
                actor: "User | Principal | None" = None, scope: Scope = EVERYTHING,
                zone: str = "Asia/Shanghai") -> JobPosting:
    """A new posting, 已发布 (or 草稿 with ``draft``). Raises JobError with every problem at once."""
    scope.check_writable()
    values, reasons = validate(data, today(zone))
    if reasons:
        raise JobError("；".join(reasons) + "。")
    posting = _new_posting(township_id, values, draft, actor_name(actor))
    session.add(posting)
    session.flush()
    audit(session, actor, "job_add", f"岗位 {posting.id}", f"{posting.title}（{posting.employer}）")
    return posting


def _new_posting(township_id: int, values: dict[str, Any], draft: bool, by: str) -> JobPosting:
    now = utcnow()
    return JobPosting(township_id=township_id, status=DRAFT if draft else OPEN, created_by=by, created_at=now,
                      updated_at=now, published_at=None if draft else now, signup_version=0, **values)


# -- import ----------------------------------------------------------------------------------------

JOBS = Layout("jobs", "岗位", (
    Col("title", "岗位名称", ("岗位", "岗位名", "职位", "职位名称", "工种", "招聘岗位"), required=True),
    Col("employer", "用工单位", ("单位", "招聘单位", "企业", "企业名称", "公司", "用人单位", "工作单位"), required=True),
    Col("location", "工作地点", ("地点", "工作地址", "地址", "上班地点")),
    Col("salary", "薪资", ("工资", "薪资待遇", "待遇", "工资待遇", "月薪", "薪酬"), required=True),
    Col("headcount", "招聘人数", ("人数", "需求人数", "用工人数", "招聘数量", "岗位数")),
    Col("contact", "联系方式", ("联系人", "联系电话", "电话", "联系人及电话", "报名电话"), required=True),
    Col("requirements", "岗位要求", ("要求", "任职要求", "招聘条件", "条件")),
    Col("deadline", "截止日期", ("报名截止", "截止时间", "报名截止日期", "截止")),
), anchor="title")


@dataclass
class JobImportReport:
    created: list[int] = field(default_factory=list)  # ids of the new postings
    existing: list[int] = field(default_factory=list)  # rows that repeat a posting still open (not added)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rows: int = 0
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "dry_run": self.dry_run, "rows": self.rows, "created": self.created,
                "existing": self.existing, "errors": [e.to_json() for e in self.errors], "warnings": self.warnings}


def import_postings(session: Session, township_id: int, source: Path | str | bytes, *, filename: str | None = None,
                    dry_run: bool = False, draft: bool = False, actor: "User | Principal | None" = None,
                    scope: Scope = EVERYTHING, zone: str = "Asia/Shanghai") -> JobImportReport:
    """Postings from a CSV/XLSX, validated row by row like the household import: all or nothing.

    Every bad row is reported with the line the cadre sees in Excel; if there
    is one, nothing is written. A row that repeats a posting not closed yet
    (same title, employer, place, pay, contact and deadline), in this file or
    already in the database, is not added again: importing the same list
    twice adds nothing the second time (``existing`` names those postings).
    """
    scope.check_writable()
    report = JobImportReport(dry_run=dry_run)
    try:
        sheets = read_table(source, filename)
    except SheetError as exc:
        report.errors.append(RowError(None, str(exc)))
        return report
    records = _validate_sheets(sheets, report, today(zone))
    if report.errors:
        return report
    report.rows = len(records)
    if dry_run:
        return report
    by = actor_name(actor)
    known = {_same_posting_key(p.__dict__): p.id for p in session.scalars(
        select(JobPosting).where(JobPosting.township_id == township_id, JobPosting.status != CLOSED))}
    for values in records:
        key = _same_posting_key(values)
        if key in known:
            if known[key] not in report.existing and known[key] not in report.created:
                report.existing.append(known[key])
            continue
        posting = _new_posting(township_id, values, draft, by)
        session.add(posting)
        session.flush()
        known[key] = posting.id
        report.created.append(posting.id)
    if not report.created:
        return report
    audit(session, actor, "job_import", f"{len(records)} 个岗位",
           "编号 " + "、".join(str(i) for i in report.created[:50]))
    return report


def _same_posting_key(values: dict[str, Any]) -> tuple[object, ...]:
    """What makes two postings the same opening, whitespace aside."""
    return tuple("".join(str(values.get(k) or "").split()) for k in
                 ("title", "employer", "location", "salary", "contact")) + (values.get("deadline"),)


def _validate_sheets(sheets: Sequence[Sheet], report: JobImportReport, on: date) -> list[dict[str, Any]]:
    tables = []
    for sheet in sheets:
        table = read_layout(sheet, JOBS, report.errors, report.warnings)
        if table is not None:
            tables.append(table)
        elif any(not row.is_blank() for row in sheet.rows):
            report.warnings.append(f"已跳过工作表「{sheet.name}」：前 15 行里没有“岗位名称”列。")
    if not tables:
        if not report.errors:
            report.errors.append(RowError(None, f"找不到表头：前 15 行里没有“岗位名称”列。表头一行应有 {JOBS.labels}"
                                                "（岗位要求、截止日期可以不填）。"))
        return []
    records = []
    for table in tables:
        if not table.complete:
            continue
        for row, cells in table.rows:
            data = JobInput(title=cells.get("title", ""), employer=cells.get("employer", ""),
                            location=cells.get("location", "") or "见岗位要求",
                            salary=cells.get("salary", ""), headcount=cells.get("headcount", "") or "1",
                            contact=cells.get("contact", ""), requirements=cells.get("requirements", ""),
                            deadline=cells.get("deadline") or None)
            values, reasons = validate(data, on)
            if reasons:
                report.errors.append(RowError(row.line, "；".join(reasons) + "。", table.sheet.name))
            else:
                records.append(values)
    if not records and not report.errors:
        report.warnings.append("表头下面没有岗位。")
    return records


# -- reading ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostingView:
    id: int
    title: str
    employer: str
    location: str
    salary: str
    headcount: int
    requirements: str
    contact: str
    deadline: date | None
    status: str  # effective (an expired deadline shows as expired)
    signed: int
    waiting: int
    created_at: datetime
    published_at: datetime | None
    closed_at: datetime | None
    village_ids: tuple[int, ...] = ()

    @property
    def status_label(self) -> str:
        return POSTING_LABELS[self.status]

    @property
    def places_left(self) -> int:
        return max(0, self.headcount - self.signed)

    def to_json(self, zone: str = "Asia/Shanghai") -> dict[str, object]:
        return {"id": self.id, "title": self.title, "employer": self.employer, "location": self.location,
                "salary": self.salary, "headcount": self.headcount, "requirements": self.requirements,
                "contact": self.contact, "deadline": self.deadline.isoformat() if self.deadline else None,
                "status": self.status, "status_label": self.status_label, "signed": self.signed,
                "waiting": self.waiting, "created_at": iso_local(self.created_at, zone),
                "published_at": iso_local(self.published_at, zone), "closed_at": iso_local(self.closed_at, zone)}


def _counts(session: Session, ids: list[int]) -> dict[tuple[int, str], int]:
    if not ids:
        return {}
    rows = session.execute(
        select(JobSignup.posting_id, JobSignup.status, func.count()).where(JobSignup.posting_id.in_(ids))
        .group_by(JobSignup.posting_id, JobSignup.status))
    return {(pid, status): n for pid, status, n in rows}


def _targets(session: Session, ids: list[int]) -> dict[int, tuple[int, ...]]:
    found: dict[int, list[int]] = {}
    if ids:
        for pid, vid in session.execute(select(job_posting_villages.c.posting_id, job_posting_villages.c.village_id)
                                        .where(job_posting_villages.c.posting_id.in_(ids))):
            found.setdefault(pid, []).append(vid)
    return {pid: tuple(v) for pid, v in found.items()}


def _views(session: Session, postings: list[JobPosting], on: date) -> list[PostingView]:
    ids = [p.id for p in postings]
    counts, targets = _counts(session, ids), _targets(session, ids)
    return [PostingView(p.id, p.title, p.employer, p.location, p.salary, p.headcount, p.requirements, p.contact,
                        p.deadline, effective_status(p, on), counts.get((p.id, SIGNED), 0),
                        counts.get((p.id, WAITING), 0), p.created_at, p.published_at, p.closed_at,
                        targets.get(p.id, ())) for p in postings]


def list_postings(session: Session, township_id: int, *, statuses: Sequence[str] | None = None,
                  zone: str = "Asia/Shanghai") -> list[PostingView]:
    """Postings, newest first; ``statuses`` filters on the effective status (deadlines applied)."""
    postings = list(session.scalars(select(JobPosting).where(JobPosting.township_id == township_id)
                                    .order_by(JobPosting.id.desc())))
    views = _views(session, postings, today(zone))
    return [v for v in views if statuses is None or v.status in statuses]


def posting_view(session: Session, township_id: int, posting_id: int,
                 zone: str = "Asia/Shanghai") -> PostingView | None:
    posting = session.get(JobPosting, posting_id)
    if posting is None or posting.township_id != township_id:
        return None
    return _views(session, [posting], today(zone))[0]


def open_postings_for(session: Session, township_id: int, village_id: int | None,
                      zone: str = "Asia/Shanghai") -> list[PostingView]:
    """What a household sees in the chat: open and full postings, those pushed to its village first."""
    views = list_postings(session, township_id, statuses=VISIBLE, zone=zone)
    return sorted(views, key=lambda v: (village_id not in v.village_ids, v.status != OPEN, -v.id))


def _posting(session: Session, township_id: int, posting_id: int) -> JobPosting:
    posting = session.get(JobPosting, posting_id)
    if posting is None or posting.township_id != township_id:
        raise JobError(f"没有编号为 {posting_id} 的岗位。")
    return posting


# -- status changes --------------------------------------------------------------------------------


def close_posting(session: Session, township_id: int, posting_id: int, *, actor: "User | Principal | None" = None,
                  scope: Scope = EVERYTHING) -> JobPosting:
    """已关闭: gone from the chat, sign-ups refused, rows of a push still waiting are not sent.

    The township's accounts close any posting; a village or area account only
    one it published itself (a posting may serve the whole township).
    """
    scope.check_writable()
    posting = _posting(session, township_id, posting_id)
    if not scope.everything and posting.created_by != actor_name(actor):
        raise OutOfScope("这个岗位不是您发布的，只有发布的人或镇管理员可以关闭。")
    if posting.status == CLOSED:
        raise JobError(f"岗位 {posting_id} 已经关闭了。")
    posting.status, posting.closed_at, posting.updated_at = CLOSED, utcnow(), utcnow()
    audit(session, actor, "job_close", f"岗位 {posting.id}", posting.title)
    return posting


def publish_posting(session: Session, posting: JobPosting) -> bool:
    """A draft becomes 已发布 (pushing a draft publishes it); True if it was a draft."""
    if posting.status != DRAFT:
        return False
    posting.status, posting.published_at, posting.updated_at = OPEN, utcnow(), utcnow()
    return True


def expire_due(session: Session, zone: str = "Asia/Shanghai") -> int:
    """Postings past their deadline become 已截止 (the sweeper, once a minute); returns how many."""
    result = session.execute(
        update(JobPosting).where(JobPosting.status.in_(VISIBLE), JobPosting.deadline.is_not(None),
                                 JobPosting.deadline < today(zone))
        .values(status=EXPIRED, closed_at=utcnow(), updated_at=utcnow()).execution_options(synchronize_session=False))
    return int(result.rowcount or 0)


# -- pushing ---------------------------------------------------------------------------------------


def create_job_push(session: Session, township_id: int, posting_id: int, targets: Targets, *,
                    actor: "User | Principal | None" = None, scope: Scope = EVERYTHING,
                    zone: str = "Asia/Shanghai") -> tuple[JobPosting, PushCreated]:
    """The push row and its delivery rows for a posting, in ``session`` (sending is ``bot.jobs``).

    A draft is published by pushing it; a closed, expired or full posting is
    not pushed. Only villages the account covers may be targeted.
    """
    scope.check_writable()
    posting = _posting(session, township_id, posting_id)
    status = effective_status(posting, today(zone))
    if status in (CLOSED, EXPIRED):
        raise JobError(f"岗位 {posting_id} {POSTING_LABELS[status]}，不能推送。")
    if status == FULL:
        raise JobError(f"岗位 {posting_id} 已招满（{posting.headcount} 人），不再推送。")
    villages = resolve_villages(session, township_id, targets)
    if villages is None and not scope.everything:
        raise OutOfScope("只有镇管理员可以推送给全镇。")
    for village in villages or []:
        if not scope.covers_village(village.id):
            raise OutOfScope(f"{village.name}不在您负责的范围内。")
    publish_posting(session, posting)
    found = candidates(session, township_id, [v.id for v in villages] if villages is not None else None,
                       kind=KIND, ref_id=posting.id, labour_only=targets.labour_only)
    created = create_push(session, kind=KIND, ref_id=posting.id, targets=targets, found=found,
                          actor=actor_name(actor), user_id=getattr(actor, "id", None))
    village_ids = [v.id for v in villages] if villages is not None else list(session.scalars(
        select(Village.id).where(Village.township_id == township_id)))
    known = set(_targets(session, [posting.id]).get(posting.id, ()))
    new = [vid for vid in village_ids if vid not in known]
    if new:
        session.execute(job_posting_villages.insert(), [{"posting_id": posting.id, "village_id": v} for v in new])
    audit(session, actor, "job_push", f"岗位 {posting.id}",
           f"推送 {created.push.id}：{targets.describe()}，{created.recipients} 人")
    return posting, created


def push_progress(session: Session, township_id: int, push_id: int, *, scope: Scope = EVERYTHING,
                  user_id: int | None = None) -> Progress | None:
    """A job push's progress (None: no such push of this township's postings).

    Counts only, but they still say how many followers a village has: the
    township's accounts see every push; others a push they made, or one whose
    every recipient is a household they see in full (a helper, who sees only
    their own households, not a whole village's counts). OutOfScope otherwise.
    """
    state = progress(session, push_id)
    if state is None or state.kind != KIND:
        return None
    posting = session.get(JobPosting, state.ref_id)
    if posting is None or posting.township_id != township_id:
        return None
    if not _may_see_push(session, push_id, scope, user_id):
        raise OutOfScope("这次推送包括您负责范围以外的村。")
    return state


def _may_see_push(session: Session, push_id: int, scope: Scope, user_id: int | None) -> bool:
    if scope.everything:
        return True
    push = session.get(Push, push_id)
    if push is not None and user_id is not None and push.user_id == user_id:
        return True
    outside = session.scalar(select(func.count()).select_from(PushDelivery).where(
        PushDelivery.push_id == push_id, ~_visible_delivery(scope)))
    return not outside


def _visible_delivery(scope: Scope) -> Any:
    """A WHERE clause on ``PushDelivery``: rows of households this account sees."""
    return PushDelivery.household_id.in_(select(Household.id).where(scope.households()))


def pushes_of(session: Session, township_id: int, posting_id: int, *, scope: Scope = EVERYTHING,
              user_id: int | None = None) -> list[tuple[Push, Progress]]:
    """A posting's pushes this account may follow (newest first), each with its progress."""
    _posting(session, township_id, posting_id)
    found = []
    for push in session.scalars(select(Push).where(Push.kind == KIND, Push.ref_id == posting_id)
                                .order_by(Push.id.desc())):
        if _may_see_push(session, push.id, scope, user_id):
            state = progress(session, push.id)
            if state is not None:
                found.append((push, state))
    return found


# -- sign-ups --------------------------------------------------------------------------------------

# What signing up did (SignupResult.status).
NEW_SIGNED, NEW_WAITING, ALREADY_SIGNED, ALREADY_WAITING, NOT_OPEN, NO_SUCH = (
    "new_signed", "new_waiting", "already_signed", "already_waiting", "not_open", "no_such")


@dataclass
class SignupResult:
    status: str
    posting: JobPosting | None = None
    signup: JobSignup | None = None
    effective: str | None = None  # the posting's status when it is not open
    position: int = 0  # in the waiting list (1 = next)


def _lock_posting(session: Session, posting_id: int) -> None:
    """The first write of a sign-up change: concurrent changes to one posting queue here.

    On PostgreSQL it takes the posting's row lock until commit; on SQLite the
    process's writer lock (``storage.db``). Counting places after it is exact.
    """
    session.execute(update(JobPosting).where(JobPosting.id == posting_id)
                    .values(signup_version=JobPosting.signup_version + 1).execution_options(synchronize_session=False))


def signup(session: Session, posting_id: int, household: Household, *, openid: str | None = None,
           via: str = "chat", zone: str = "Asia/Shanghai") -> SignupResult:
    """One sign-up per household and posting: a repeat, a retry or another member finds the first.

    A posting with places left gets a confirmed sign-up; a full one puts the
    household on its waiting list (and says which place). A withdrawn sign-up
    is renewed (at the back of the queue).
    """
    posting = session.get(JobPosting, posting_id)
    if posting is None or posting.township_id != household.township_id or posting.status == DRAFT:
        return SignupResult(NO_SUCH)
    status = effective_status(posting, today(zone))
    if status not in VISIBLE:
        return SignupResult(NOT_OPEN, posting, effective=status)
    _lock_posting(session, posting_id)
    existing = session.scalar(select(JobSignup).where(JobSignup.posting_id == posting_id,
                                                      JobSignup.household_id == household.id))
    if existing is not None and existing.status == SIGNED:
        return SignupResult(ALREADY_SIGNED, posting, existing)
    if existing is not None and existing.status == WAITING:
        return SignupResult(ALREADY_WAITING, posting, existing, position=_position(session, existing))
    signed = _signed_count(session, posting_id)
    new_status = SIGNED if signed < posting.headcount else WAITING
    now = utcnow()
    if existing is None:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        session.execute(dialect.insert(JobSignup).values(
            posting_id=posting_id, household_id=household.id, openid=openid, via=via, status=new_status,
            created_at=now, updated_at=now).on_conflict_do_nothing(index_elements=["posting_id", "household_id"]))
        existing = session.scalar(select(JobSignup).where(JobSignup.posting_id == posting_id,
                                                          JobSignup.household_id == household.id))
        assert existing is not None
    else:  # withdrawn before: signing up again joins at the back
        existing.status, existing.openid, existing.via = new_status, openid, via
        existing.created_at = existing.updated_at = now
        existing.cancelled_at = None
        existing.outcome = existing.outcome_at = existing.outcome_by = None
    session.flush()
    if new_status == SIGNED and signed + 1 >= posting.headcount and posting.status == OPEN:
        posting.status, posting.updated_at = FULL, now
    if new_status == SIGNED:
        return SignupResult(NEW_SIGNED, posting, existing)
    return SignupResult(NEW_WAITING, posting, existing, position=_position(session, existing))


def _signed_count(session: Session, posting_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(JobSignup)
                              .where(JobSignup.posting_id == posting_id, JobSignup.status == SIGNED)) or 0)


def _position(session: Session, signup_row: JobSignup) -> int:
    ahead = session.scalar(select(func.count()).select_from(JobSignup).where(
        JobSignup.posting_id == signup_row.posting_id, JobSignup.status == WAITING,
        (JobSignup.created_at < signup_row.created_at)
        | and_(JobSignup.created_at == signup_row.created_at, JobSignup.id < signup_row.id)))
    return int(ahead or 0) + 1


@dataclass
class CancelResult:
    cancelled: bool
    posting: JobPosting | None = None
    was: str | None = None
    promoted: JobSignup | None = None  # the first of the waiting list, who now has the place


def cancel_signup(session: Session, posting_id: int, household: Household) -> CancelResult:
    """取消报名: the place goes to the first household waiting (who is told by the caller)."""
    posting = session.get(JobPosting, posting_id)
    if posting is None or posting.township_id != household.township_id:
        return CancelResult(False)
    _lock_posting(session, posting_id)
    row = session.scalar(select(JobSignup).where(JobSignup.posting_id == posting_id,
                                                 JobSignup.household_id == household.id,
                                                 JobSignup.status.in_((SIGNED, WAITING))))
    if row is None:
        return CancelResult(False, posting)
    was, now = row.status, utcnow()
    row.status, row.cancelled_at, row.updated_at = CANCELLED, now, now
    session.flush()
    promoted = None
    if was == SIGNED:
        promoted = session.scalar(select(JobSignup).where(JobSignup.posting_id == posting_id,
                                                          JobSignup.status == WAITING)
                                  .order_by(JobSignup.created_at, JobSignup.id).limit(1))
        if promoted is not None:
            promoted.status, promoted.updated_at = SIGNED, now
        elif posting.status == FULL:
            posting.status, posting.updated_at = OPEN, now
    return CancelResult(True, posting, was, promoted)


def record_outcome(session: Session, township_id: int, posting_id: int, number: str, outcome: str, *,
                   actor: "User | Principal | None" = None, scope: Scope = EVERYTHING) -> JobSignup:
    """录用 / 未录用 / 未到岗 for a household that signed up (a household not signed up is an error)."""
    scope.check_writable()
    key = OUTCOME_WORDS.get(nfkc(outcome))
    if key is None:
        raise JobError(f"结果只能是 录用、未录用 或 未到岗，这里是「{outcome}」。")
    posting = _posting(session, township_id, posting_id)
    household = session.scalar(select(Household).where(Household.township_id == township_id,
                                                       Household.number == compact(number)))
    if household is None:
        raise JobError(f"没有户编号为 {number} 的户。")
    scope.check_household(household)
    row = session.scalar(select(JobSignup).where(JobSignup.posting_id == posting.id,
                                                 JobSignup.household_id == household.id))
    if row is None or row.status == CANCELLED:
        raise JobError(f"户 {household.number} 没有报名岗位 {posting.id}（或已取消报名），不能记录结果。")
    row.outcome, row.outcome_at, row.outcome_by = key, utcnow(), actor_name(actor)
    row.updated_at = utcnow()
    audit(session, actor, "job_outcome", f"岗位 {posting.id} 户 {household.number}", OUTCOME_LABELS[key])
    return row


@dataclass(frozen=True)
class SignupView:
    job: int
    number: str
    head_name: str
    village: str
    hamlet: str | None
    phone: str | None
    status: str
    position: int | None
    via: str
    signed_at: datetime
    outcome: str | None
    outcome_at: datetime | None

    def to_json(self, zone: str = "Asia/Shanghai") -> dict[str, object]:
        return {"job": self.job, "number": self.number, "head_name": self.head_name, "village": self.village,
                "hamlet": self.hamlet, "phone": self.phone, "status": self.status,
                "status_label": SIGNUP_LABELS[self.status], "position": self.position, "via": self.via,
                "signed_at": iso_local(self.signed_at, zone), "outcome": self.outcome,
                "outcome_label": OUTCOME_LABELS.get(self.outcome or ""), "outcome_at": iso_local(self.outcome_at, zone)}


def signups_of(session: Session, township_id: int, posting_id: int, *, scope: Scope = EVERYTHING,
               include_cancelled: bool = False) -> list[SignupView]:
    """A posting's sign-ups (the households this account may see): confirmed first, then the queue."""
    posting = _posting(session, township_id, posting_id)
    query = (select(JobSignup, Household, Village.name, Hamlet.name)
             .join(Household, Household.id == JobSignup.household_id)
             .join(Village, Village.id == Household.village_id)
             .outerjoin(Hamlet, Hamlet.id == Household.hamlet_id)
             .where(JobSignup.posting_id == posting.id, scope.households())
             .order_by(JobSignup.created_at, JobSignup.id))
    if not include_cancelled:
        query = query.where(JobSignup.status != CANCELLED)
    views, queue = [], 0
    for row, household, village, hamlet in session.execute(query):
        position = None
        if row.status == WAITING:
            queue += 1
            position = queue
        views.append(SignupView(posting.id, household.number, household.head_name, village, hamlet, household.phone,
                                row.status, position, row.via, row.created_at, row.outcome, row.outcome_at))
    order = {SIGNED: 0, WAITING: 1, CANCELLED: 2}
    return sorted(views, key=lambda v: order[v.status])


def household_signups(session: Session, household_id: int) -> dict[int, str]:
    """posting id → sign-up status, for the chat's list (已报名 / 排队中)."""
    return dict(session.execute(select(JobSignup.posting_id, JobSignup.status)
                                .where(JobSignup.household_id == household_id, JobSignup.status != CANCELLED)).all())


# -- the funnel ------------------------------------------------------------------------------------


@dataclass
class FunnelRow:
    job: int
    title: str
    village: str | None  # None: the posting's total
    pushed: int = 0  # delivery rows (not skipped)
    delivered: int = 0  # accepted by WeChat (custom) or receipt success / awaiting receipt (template)
    unconfirmed: int = 0
    failed: int = 0
    signed_up: int = 0  # confirmed places + waiting list
    waiting: int = 0
    hired: int = 0
    rejected: int = 0
    no_show: int = 0

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"job": self.job, "title": self.title}
        if self.village is not None:
            data["village"] = self.village
        data.update(pushed=self.pushed, delivered=self.delivered, signed_up=self.signed_up, hired=self.hired,
                    waiting=self.waiting, rejected=self.rejected, no_show=self.no_show,
                    unconfirmed=self.unconfirmed, failed=self.failed)
        return data


def funnel(session: Session, township_id: int, posting_id: int | None = None, *, by_village: bool = False,
           scope: Scope = EVERYTHING) -> list[FunnelRow]:
    """pushed → delivered → signed up → hired, per posting (and per village with ``by_village``).

    Deliveries count in the village the household was in when pushed; sign-ups
    and outcomes in the household's village. An account scoped to villages
    sees only theirs (and totals over them); a helper only their own households.
    """
    query = select(JobPosting).where(JobPosting.township_id == township_id).order_by(JobPosting.id)
    if posting_id is not None:
        _posting(session, township_id, posting_id)
        query = query.where(JobPosting.id == posting_id)
    postings = list(session.scalars(query))
    ids = [p.id for p in postings]
    names = dict(session.execute(select(Village.id, Village.name).where(Village.township_id == township_id)).all())
    rows: dict[tuple[int, int | None], FunnelRow] = {}
    titles = {p.id: p.title for p in postings}

    def row(job: int, village_id: int | None) -> FunnelRow:
        key = (job, village_id if by_village else None)
        found = rows.get(key)
        if found is None:
            name = (names.get(village_id) or "（未知村）") if by_village else None
            found = rows[key] = FunnelRow(job, titles[job], name)
        return found

    if not ids:
        return []
    deliveries_query = (
        select(PushDelivery.ref_id, PushDelivery.village_id, PushDelivery.status, func.count())
        .where(PushDelivery.kind == KIND, PushDelivery.ref_id.in_(ids))
        .group_by(PushDelivery.ref_id, PushDelivery.village_id, PushDelivery.status))
    if not scope.everything:
        deliveries_query = deliveries_query.where(_visible_delivery(scope))
    for job, village_id, status, n in session.execute(deliveries_query):
        if status == SKIPPED:
            continue
        target = row(job, village_id)
        target.pushed += n
        if status in (SENT, DELIVERED):
            target.delivered += n
        elif status == UNCONFIRMED:
            target.unconfirmed += n
        elif status in (FAILED, UNREACHABLE):
            target.failed += n
    signups = session.execute(
        select(JobSignup.posting_id, Household.village_id, JobSignup.status, JobSignup.outcome, func.count())
        .join(Household, Household.id == JobSignup.household_id)
        .where(JobSignup.posting_id.in_(ids), JobSignup.status != CANCELLED, scope.households())
        .group_by(JobSignup.posting_id, Household.village_id, JobSignup.status, JobSignup.outcome))
    for job, village_id, status, outcome, n in signups:
        target = row(job, village_id)
        target.signed_up += n
        if status == WAITING:
            target.waiting += n
        if outcome == HIRED:
            target.hired += n
        elif outcome == REJECTED:
            target.rejected += n
        elif outcome == NO_SHOW:
            target.no_show += n
    if not by_village:
        for job in ids:
            row(job, None)
    return sorted(rows.values(), key=lambda r: (r.job, r.village or ""))


REPORT_COLUMNS = (("job", "岗位编号"), ("title", "岗位名称"), ("village", "村"), ("pushed", "推送"),
                  ("delivered", "送达"), ("signed_up", "报名"), ("waiting", "其中排队"), ("hired", "录用"),
                  ("rejected", "未录用"), ("no_show", "未到岗"), ("unconfirmed", "待确认"), ("failed", "失败"))


def export_xlsx(path: Path, rows: list[FunnelRow], signups: list[SignupView] | None = None, *,
                title: str = "送岗位统计", zone: str = "Asia/Shanghai") -> Path:
    """The funnel as an Excel workbook (a 统计 sheet, and a 报名名单 sheet when sign-ups are given)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = "统计"
    columns = [(k, label) for k, label in REPORT_COLUMNS if k != "village" or any(r.village for r in rows)]
    sheet.append([title])
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.append([f"导出时间：{local(utcnow(), zone)}"])
    sheet.append([label for _, label in columns])
    for cell in sheet[3]:
        cell.font = Font(bold=True)
    for r in rows:
        data = r.to_json()
        sheet.append([data.get(key, "") if key != "village" else (r.village or "") for key, _ in columns])
    for index, (key, _) in enumerate(columns, 1):
        sheet.column_dimensions[sheet.cell(3, index).column_letter].width = 24 if key == "title" else 10
    if signups:
        names = book.create_sheet("报名名单")
        names.append(["岗位编号", "户编号", "户主", "村", "组", "电话", "状态", "排队位次", "报名时间", "结果"])
        for cell in names[1]:
            cell.font = Font(bold=True)
        for s in signups:
            names.append([s.job, s.number, s.head_name, s.village, s.hamlet or "", s.phone or "",
                          SIGNUP_LABELS[s.status], s.position or "", local(s.signed_at, zone),
                          OUTCOME_LABELS.get(s.outcome or "", "")])
    path.parent.mkdir(parents=True, exist_ok=True)
    text_not_formulas(book)
    book.save(path)
    return path
