"""Binding a follower's WeChat to a household (and a cadre's to their cadre record).

Why codes and QR scenes look the way they do:

* A **binding code** is 8 digits, first digit not 0 (a spreadsheet would drop
  it), drawn with :mod:`secrets`, unique across households and cadres. Digits
  because the people typing are often elderly on a phone's number pad, and a
  helper reads the code aloud over the phone in Chinese digits; letters would
  mean switching keyboards and telling O from 0. Eight rather than six because
  the code is the only secret: with ~90 million possible codes, a few thousand
  issued and at most ``SISONG_BIND_FAIL_GLOBAL_RATE`` wrong guesses an hour
  account-wide, guessing someone's household stays impractical. Codes are
  printed and accepted in two groups (``4721 8390``).
* A **QR scene** is ``hh_`` and 16 random URL-safe characters: opaque (no 户编号
  in it, nothing to guess) and well within WeChat's 64 characters. The prefix
  tells a household's QR code from a village poster's scene without a query.

Every family member binds with the same code or QR code; a follower belongs to
at most one household (``household_bindings.openid`` is unique) and must
"解绑" before binding another. Reissuing a code (a lost or leaked label)
replaces code and scene at once: the old label stops working, the bindings made
with it stay. Rate limits on wrong codes are applied here when the caller hands
in a limiter (the chat does; a cadre at the console does not need one).

Functions take the caller's session and only flush: the chat commits them with
the message, the CLI with its own unit of work. The WeChat side (tags, QR
codes) is in :mod:`bot.binding`.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.households import household_of, visible_village
from storage.models.base import utcnow
from storage.models.org import Cadre, Household, HouseholdBinding, Township, Village
from storage.privacy import mask_name, short_openid
from storage.scope import EVERYTHING, Scope

if TYPE_CHECKING:
    from storage.accounts import Principal
    from storage.ratelimit import RateLimiter

log = logging.getLogger(__name__)

CODE_LENGTH = 8
SCENE_PREFIX = "hh_"

# Outcomes of a binding attempt (BindResult.status).
BOUND = "bound"  # newly bound to the household
ALREADY = "already"  # this follower was already bound to this household
OTHER_HOUSEHOLD = "other_household"  # bound to another household: 解绑 first
WRONG_CODE = "wrong_code"  # eight digits, but no household or cadre has them
BAD_FORMAT = "bad_format"  # not eight digits (a typo, not a guess: not counted)
LOCKED = "locked"  # this follower had too many wrong codes this hour
BUSY = "busy"  # too many wrong codes account-wide this hour
UNKNOWN_SCENE = "unknown_scene"  # a household QR code that was reissued
CADRE_BOUND = "cadre_bound"
CADRE_ALREADY = "cadre_already"
CADRE_TAKEN = "cadre_taken"  # the cadre code is bound to another WeChat

_DIGITS = str.maketrans(
    {**{chr(0xFF10 + i): str(i) for i in range(10)}, **dict(zip("〇零一二三四五六七八九幺两", "0012345678912"))}
)
_SEPARATORS = frozenset(" \u3000\t-－—_.。,，:：!！")


class BindingError(Exception):
    """A CLI/console request that cannot be done (unknown 户编号 or village); the message is Chinese."""


@dataclass(frozen=True)
class IssuedCode:
    """A code handed out by :func:`issue_codes` or :func:`reissue`."""

    household: str  # 户编号
    code: str
    household_id: int

    def as_json(self) -> dict[str, str]:
        return {"household": self.household, "code": self.code}


@dataclass(frozen=True)
class IssuedCadreCode:
    cadre_id: int
    name: str
    phone: str
    code: str


@dataclass
class BindResult:
    status: str
    household: Household | None = None
    cadre: Cadre | None = None
    # After WRONG_CODE: whether that was the follower's last allowed try this hour.
    locked_now: bool = False

    @property
    def ok(self) -> bool:
        return self.status in (BOUND, ALREADY, CADRE_BOUND, CADRE_ALREADY)

    @property
    def label(self) -> str:
        """How the household is named to people: "长岭村 张＊＊家" (never the name in clear)."""
        return household_label(self.household) if self.household is not None else ""


@dataclass
class UnbindResult:
    household: Household | None = None  # the household the follower left, if any
    cadre: Cadre | None = None  # or the cadre record, when there was no household binding
    tag_id: int | None = None  # the village tag to take off the follower (after commit)

    @property
    def ok(self) -> bool:
        return self.household is not None or self.cadre is not None


def household_label(household: Household) -> str:
    return f"{household.village.name} {mask_name(household.head_name)}家"


def format_code(code: str) -> str:
    """``47218390`` -> ``4721 8390``: two groups read aloud and typed more easily."""
    return f"{code[:4]} {code[4:]}" if len(code) == CODE_LENGTH else code


def mask_code(code: str | None) -> str:
    """A code as logs may show it: its length and last two digits."""
    if not code:
        return "-"
    return "*" * max(len(code) - 2, 0) + code[-2:]


def normalise_code(text: str) -> str | None:
    """Eight ASCII digits from what a follower typed or said, or None if it is not a code.

    Full-width digits, dictated digits (一二三…, 幺, 两) and separators (spaces,
    dashes, a colon after "绑定码") are accepted.
    """
    digits = "".join(ch for ch in text.translate(_DIGITS) if ch not in _SEPARATORS)
    if len(digits) != CODE_LENGTH or not digits.isascii() or not digits.isdigit():
        return None
    return digits


def _new_code(taken: set[str]) -> str:
    while True:
        code = str(secrets.randbelow(9 * 10 ** (CODE_LENGTH - 1)) + 10 ** (CODE_LENGTH - 1))
        # "11112222" or "12121212" look made up and invite a typo'd guess to hit; skip them.
        if code not in taken and len(set(code)) >= 4:
            taken.add(code)
            return code


def new_scene() -> str:
    return SCENE_PREFIX + secrets.token_urlsafe(12)


def is_household_scene(scene: str | None) -> bool:
    return bool(scene) and scene.startswith(SCENE_PREFIX)  # type: ignore[union-attr]


def _taken_codes(session: Session) -> set[str]:
    """Every code in use: household and cadre codes share one space (a code finds one record)."""
    taken = set(session.scalars(select(Household.code).where(Household.code.is_not(None))))
    taken.update(session.scalars(select(Cadre.code).where(Cadre.code.is_not(None))))
    return taken  # type: ignore[return-value]


# -- issuing --------------------------------------------------------------------------------


def find_village(session: Session, township: Township, name: str, scope: Scope = EVERYTHING) -> Village:
    """The village by name (BindingError if there is none; OutOfScope if the account may not see it)."""
    village = visible_village(session, township.id, name, scope)
    if village is None:
        raise BindingError(f"没有这个村：{name}")
    return village


def households_in_scope(session: Session, township: Township, village: str | None = None,
                        scope: Scope = EVERYTHING) -> list[Household]:
    """The households ``scope`` sees (of one village, by name, if given), in label order: village, 组, 户编号."""
    query = select(Household).join(Village, Village.id == Household.village_id).where(
        Household.township_id == township.id, scope.households()
    )
    if village is not None:
        query = query.where(Household.village_id == find_village(session, township, village, scope).id)
    households = list(session.scalars(query))
    households.sort(key=lambda h: (h.village.name, h.hamlet.name if h.hamlet else "", h.number))
    return households


def issue_codes(session: Session, township: Township, village: str | None = None, *,
                scope: Scope = EVERYTHING, actor: "Principal | None" = None) -> list[IssuedCode]:
    """Give a code to every household (of ``village``, by name) ``scope`` sees that has none.

    Existing codes stay. Handing out codes is an act on the households, so a
    read-only account is refused and each run that issued any is audited
    (how many, which village; never the codes).
    """
    from storage.accounts import audit

    scope.check_writable()
    taken = _taken_codes(session)
    issued: list[IssuedCode] = []
    now = utcnow()
    for household in households_in_scope(session, township, village, scope):
        if household.code:
            continue
        household.code = _new_code(taken)
        household.code_issued_at = now
        household.updated_at = now
        issued.append(IssuedCode(household.number, household.code, household.id))
    session.flush()
    if issued:
        audit(session, actor, "households.codes", village or "全部", f"新发绑定码 {len(issued)} 户")
    log.info("binding codes issued", extra={"count": len(issued), "village_filter": village is not None})
    return issued


def reissue(session: Session, township: Township, number: str, *, scope: Scope = EVERYTHING,
            actor: "Principal | None" = None) -> IssuedCode:
    """A new code for one household (户编号 ``number``); the old code and QR scene stop working now.

    Bindings made with the old code stay: the family did nothing wrong. The QR
    scene is dropped too (the label carries both); ``--qr`` asks for a new one.
    """
    from storage.accounts import audit
    from storage.households import find_household

    scope.check_writable()
    household = find_household(session, township.id, number, scope)
    if household is None:
        raise BindingError(f"找不到户编号：{number}")
    old = household.code
    household.code = _new_code(_taken_codes(session))
    household.code_issued_at = household.updated_at = utcnow()
    household.qr_scene = None
    household.qr_url = None
    session.flush()
    audit(session, actor, "households.reissue", household.number, "重发绑定码，旧码和旧二维码作废")
    log.info("binding code reissued", extra={"household_id": household.id, "old_code": mask_code(old)})
    return IssuedCode(household.number, household.code, household.id)


def issue_cadre_codes(session: Session, township: Township) -> list[IssuedCadreCode]:
    """A code for every active cadre without one: they bind their own WeChat with it."""
    taken = _taken_codes(session)
    issued: list[IssuedCadreCode] = []
    cadres = session.scalars(
        select(Cadre).where(Cadre.township_id == township.id, Cadre.active.is_(True), Cadre.code.is_(None))
        .order_by(Cadre.id)
    )
    for cadre in cadres:
        cadre.code = _new_code(taken)
        issued.append(IssuedCadreCode(cadre.id, cadre.name, cadre.phone, cadre.code))
    session.flush()
    log.info("cadre binding codes issued", extra={"count": len(issued)})
    return issued


def set_scene(session: Session, household: Household) -> str:
    """The household's QR scene, created once and kept (a permanent QR code is a quota item)."""
    if not household.qr_scene:
        household.qr_scene = new_scene()
        session.flush()
    return household.qr_scene


