"""What a console account may see and change, as SQL clauses the service functions apply.

Scoping lives here, below the routes, so the pages, the API and any later
caller get the same answer: a village cadre's query for "all households"
returns their villages' households because the service function adds
``scope.households()`` to it, not because a page hid the rest.

- 镇管理员: everything, read and write.
- 督查: read everything; act on alerts only (``writable`` is False).
- 片区干部 / 村干部: the households, questions and pushes of their villages.
- 帮扶责任人: their own households (``helper_id``) and any villages listed on
  the account.

The CLI runs as the operator of the machine and uses ``EVERYTHING``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, or_, true

from storage.models.org import Household, Village


class OutOfScope(PermissionError):
    """The record exists but this account may not see or change it; the message is safe to show."""

    def __init__(self, message: str = "这条记录不在您负责的范围内。") -> None:
        super().__init__(message)


class ReadOnly(PermissionError):
    """A read-only account (督查) tried to change something."""

    def __init__(self, message: str = "您的账号只能查看，不能修改。如需要请找镇管理员。") -> None:
        super().__init__(message)


@dataclass(frozen=True)
class Scope:
    """Villages and households an account may see.

    ``villages`` are the villages that appear in lists (None: all of them);
    ``full_villages`` those whose every household is visible; ``helper_id``
    adds that cadre's own households wherever they live.
    """

    villages: frozenset[int] | None = None
    full_villages: frozenset[int] | None = None
    helper_id: int | None = None
    writable: bool = True
    supervises: bool = False  # 督查: read-only, but assigns the cases surveys raise

    @property
    def everything(self) -> bool:
        return self.full_villages is None

    def households(self) -> ColumnElement[bool]:
        """A WHERE clause on ``Household`` selecting the visible households."""
        if self.full_villages is None:
            return true()
        parts: list[ColumnElement[bool]] = []
        if self.full_villages:
            parts.append(Household.village_id.in_(sorted(self.full_villages)))
        if self.helper_id is not None:
            parts.append(Household.helper_id == self.helper_id)
        return or_(*parts) if parts else false()

    def village_rows(self) -> ColumnElement[bool]:
        """A WHERE clause on ``Village`` selecting the villages shown in lists."""
        if self.villages is None:
            return true()
        return Village.id.in_(sorted(self.villages)) if self.villages else false()

    def sees_village(self, village_id: int | None) -> bool:
        return self.villages is None or (village_id is not None and village_id in self.villages)

    def sees_household(self, household: Household) -> bool:
        if self.full_villages is None:
            return True
        return household.village_id in self.full_villages or (
            self.helper_id is not None and household.helper_id == self.helper_id)

    def covers_village(self, village_id: int | None) -> bool:
        """May this account act on the whole village (import into it, push to it)?"""
        return self.full_villages is None or (village_id is not None and village_id in self.full_villages)

    def check_household(self, household: Household) -> None:
        if not self.sees_household(household):
            raise OutOfScope("这一户不在您负责的范围内。")

    def check_writable(self) -> None:
        if not self.writable:
            raise ReadOnly()

    @property
    def assigns_cases(self) -> bool:
        return self.writable or self.supervises

    def check_assigns_cases(self) -> None:
        """The survey's cases are handed out by the supervisors (督查) as well as by those who may write."""
        if not self.assigns_cases:
            raise ReadOnly()


EVERYTHING = Scope()
