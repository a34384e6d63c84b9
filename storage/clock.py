"""Times shown to people: the township's clock (``SISONG_TIMEZONE``), while storage stays UTC."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local(moment: datetime | None, zone: str = "Asia/Shanghai", fmt: str = "%Y-%m-%d %H:%M") -> str:
    """``moment`` (UTC, aware or naive-as-UTC) on the township's clock; "" for None."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(_zone(zone)).strftime(fmt)


def iso_local(moment: datetime | None, zone: str = "Asia/Shanghai") -> str | None:
    """``moment`` as ISO 8601 with the township's offset (``+08:00``), for JSON; None stays None."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(_zone(zone)).isoformat(timespec="seconds")


def next_midnight(now: datetime | None = None, zone: str = "Asia/Shanghai") -> datetime:
    """The next 00:00 on ``zone``'s clock, in UTC: when WeChat's daily quotas (Beijing time) start again."""
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    here = now.astimezone(_zone(zone))
    midnight = here.replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight + timedelta(days=1)).astimezone(timezone.utc)


def quiet_until(now: datetime, spec: str, zone: str = "Asia/Shanghai") -> datetime | None:
    """If ``now`` falls in the quiet hours ``spec`` ("21:00-08:00", township clock, may span midnight),
    when they end (UTC); None otherwise. Nobody is written to at night."""
    start_text, end_text = (part.strip() for part in spec.split("-", 1))
    start_h, start_m = (int(x) for x in start_text.split(":"))
    end_h, end_m = (int(x) for x in end_text.split(":"))
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    here = now.astimezone(_zone(zone))
    minute = here.hour * 60 + here.minute
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    if start == end:
        return None
    inside = start <= minute < end if start < end else (minute >= start or minute < end)
    if not inside:
        return None
    ends = here.replace(hour=end_h % 24, minute=end_m, second=0, microsecond=0)
    if ends <= here:
        ends += timedelta(days=1)
    return ends.astimezone(timezone.utc)