# -- binding ---------------------------------------------------------------------------------


def bind_by_code(
    session: Session,
    openid: str,
    code: str,
    *,
    limiter: "RateLimiter | None" = None,
    follower_rate: str = "5/hour",
    global_rate: str = "200/hour",
) -> BindResult:
    """Bind ``openid`` with a household's (or a cadre's) code, as typed.

    With a ``limiter`` only wrong codes count: ``follower_rate`` per follower,
    ``global_rate`` account-wide. Both are checked *before* the code is looked
    at, so once a limit is reached even a right guess does not bind: that is
    what stops guessing. A code in the wrong shape (not 8 digits) is a typo and
    costs nothing.
    """
    if limiter is not None:
        if not limiter.would_allow(follower_rate, "bind-fail", openid):
            return BindResult(LOCKED)
        if not limiter.would_allow(global_rate, "bind-fail-all"):
            return BindResult(BUSY)
    normal = normalise_code(code)
    if normal is None:
        return BindResult(BAD_FORMAT)
    household = session.scalar(select(Household).where(Household.code == normal))
    if household is not None:
        return _bind(session, openid, household, via="code")
    cadre = session.scalar(select(Cadre).where(Cadre.code == normal, Cadre.active.is_(True)))
    if cadre is not None:
        return _bind_cadre(session, openid, cadre)
    locked_now = False
    if limiter is not None:
        limiter.allow(follower_rate, "bind-fail", openid)
        limiter.allow(global_rate, "bind-fail-all")
        locked_now = not limiter.would_allow(follower_rate, "bind-fail", openid)
        if not limiter.would_allow(global_rate, "bind-fail-all"):
            log.warning("account-wide limit of wrong binding codes reached (%s)", global_rate)
    log.info("wrong binding code", extra={"openid": short_openid(openid), "code": mask_code(normal),
                                          "locked": locked_now})
    return BindResult(WRONG_CODE, locked_now=locked_now)


