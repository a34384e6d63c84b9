"""The WeChat side of binding: village tags on bound followers, households' permanent QR codes.

Why tags: a mass message or a menu for one village goes to its WeChat user
tag, so a follower bound to a household gets their village's tag. Every call
here runs after the database work committed (``ctx.after_commit`` in the chat)
and never inside an open transaction: a slow WeChat must not hold row locks.
A call that fails leaves ``household_bindings.tagged`` false and
:func:`retag_pending` (called by the sweeper) tries again later.

WeChat's limits shape the code: at most 100 tags per account (45056), tag
names of at most 30 characters (45158), names unique (45157: the tag exists,
so it is looked up instead), 50 openids per tagging call, and 100,000
permanent QR codes per account, so a household's QR code is created once and
its scene and URL reused.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from sqlalchemy import select, update

from bot.services import Services
from bot.wechat_client import WeChatAPIError
from storage.binding import mark_tagged, pending_tagging, set_scene, set_village_tag
from storage.models.org import Household, HouseholdBinding, Village
from storage.privacy import short_openid

log = logging.getLogger(__name__)

BATCH = 50  # openids per tagging call
TAG_NAME_MAX = 30
TAG_EXISTS, TAG_NAME_TOO_LONG, TOO_MANY_TAGS, BAD_TAG = 45157, 45158, 45056, 45159
# A batch refused because of some of its followers (invalid openid, 20 tags already,
# not this account's): the others may be fine, so they are tried one by one.
PER_FOLLOWER_ERRORS = {40003, 45059, 49003}
# After a tag could not be created for good, do not ask again for this long (per process).
TAG_BACKOFF = 3600.0
_tag_backoff: dict[str, float] = {}
_tag_locks: dict[int, threading.Lock] = {}
_tag_locks_guard = threading.Lock()


def tag_name(village_name: str) -> str:
    return village_name.strip()[:TAG_NAME_MAX]


def village_tag(services: Services, village_id: int) -> int | None:
    """The village's WeChat tag id, created on first use; None if WeChat would not create it.

    Two family members binding at once must not create the tag twice: threads
    of this process wait for each other here; another process gets 45157
    (the name exists) from WeChat and looks the tag up.
    """
    with _tag_locks_guard:
        lock = _tag_locks.setdefault(village_id, threading.Lock())
    with lock:
        return _village_tag(services, village_id)


def _village_tag(services: Services, village_id: int) -> int | None:
    with services.db.session() as session:
        village = session.get(Village, village_id)
        if village is None:
            return None
        if village.tag_id:
            return int(village.tag_id)
        name = village.name
    tag_id = _create_or_find_tag(services, tag_name(name))
    if tag_id is None:
        return None
    with services.db.session() as session:
        return set_village_tag(session, village_id, tag_id)


def _create_or_find_tag(services: Services, name: str) -> int | None:
    if time.monotonic() < _tag_backoff.get(name, 0.0):
        return None
    try:
        return services.wechat.create_tag(name)
    except WeChatAPIError as exc:
        if exc.errcode == TAG_EXISTS:  # made by an earlier attempt, another worker, or by hand
            try:
                found = [t for t in services.wechat.get_tags() if t.get("name") == name]
            except WeChatAPIError as again:
                log.warning("village tag %s exists but tags/get failed: %s", name, again)
                return None
            if found:
                return int(found[0]["id"])
            log.error("WeChat says tag %s exists but does not list it", name)
        elif exc.errcode == TOO_MANY_TAGS:
            log.error("WeChat allows 100 tags per account and all are used: village tag %s not created; "
                      "delete unused tags in the WeChat admin console", name)
        elif exc.errcode == TAG_NAME_TOO_LONG:
            log.error("WeChat refused the tag name %s as too long", name)
        else:  # busy, network: the next binding or retag tries again
            log.warning("village tag %s not created: %s", name, exc)
            return None
        _tag_backoff[name] = time.monotonic() + TAG_BACKOFF
        return None


def _forget_tag(services: Services, village_id: int, tag_id: int) -> None:
    """WeChat no longer knows the tag (deleted by hand): the next attempt creates a new one."""
    log.warning("village tag %s was deleted at WeChat; it will be created again", tag_id)
    with services.db.session() as session:
        session.execute(update(Village).where(Village.id == village_id, Village.tag_id == tag_id)
                        .values(tag_id=None).execution_options(synchronize_session=False))


def tag_follower(services: Services, openid: str) -> bool:
    """After a binding committed: put the follower's village tag on them, then record it."""
    with services.db.session() as session:
        row = session.execute(
            select(HouseholdBinding.tagged, Household.village_id)
            .join(Household, Household.id == HouseholdBinding.household_id)
            .where(HouseholdBinding.openid == openid)
        ).first()
    if row is None or row.tagged:
        return False
    tagged = _tag(services, row.village_id, [openid])
    if tagged is None or not tagged:
        return False
    with services.db.session() as session:
        mark_tagged(session, row.village_id, tagged)
    return True


