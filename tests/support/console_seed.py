"""A small township for the console's tests: two 片区, three villages, households, cadres, groups, followers.

东片: 石桥村 (3 households: S1, S2, S3), 柳溪村 (none); 西片: 枫林村 (F1, F2).
Cadres: 李帮扶 (13812345678) helps S1, S2 and F1, linked to 石桥村; 赵枫林 (13900001111) helps F2,
linked to 枫林村, has bound their WeChat. Groups: 石桥群 (石桥村), 东片群 (东片), 镇工作群 (全镇),
产业群 (产业 team only).
Followers bound: oS1a and oS1b (S1; oS1b unfollowed), oS2 (S2), oF1 (F1); oU is not bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from storage.db import Database
from storage.models import (
    Area,
    Cadre,
    Follower,
    GroupNotice,
    Household,
    HouseholdBinding,
    MessagingGroup,
    Team,
    Township,
    Village,
)
from storage.models.base import utcnow

TOWNSHIP = "青山镇"
PASSWORD = "qingshan-2026"
ROBOT = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=secret-robot-key-"


def oid(name: str) -> str:
    """An openid-shaped id for a named follower (28 characters, like WeChat's)."""
    return ("o" + name + "0" * 30)[:28]


@dataclass
class Seeded:
    villages: dict[str, int]
    households: dict[str, int]
    cadres: dict[str, int]
    groups: dict[str, int]


def seed_township(db: Database, now: datetime | None = None) -> Seeded:
    now = now or utcnow()
    with db.session() as session:
        township = Township(name=TOWNSHIP)
        session.add(township)
        session.flush()
        east, west = Area(township_id=township.id, name="东片"), Area(township_id=township.id, name="西片")
        session.add_all([east, west])
        session.flush()
        villages = {
            "石桥村": Village(township_id=township.id, area_id=east.id, name="石桥村"),
            "柳溪村": Village(township_id=township.id, area_id=east.id, name="柳溪村"),
            "枫林村": Village(township_id=township.id, area_id=west.id, name="枫林村"),
        }
        session.add_all(villages.values())
        session.flush()
        teams = {t.name: t for t in session.scalars(select(Team))}
        li = Cadre(township_id=township.id, name="李帮扶", phone="13812345678", role="帮扶责任人",
                   villages=[villages["石桥村"]], teams=[teams["帮扶"]], code="47218390")
        zhao = Cadre(township_id=township.id, name="赵枫林", phone="13900001111", role="村",
                     villages=[villages["枫林村"]], teams=[teams["产业"]], openid=oid("Zhao"), wecom_userid="zhaofl")
        session.add_all([li, zhao])
        session.flush()
        households = {}
        for number, village, helper in (("S1", "石桥村", li), ("S2", "石桥村", li), ("S3", "石桥村", None),
                                        ("F1", "枫林村", li), ("F2", "枫林村", zhao)):
            household = Household(township_id=township.id, number=number, head_name="张" + number,
                                  village_id=villages[village].id, helper_id=helper.id if helper else None,
                                  team_id=teams["产业"].id if number == "F2" else None)
            session.add(household)
            households[number] = household
        session.flush()
        for openid, number in ((oid("S1a"), "S1"), (oid("S1b"), "S1"), (oid("S2"), "S2"), (oid("F1"), "F1")):
            session.add(HouseholdBinding(household_id=households[number].id, openid=openid))
        for name in ("S1a", "S1b", "S2", "F1", "U"):
            session.add(Follower(openid=oid(name), subscribed=name != "S1b", first_seen=now, last_seen=now))
        groups = {
            "石桥群": MessagingGroup(township_id=township.id, name="石桥群", robot_url=ROBOT + "1",
                                   villages=[villages["石桥村"]]),
            "东片群": MessagingGroup(township_id=township.id, name="东片群", robot_url=ROBOT + "2", areas=[east]),
            "镇工作群": MessagingGroup(township_id=township.id, name="镇工作群", robot_url=ROBOT + "3",
                                    covers_all=True),
            "产业群": MessagingGroup(township_id=township.id, name="产业群", robot_url=ROBOT + "4",
                                   teams=[teams["产业"]]),
        }
        session.add_all(groups.values())
        session.flush()
        session.add_all([
            GroupNotice(group_id=groups["石桥群"].id, robot_url=ROBOT + "1", sent_at=now,
                        markdown="### 有住户的问题没答上来\n> 村组：石桥村 一组\n> 住户：张＊＊\n> 问题：危房改造"),
            GroupNotice(group_id=groups["镇工作群"].id, robot_url=ROBOT + "3", attempts=2, error="企业微信回 45009",
                        markdown="### 有住户请求人工帮助\n> 村组：枫林村\n> 住户：张＊＊"),
        ])
        session.flush()
        return Seeded(
            villages={k: v.id for k, v in villages.items()},
            households={k: v.id for k, v in households.items()},
            cadres={"李帮扶": li.id, "赵枫林": zhao.id},
            groups={k: v.id for k, v in groups.items()},
        )


def role_accounts(db: Database, helper_cadre_id: int) -> None:
    """One account per role the scoping tests exercise: 王镇长 (镇管理员), 石村干 (村干部 of 石桥村),
    赵督查 (督查) and 李四 (帮扶责任人, linked to the cadre ``helper_cadre_id``)."""
    from sqlalchemy import update

    from storage.accounts import create_user
    from storage.models.accounts import User

    create_user(db, "王镇长", PASSWORD, "镇管理员")
    create_user(db, "石村干", PASSWORD, "村干部", villages=["石桥村"], township=TOWNSHIP)
    create_user(db, "赵督查", PASSWORD, "督查")
    create_user(db, "李四", PASSWORD, "帮扶责任人")
    with db.session() as session:
        session.execute(update(User).where(User.name == "李四").values(cadre_id=helper_cadre_id))


def bearer_headers(db: Database) -> Callable[[str], dict[str, str]]:
    """Bearer headers per account name (an API token each, made once), as a script would send them."""
    from storage.accounts import create_api_token

    tokens: dict[str, str] = {}

    def headers(name: str) -> dict[str, str]:
        if name not in tokens:
            tokens[name] = create_api_token(db, name, "tests")
        return {"Authorization": f"Bearer {tokens[name]}"}

    return headers


def form_login(client: Any, name: str, page: str) -> str:
    """Log in through the form; returns the session's CSRF token, read from the console ``page``."""
    import re

    form = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    response = client.post("/console/login", data={"name": name, "password": PASSWORD, "csrf": csrf})
    assert response.status_code == 303, response.text
    home = client.get(page)
    return re.search(r'name="csrf" value="([^"]+)"', home.text).group(1)  # type: ignore[union-attr]
