"""A bound household asks who their helper is, asks to be contacted, asks what is on record."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from bot.services import Services
from bot.simulator import WeChatSimulator
from storage import followers
from storage.households import ensure_township
from storage.models import Area, Cadre, Hamlet, Household, HouseholdBinding, Village
from storage.models.base import utcnow
from tests.conftest import APPID, TOKEN, wait_for

FAMILY = "oFamilyMember000000000001"
HELPER = "oHelperCadre0000000000001"


@pytest.fixture
def household(services: Services) -> Household:
    with services.db.session() as session:
        township = ensure_township(session, services.settings.township)
        area = Area(township_id=township.id, name="长岭片区")
        village = Village(township_id=township.id, name="长岭村", area=area)
        session.add_all([area, village])
        session.flush()
        hamlet = Hamlet(village_id=village.id, name="三组")
        helper = Cadre(township_id=township.id, name="李帮扶", phone="13900001111", openid=HELPER)
        session.add_all([hamlet, helper])
        session.flush()
        home = Household(township_id=township.id, number="5201230001", head_name="张大山", village_id=village.id,
                         hamlet_id=hamlet.id, helper_id=helper.id, phone="13812345678")
        session.add(home)
        session.flush()
        session.add(HouseholdBinding(household_id=home.id, openid=FAMILY))
        return home


def test_a_bound_household_hears_who_their_helper_is(client: TestClient, household: Household) -> None:
    sim = WeChatSimulator(TOKEN, APPID, openid=FAMILY)
    reply = sim.post(client, sim.text("我的帮扶人是谁？")).text or ""
    assert "李帮扶" in reply and "13900001111" in reply


def test_an_unbound_follower_is_told_how_to_bind(client: TestClient, household: Household) -> None:
    sim = WeChatSimulator(TOKEN, APPID, openid="oStranger000000000000001")
    for words in ("我的帮扶人是谁", "我家是哪个村", "联系帮扶人"):
        reply = sim.post(client, sim.text(words)).text or ""
        assert "绑定" in reply and "李帮扶" not in reply and "张大山" not in reply


def test_my_household_is_answered_from_the_record(client: TestClient, household: Household) -> None:
    sim = WeChatSimulator(TOKEN, APPID, openid=FAMILY)
    reply = sim.post(client, sim.text("我家是哪个村")).text or ""
    assert "长岭村三组" in reply and "长岭片区" in reply and "张大山" in reply and "李帮扶" in reply


def test_contacting_the_helper_tells_the_group_masked_and_the_helper_directly(
    client: TestClient, services: Services, household: Household, api  # type: ignore[no-untyped-def]
) -> None:
    with services.db.session() as session:  # the helper wrote to the account an hour ago
        followers.touch(session, HELPER, interaction=True, now=utcnow() - timedelta(hours=1))
    sim = WeChatSimulator(TOKEN, APPID, openid=FAMILY)
    reply = sim.post(client, sim.event("CLICK", "CONTACT_HELPER")).text or ""
    assert "李帮扶" in reply and "13900001111" in reply
    (notice,) = wait_for(lambda: api.calls_to("webhook/send"), timeout=10)
    content = notice.json["markdown"]["content"]
    assert "长岭村" in content and "张＊＊" in content and "张大山" not in content and "13812345678" not in content
    (direct,) = wait_for(lambda: api.calls_to("message/custom/send"), timeout=10)
    assert direct.json["touser"] == HELPER and "张大山" in direct.json["text"]["content"]


def test_a_helper_outside_the_48_hour_window_is_not_messaged(
    client: TestClient, services: Services, household: Household, api  # type: ignore[no-untyped-def]
) -> None:
    with services.db.session() as session:
        followers.touch(session, HELPER, interaction=True, now=utcnow() - timedelta(hours=50))
    sim = WeChatSimulator(TOKEN, APPID, openid=FAMILY)
    assert "李帮扶" in (sim.post(client, sim.text("联系帮扶人")).text or "")
    wait_for(lambda: api.calls_to("webhook/send"), timeout=10)
    assert api.calls_to("message/custom/send") == []
