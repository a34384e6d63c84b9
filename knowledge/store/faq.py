"""FAQ pairs cadres maintain: add, list, remove, and promote an unanswered question.

Promoting answers everyone who asked the same question while it waited, so the
caller gets back their openids to send the answer to.

A promotion refuses text with a phone or ID number unless the cadre says
``allow_contact`` (``--allow-contact``); see :func:`promote_unanswered`.

What is masked (``storage.privacy.mask_text``) and what is not: an FAQ is shown to
every household whose question matches it, so its *question* - a household's
words when promoted, and at best a paraphrase of them otherwise - is always
stored masked. The *answer* is stored as the cadre wrote it. It is the cadre's
deliberate text for the public: an office landline, the village helper's or a
hotline's mobile number are what many answers are for, and masking them would
make the answer useless; landlines are never masked anyway. The one risk left
- a cadre pasting a household's own number into an answer - is a mistake of
the kind no pattern can tell from a helper's number, and the cadre sees the
answer as stored in ``sisong faq list``.

Who may change FAQs: an FAQ is read by every household of the township, so
adding, editing, removing and promoting are for 镇管理员 (or the command line,
``actor=None``); other console accounts get ``PermissionError`` (403), 督查
``ReadOnly``. Each change writes its audit row (``faq.add``, ``faq.update``,
``faq.remove``, ``faq.promote``) in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update

from storage.privacy import mask_text
from knowledge.search.faq_match import DICE_MIN, core, similarity
from knowledge.store.state import bump_generation
from knowledge.store.unanswered import MAX_REPLY_CHARS, unstorable
from storage.accounts import audit
from storage.db import Database
from storage.models.accounts import ADMIN
from storage.models.base import utcnow
from storage.models.knowledge import KbFaq, KbUnanswered
from storage.scope import OutOfScope

if TYPE_CHECKING:
    from storage.accounts import Principal

MAX_ANSWER_BYTES = 1800  # one customer-service message (2048 bytes) with our opening line
ADMINS_ONLY = "常见问题全镇住户都看得到，只有镇管理员能添加、修改、删除或转为常见问题。"


class FaqError(Exception):
    """A FAQ operation that cannot be done; the message is for the cadre."""


class FaqNotFound(FaqError):
    """No FAQ (or, when promoting, no queued question) with this number."""


def answer_message(answer: str) -> str:
    """What everyone who asked a promoted question receives (the command line and the console send the same)."""
    return f"您之前问的问题，工作人员回复如下：\n{answer}"


def check_publisher(actor: "Principal | None") -> None:
    """Refuse a console account that may not publish to every household (see the module docstring)."""
    if actor is None:
        return
    actor.scope.check_writable()
    if actor.role != ADMIN:
        raise OutOfScope(ADMINS_ONLY)


@dataclass(frozen=True)
class FaqRecord:
    id: int
    question: str
    answer: str
    from_unanswered_id: int | None


def _check(question: str, answer: str) -> tuple[str, str]:
    """The question masked (households see it) and both checked; the answer is kept as written."""
    question, answer = mask_text((question or "").strip()), (answer or "").strip()
    if unstorable(question) or unstorable(answer):
        raise FaqError("问题或答案里有无法保存的字符，请删掉后再试")
    if not core(question):
        raise FaqError("问题不能为空")
    if not answer:
        raise FaqError("答案不能为空")
    if len(answer) > MAX_REPLY_CHARS or len(answer.encode("utf-8")) > MAX_ANSWER_BYTES:
        raise FaqError(f"答案太长（微信单条消息约{MAX_REPLY_CHARS}个汉字以内），请精简后再添加")
    return question, answer


def add_faq(db: Database, question: str, answer: str, from_unanswered_id: int | None = None, *,
            actor: "Principal | None" = None) -> int:
    check_publisher(actor)
    question, answer = _check(question, answer)
    with db.session() as session:
        row = KbFaq(question=question, answer=answer, from_unanswered_id=from_unanswered_id)
        session.add(row)
        session.flush()
        bump_generation(session)
        audit(session, actor, "faq.add", f"常见问题 {row.id}", question[:200])
        return row.id


def update_faq(db: Database, faq_id: int, question: str, answer: str, *,
               actor: "Principal | None" = None) -> FaqRecord:
    """Rewrite an FAQ's question and answer (checked and masked as when added); ``FaqNotFound`` if none."""
    check_publisher(actor)
    question, answer = _check(question, answer)
    with db.session() as session:
        row = session.get(KbFaq, faq_id)
        if row is None:
            raise FaqNotFound(f"没有编号为 {faq_id} 的常见问题")
        row.question, row.answer = question, answer
        bump_generation(session)
        audit(session, actor, "faq.update", f"常见问题 {faq_id}", question[:200])
        return FaqRecord(row.id, row.question, row.answer, row.from_unanswered_id)