def untag_follower(services: Services, tag_id: int, openid: str) -> None:
    """After "解绑" committed: take the village tag off (a failure only leaves a stale tag)."""
    try:
        services.wechat.untag_users(tag_id, [openid])
    except WeChatAPIError as exc:
        log.warning("village tag not removed from %s: %s", short_openid(openid), exc)


def _tag(services: Services, village_id: int, openids: list[str]) -> list[str] | None:
    """Tag ``openids`` (at most 50); the ones WeChat accepted, or None if WeChat is not answering."""
    tag_id = village_tag(services, village_id)
    if tag_id is None:
        return []
    try:
        services.wechat.tag_users(tag_id, openids)
        return openids
    except WeChatAPIError as exc:
        if exc.errcode == BAD_TAG:
            _forget_tag(services, village_id, tag_id)
            return []
        if exc.errcode in PER_FOLLOWER_ERRORS and len(openids) > 1:
            return _one_by_one(services, tag_id, openids)
        if exc.errcode in PER_FOLLOWER_ERRORS:
            log.warning("WeChat would not tag %s: %s", short_openid(openids[0]), exc.errcode)
            return []
        log.warning("village tagging failed (%s); retag_pending will try again", exc)
        return None


def _one_by_one(services: Services, tag_id: int, openids: list[str]) -> list[str]:
    done: list[str] = []
    for openid in openids:
        try:
            services.wechat.tag_users(tag_id, [openid])
            done.append(openid)
        except WeChatAPIError as exc:
            log.warning("WeChat would not tag %s: %s", short_openid(openid), exc.errcode)
    return done


def retag_pending(services: Services, limit: int = 1000) -> int:
    """Apply village tags that a failed call left out, 50 openids a call; how many were tagged.

    Stops at the first batch WeChat does not answer (it is down or busy: the
    next sweep tries again) and at ``limit`` bindings per call.
    """
    with services.db.session() as session:
        pending = pending_tagging(session, limit)
    by_village: dict[int, list[str]] = {}
    for openid, village_id in pending:
        by_village.setdefault(village_id, []).append(openid)
    done = 0
    for village_id, openids in by_village.items():
        for batch in _batches(openids, BATCH):
            tagged = _tag(services, village_id, batch)
            if tagged is None:
                return done
            if tagged:
                with services.db.session() as session:
                    done += mark_tagged(session, village_id, tagged)
    if done:
        log.info("village tags applied on retry", extra={"count": done})
    return done


def _batches(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- QR codes ----------------------------------------------------------------------------------


def ensure_qr(services: Services, household_id: int) -> str:
    """The household's permanent QR code URL, asked of WeChat only the first time.

    The scene is committed before WeChat is asked, so a run that fails halfway
    asks again for the same scene instead of spending quota on a new one.
    Raises :class:`WeChatAPIError` when WeChat refuses.
    """
    with services.db.session() as session:
        household = session.get(Household, household_id)
        if household is None:
            raise LookupError(household_id)
        if household.qr_scene and household.qr_url:
            return household.qr_url
        scene = set_scene(session, household)
    result = services.wechat.create_qrcode(scene, permanent=True)
    url = str(result.get("url") or "")
    if not url:
        raise WeChatAPIError("qrcode/create", None, "no url in the answer")
    with services.db.session() as session:
        household = session.get(Household, household_id)
        if household is not None and household.qr_scene == scene:
            household.qr_url = url
    return url
