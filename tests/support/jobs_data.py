"""Test data for 送岗位: villages, households with bound followers, postings (straight into the database)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from bot.services import Services
from storage.households import ensure_township
from storage.models.followers import Follower
from storage.models.org import Area, Cadre, Hamlet, Household, HouseholdBinding, MessagingGroup, Village
from storage.jobs import JobInput, add_posting

TEMPLATE_ID = "TPL_job_notice_0000000001"


@dataclass
class Member:
    openid: str
    number: str  # 户编号 of the household


def village(services: Services, name: str, area: str | None = None) -> int:
    with services.db.session() as session:
        township = ensure_township(session, services.settings.township)
        row = session.scalar(select(Village).where(Village.name == name))
        if row is None:
            area_id = None
            if area:
                found = session.scalar(select(Area).where(Area.name == area))
                if found is None:
                    found = Area(township_id=township.id, name=area)
                    session.add(found)
                    session.flush()
                area_id = found.id
            row = Village(township_id=township.id, name=name, area_id=area_id)
            session.add(row)
            session.flush()
        return row.id


def households(services: Services, village_name: str, count: int, *, members: int = 1, labourers: int | None = 1,
               area: str | None = None, interacted: timedelta | None = timedelta(hours=1), prefix: str | None = None,
               helper: str | None = None, subscribed: bool = True) -> list[Member]:
    """``count`` households in the village, each with ``members`` bound followers.

    ``interacted``: how long ago each follower last wrote (None: never, so
    outside the 48-hour window).
    """
    vid = village(services, village_name, area)
    prefix = prefix or village_name
    out: list[Member] = []
    now = datetime.now(timezone.utc)
    with services.db.session() as session:
        township = ensure_township(session, services.settings.township)
        hamlet = session.scalar(select(Hamlet).where(Hamlet.village_id == vid, Hamlet.name == "一组"))
        if hamlet is None:
            hamlet = Hamlet(village_id=vid, name="一组")
            session.add(hamlet)
            session.flush()
        helper_row = None
        if helper:
            helper_row = session.scalar(select(Cadre).where(Cadre.name == helper))
            if helper_row is None:
                helper_row = Cadre(township_id=township.id, name=helper, phone="13900000000", wecom_userid="helperid")
                session.add(helper_row)
                session.flush()
        for n in range(count):
            number = f"{prefix}-{n:04d}"
            household = Household(township_id=township.id, number=number, head_name=f"张{n}", village_id=vid,
                                  hamlet_id=hamlet.id, labourers=labourers, phone="13812345678",
                                  helper_id=helper_row.id if helper_row else None)
            session.add(household)
            session.flush()
            for m in range(members):
                openid = f"o{prefix}{n:04d}m{m}".ljust(28, "x")
                session.add(HouseholdBinding(household_id=household.id, openid=openid, via="code"))
                session.add(Follower(openid=openid, subscribed=subscribed,
                                     last_interaction=now - interacted if interacted is not None else None))
                out.append(Member(openid, number))
    return out


def group(services: Services, name: str, robot_url: str, *, villages: list[str] = (), covers_all: bool = False) -> None:
    with services.db.session() as session:
        township = ensure_township(session, services.settings.township)
        row = MessagingGroup(township_id=township.id, name=name, robot_url=robot_url, covers_all=covers_all)
        row.villages = [session.scalar(select(Village).where(Village.name == v)) for v in villages]
        session.add(row)


def posting(services: Services, title: str = "电子厂普工", headcount: int = 5, deadline: str | None = None,
            **extra: str) -> int:
    data = JobInput(title=title, employer=extra.get("employer", "县工业园电子厂"), location=extra.get("location", "县城工业园"),
                    salary=extra.get("salary", "4500-6000元/月"), headcount=headcount,
                    contact=extra.get("contact", "王经理 13800001111"), requirements=extra.get("requirements", "18-50岁"),
                    deadline=deadline)
    with services.db.session() as session:
        township = ensure_township(session, services.settings.township)
        return add_posting(session, township.id, data).id


def three_villages_with_accounts(services: Services) -> None:
    """The console's scoping fixture: 石桥村 (3 households) and 柳溪村 (2) in 东片, 枫林村 (2) in 西片; the
    helper 李帮扶 helps 石桥村-0000 and 枫林村-0000 only; one account per role (``console_seed.role_accounts``)."""
    from sqlalchemy import update

    from tests.support.console_seed import role_accounts

    households(services, "石桥村", 3, area="东片", helper="李帮扶", prefix="石桥村")
    households(services, "柳溪村", 2, area="东片")
    households(services, "枫林村", 2, area="西片")
    with services.db.session() as session:
        helper = session.scalar(select(Cadre).where(Cadre.name == "李帮扶"))
        assert helper is not None
        session.execute(update(Household).where(Household.number.in_(["石桥村-0001", "石桥村-0002"]))
                        .values(helper_id=None))
        session.execute(update(Household).where(Household.number == "枫林村-0000").values(helper_id=helper.id))
        helper_id = helper.id
    role_accounts(services.db, helper_id)