def bind_by_scene(session: Session, openid: str, scene: str) -> BindResult:
    """Bind ``openid`` to the household whose QR code was scanned (scene without "qrscene_")."""
    household = session.scalar(select(Household).where(Household.qr_scene == scene)) if scene else None
    if household is None:
        log.info("scan of an unknown household scene", extra={"openid": short_openid(openid)})
        return BindResult(UNKNOWN_SCENE)
    return _bind(session, openid, household, via="qr")


def _bind(session: Session, openid: str, household: Household, *, via: str) -> BindResult:
    current = household_of(session, openid)
    if current is not None:
        return BindResult(ALREADY if current.id == household.id else OTHER_HOUSEHOLD, household=current)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    # A duplicate delivery of the same scan, in another worker, must not fail on the unique openid.
    session.execute(
        dialect.insert(HouseholdBinding)
        .values(household_id=household.id, openid=openid, via=via, bound_at=utcnow(), tagged=False)
        .on_conflict_do_nothing(index_elements=["openid"])
    )
    current = household_of(session, openid)
    if current is None or current.id != household.id:  # pragma: no cover - lost a race to another household
        return BindResult(OTHER_HOUSEHOLD, household=current)
    log.info("follower bound", extra={"openid": short_openid(openid), "household_id": household.id, "via": via})
    return BindResult(BOUND, household=household)