def list_faqs(db: Database) -> list[FaqRecord]:
    """All FAQs; questions masked again, for entries promoted before the masking knew every format."""
    with db.session() as session:
        rows = session.execute(select(KbFaq).order_by(KbFaq.id)).scalars().all()
        return [FaqRecord(r.id, mask_text(r.question), r.answer, r.from_unanswered_id) for r in rows]


def remove_faq(db: Database, faq_id: int, *, actor: "Principal | None" = None) -> bool:
    """Delete an FAQ; False if there was none (nothing audited then)."""
    check_publisher(actor)
    with db.session() as session:
        question = session.scalar(select(KbFaq.question).where(KbFaq.id == faq_id))
        deleted = session.execute(delete(KbFaq).where(KbFaq.id == faq_id)).rowcount
        if deleted:
            bump_generation(session)
            audit(session, actor, "faq.remove", f"常见问题 {faq_id}", (question or "")[:200])
        return bool(deleted)


def contact_numbers(text: str) -> str | None:
    """``text`` masked if it holds a phone, ID or bank-card number (or an openid), else None."""
    masked = mask_text(text)
    return masked if masked != text else None


def promote_unanswered(db: Database, unanswered_id: int, answer: str, question: str | None = None,
                       allow_contact: bool = False, *, actor: "Principal | None" = None) -> list[str]:
    """Turn an unanswered question into a FAQ; returns the openids that asked it (to send the answer to).

    The FAQ's question is seen by other households, so it goes through ``storage.privacy.mask_text``
    (phone, ID and bank-card numbers, however written), the cadre's rephrasing too; the
    answer is the cadre's and kept as written (see the module docstring). Promoting the same
    item again (say, after sending the answer failed) updates its FAQ instead of adding a
    second one, and returns everyone that FAQ answered so they can be sent it again.

    A question or answer with a phone or ID number in it is refused unless
    ``allow_contact``: a private matter answered in public is the mistake this
    step is most likely to make, and a private reply (``reply_unanswered``) is
    the other way to answer. With ``allow_contact`` the answer keeps its numbers
    (a helper's or hotline's mobile, on purpose) and the question is masked.

    Only 镇管理员 or the command line (``actor`` None) may promote: an FAQ is
    township-wide, whoever's question it was. The audit row (``faq.promote``)
    commits with the FAQ; send :func:`answer_message` to the openids returned.
    """
    check_publisher(actor)
    with db.session() as session:
        item = session.get(KbUnanswered, unanswered_id)
        if item is None:
            raise FaqNotFound(f"找不到编号为 {unanswered_id} 的待答问题")
        raw_question = question if question and question.strip() else item.question
        if not allow_contact:
            for part, text in (("问题", raw_question), ("答案", answer or "")):
                masked = contact_numbers(text)
                if masked is not None:
                    raise FaqError(
                        f"{part}里有电话、身份证或银行卡号码（{masked[:60]}），常见问题所有住户都看得到。"
                        f"只答复提问的这一户请用“私下答复”（命令行：sisong unanswered reply {unanswered_id}）；"
                        "确实要公开（如帮扶干部或热线的电话），请勾选“允许公开号码”（命令行加 --allow-contact）。"
                    )
        question, answer = _check(raw_question, answer)
        faq = session.get(KbFaq, item.faq_id) if item.faq_id is not None else None
        if faq is None:
            faq = KbFaq(question=question, answer=answer, from_unanswered_id=item.id)
            session.add(faq)
            session.flush()
        else:
            faq.question, faq.answer = question, answer
        waiting = session.execute(select(KbUnanswered).where(KbUnanswered.status == "open")).scalars().all()
        same = [w for w in waiting if w.id == item.id or similarity(w.normalized, item.normalized) >= DICE_MIN]
        same += session.execute(select(KbUnanswered).where(KbUnanswered.faq_id == faq.id)).scalars().all()
        if item not in same:
            same.append(item)  # already answered once: answer its asker again
        now = utcnow()
        session.execute(
            update(KbUnanswered).where(KbUnanswered.id.in_([w.id for w in same]))
            .values(status="answered", faq_id=faq.id, answered_at=now)
        )
        bump_generation(session)
        askers = list(dict.fromkeys(w.openid for w in sorted(same, key=lambda w: w.id) if w.openid))
        audit(session, actor, "faq.promote", f"常见问题 {faq.id}",
              f"来自问题 {unanswered_id}，答复 {len(askers)} 位提问的群众：{question[:160]}")
        return askers
