"""Reading the organisation and the households: the queries every part of Sisong shares.

The chat (who is this follower's household and helper?), the CLI and the
console all ask the same questions; they ask them here. Writes that belong to
one operation (import, binding) live with that operation.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models.org import Cadre, Household, HouseholdBinding, Team, Township, Village


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


def cadre_of_openid(session: Session, openid: str) -> Cadre | None:
    """A cadre who bound their own WeChat (customer-service notices reach them there)."""
    return session.scalar(select(Cadre).where(Cadre.openid == openid, Cadre.active.is_(True)))


def team_by_name(session: Session, name: str) -> Team | None:
    """"帮扶" or "帮扶队" or "帮扶先锋队": the five teams are named by their first two characters."""
    core = name.strip().removesuffix("先锋队").removesuffix("队")
    return session.scalar(select(Team).where(Team.name == core))


def bound_openids(session: Session, household_id: int) -> list[str]:
    return list(session.scalars(
        select(HouseholdBinding.openid).where(HouseholdBinding.household_id == household_id)
        .order_by(HouseholdBinding.id)
    ))
