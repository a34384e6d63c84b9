"""Reading the organisation and the households: the queries every part of Sisong shares.

The chat (who is this follower's household and helper?), the CLI and the
console all ask the same questions; they ask them here, and ``list`` /
``show`` read the same views (``HouseholdView``). Writes that belong to
one operation (import, binding) live with that operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.clock import iso_local
from storage.models.org import Household, HouseholdBinding, Township, Village


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


def list_households(session: Session, township_id: int, village_id: int | None = None) -> list[HouseholdView]:
    """The township's households (or one village's), by village, 组 and 户编号."""
    query = select(Household).where(Household.township_id == township_id)
    if village_id is not None:
        query = query.where(Household.village_id == village_id)
    households = list(session.scalars(query))
    bound = _bound_counts(session, [h.id for h in households])
    views = [_view(h, bound.get(h.id, 0)) for h in households]
    # Sorted here, not in SQL: PostgreSQL and SQLite collate Chinese differently.
    return sorted(views, key=lambda v: (v.village, v.hamlet or "", v.number))


def household_view(session: Session, township_id: int, number: str) -> HouseholdView | None:
    household = session.scalar(
        select(Household).where(Household.township_id == township_id, Household.number == number.strip())
    )
    if household is None:
        return None
    return _view(household, _bound_counts(session, [household.id]).get(household.id, 0))