def _bind_cadre(session: Session, openid: str, cadre: Cadre) -> BindResult:
    if cadre.openid == openid:
        return BindResult(CADRE_ALREADY, cadre=cadre)
    if cadre.openid:
        log.warning("cadre code used from a second WeChat", extra={"cadre_id": cadre.id,
                                                                  "openid": short_openid(openid)})
        return BindResult(CADRE_TAKEN, cadre=cadre)
    other = session.scalar(select(Cadre).where(Cadre.openid == openid))
    if other is not None:  # one WeChat, one cadre record: the new code wins
        other.openid = None
        session.flush()
    cadre.openid = openid
    session.flush()
    log.info("cadre bound", extra={"openid": short_openid(openid), "cadre_id": cadre.id})
    return BindResult(CADRE_BOUND, cadre=cadre)


def unbind(session: Session, openid: str) -> UnbindResult:
    """"解绑": leave the household (or, for a cadre without one, the cadre record).

    ``tag_id`` in the result is the village tag to remove at WeChat once the
    unit of work has committed (set only if it had been applied).
    """
    binding = session.scalar(select(HouseholdBinding).where(HouseholdBinding.openid == openid))
    if binding is not None:
        household = session.get(Household, binding.household_id)
        tag_id = household.village.tag_id if household is not None and binding.tagged else None
        session.execute(delete(HouseholdBinding).where(HouseholdBinding.id == binding.id))
        log.info("follower unbound", extra={"openid": short_openid(openid), "household_id": binding.household_id})
        return UnbindResult(household=household, tag_id=tag_id)
    cadre = session.scalar(select(Cadre).where(Cadre.openid == openid))
    if cadre is not None:
        cadre.openid = None
        session.flush()
        log.info("cadre unbound", extra={"openid": short_openid(openid), "cadre_id": cadre.id})
        return UnbindResult(cadre=cadre)
    return UnbindResult()


# -- tagging bookkeeping (the WeChat calls are in bot.binding) -------------------------------


def pending_tagging(session: Session, limit: int = 1000) -> list[tuple[str, int]]:
    """(openid, village_id) of bindings whose village tag is not applied yet, oldest first.

    Followers who unfollowed are left out: WeChat cannot tag them, and they
    are tagged again if they bind after following again.
    """
    from sqlalchemy import or_

    from storage.models import Follower

    rows = session.execute(
        select(HouseholdBinding.openid, Household.village_id)
        .join(Household, Household.id == HouseholdBinding.household_id)
        .outerjoin(Follower, Follower.openid == HouseholdBinding.openid)
        .where(HouseholdBinding.tagged.is_(False), or_(Follower.id.is_(None), Follower.subscribed.is_(True)))
        .order_by(HouseholdBinding.id)
        .limit(limit)
    )
    return [(openid, village_id) for openid, village_id in rows]


def mark_tagged(session: Session, village_id: int, openids: list[str]) -> int:
    """Record that WeChat tagged these followers with ``village_id``'s tag (if still bound there)."""
    if not openids:
        return 0
    result = session.execute(
        update(HouseholdBinding)
        .where(
            HouseholdBinding.openid.in_(openids),
            HouseholdBinding.household_id.in_(select(Household.id).where(Household.village_id == village_id)),
        )
        .values(tagged=True)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


def set_village_tag(session: Session, village_id: int, tag_id: int) -> int:
    """Store the village's WeChat tag unless another process stored one first; the tag to use."""
    session.execute(
        update(Village).where(Village.id == village_id, Village.tag_id.is_(None)).values(tag_id=tag_id)
        .execution_options(synchronize_session=False)
    )
    stored = session.scalar(select(Village.tag_id).where(Village.id == village_id))
    return int(stored if stored is not None else tag_id)
