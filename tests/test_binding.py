"""Binding codes, QR labels and binding a follower's WeChat to a household (issue 7)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

import bot.binding_cli  # noqa: F401  (registers `sisong households codes`)
from bot import binding as wechat_side
from bot.flusher import drain
from bot.binding_sheet import Label, render_sheet
from bot.cli import app
from bot.config import Settings
from bot.services import Services, build_services
from bot.simulator import WeChatSimulator
from storage import binding
from storage.households import ensure_township
from storage.models.messages import MessageLog
from storage.models.org import Cadre, Hamlet, Household, HouseholdBinding, Village
from storage.privacy import mask_text
from tests.conftest import APPID, TOKEN, wait_for
from tests.support.fake_wechat_api import FakeWeChatAPI

runner = CliRunner()
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


# -- helpers ----------------------------------------------------------------------------------


def _village_name(base: str) -> str:
    """Village names unique per test: the fake WeChat API keeps its tags for the whole run."""
    return f"{base}{uuid.uuid4().hex[:6]}"


def add_households(services: Services, village: str, names: list[str], hamlet: str | None = "一组",
                   start: int = 1) -> list[str]:
    """Households ``<village>-<n>`` headed by ``names``; returns their 户编号."""
    numbers = []
    with services.db.session() as session:
        township = ensure_township(session, services.settings.township)
        row = session.scalar(select(Village).where(Village.name == village))
        if row is None:
            row = Village(township_id=township.id, name=village)
            session.add(row)
            session.flush()
        hamlet_row = None
        if hamlet:
            hamlet_row = Hamlet(village_id=row.id, name=hamlet)
            session.add(hamlet_row)
            session.flush()
        for n, name in enumerate(names, start=start):
            number = f"{village}-{n:03d}"
            session.add(Household(township_id=township.id, number=number, head_name=name, village_id=row.id,
                                  hamlet_id=hamlet_row.id if hamlet_row else None))
            numbers.append(number)
    return numbers


def issue(services: Services, village: str | None = None) -> dict[str, str]:
    with services.db.session() as session:
        township = ensure_township(session, services.settings.township)
        return {i.household: i.code for i in binding.issue_codes(session, township, village)}


def household(services: Services, number: str) -> Household:
    with services.db.session() as session:
        row = session.scalar(select(Household).where(Household.number == number))
        assert row is not None
        session.expunge(row)
        return row


def bindings(services: Services) -> dict[str, tuple[str, str, bool]]:
    """openid -> (户编号, via, tagged)."""
    with services.db.session() as session:
        rows = session.execute(
            select(HouseholdBinding.openid, Household.number, HouseholdBinding.via, HouseholdBinding.tagged)
            .join(Household, Household.id == HouseholdBinding.household_id)
        )
        return {openid: (number, via, tagged) for openid, number, via, tagged in rows}


def village_tag_id(services: Services, village: str) -> int | None:
    with services.db.session() as session:
        return session.scalar(select(Village.tag_id).where(Village.name == village))


def member(settings: Settings, n: int) -> WeChatSimulator:
    mode = "safe" if settings.wechat_aes_key else "plain"
    return WeChatSimulator(TOKEN, APPID, settings.wechat_aes_key, mode=mode, openid=f"oFamilyMember{n:012d}")


def say(client: TestClient, sim: WeChatSimulator, text: str) -> str:
    return sim.post(client, sim.text(text)).text or ""


def cli(monkeypatch: pytest.MonkeyPatch, settings: Settings, *args: str) -> Any:
    """Run `sisong households …` against the test's database and fake WeChat."""
    env = {
        "SISONG_DATABASE_URL": settings.database_url,
        "SISONG_REDIS_URL": settings.redis_url or "",
        "SISONG_WECHAT_TOKEN": settings.wechat_token,
        "SISONG_WECHAT_APPID": settings.wechat_appid,
        "SISONG_WECHAT_SECRET": settings.wechat_secret,
        "SISONG_WECHAT_API_BASE": settings.wechat_api_base,
        "SISONG_API_RETRY_WAIT": "0.01",
        "SISONG_QUEUE_PATH": str(Path.cwd() / "cli-queue.db"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return runner.invoke(app, ["households", *args], catch_exceptions=False)


# -- codes --------------------------------------------------------------------------------------


def test_codes_are_8_digits_unique_and_only_for_households_without_one(services: Services) -> None:
    a, b = _village_name("长岭村"), _village_name("河口村")
    numbers_a = add_households(services, a, [f"张{i}" for i in range(30)])
    numbers_b = add_households(services, b, ["李四", "王五"])
    first = issue(services, village=a)
    assert set(first) == set(numbers_a)  # --village: only that village
    assert all(re.fullmatch(r"[1-9]\d{7}", code) for code in first.values())
    assert len(set(first.values())) == len(first)
    assert sorted(first.values()) != [str(int(min(first.values())) + i) for i in range(len(first))]

    second = issue(services)  # the rest of the township; existing codes stay
    assert set(second) == set(numbers_b)
    assert not set(second.values()) & set(first.values())
    assert household(services, numbers_a[0]).code == first[numbers_a[0]]
    assert issue(services) == {}


def test_codes_command_json_shape_village_and_reissue(
    services: Services, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = _village_name("长岭村"), _village_name("河口村")
    numbers_a = add_households(services, a, ["张三", "张四"])
    add_households(services, b, ["李四"])
    result = cli(monkeypatch, settings, "codes", "--village", a, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert sorted(item["household"] for item in payload) == sorted(numbers_a)
    assert all(set(item) == {"household", "code"} for item in payload)
    old = {item["household"]: item["code"] for item in payload}

    again = cli(monkeypatch, settings, "codes", "--village", a, "--json")
    assert json.loads(again.stdout) == []

    reissued = cli(monkeypatch, settings, "codes", "--reissue", numbers_a[0], "--json")
    assert reissued.exit_code == 0, reissued.output
    (item,) = json.loads(reissued.stdout)
    assert item["household"] == numbers_a[0] and item["code"] != old[numbers_a[0]]
    assert household(services, numbers_a[0]).code == item["code"]
    assert household(services, numbers_a[1]).code == old[numbers_a[1]]

    unknown = cli(monkeypatch, settings, "codes", "--reissue", "没有这户")
    assert unknown.exit_code == 1 and "找不到户编号" in unknown.output
    no_village = cli(monkeypatch, settings, "codes", "--village", "没有这个村")
    assert no_village.exit_code == 1 and "没有这个村" in no_village.output


def test_reissue_stops_the_old_code_at_once_and_keeps_bindings(
    client: TestClient, services: Services, settings: Settings
) -> None:
    village = _village_name("长岭村")
    (number,) = add_households(services, village, ["张三丰"])
    old = issue(services)[number]
    first, second = member(settings, 1), member(settings, 2)
    assert "已绑定" in say(client, first, f"绑定 {old}")
    with services.db.session() as session:
        new = binding.reissue(session, ensure_township(session, settings.township), number).code
    assert new != old
    assert "不对" in say(client, second, f"绑定 {old}")
    assert bindings(services)[first.openid][0] == number  # the family member bound before stays
    assert "已绑定" in say(client, second, f"绑定 {new}")


# -- binding by code ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "绑定 {c}",
        "绑定{c}",
        "绑定 {c4} {c8}",
        "绑定：{c4}-{c8}",
        "绑定码 {c}",
        "  绑定  {fw}  ",
        "绑定\u3000{fw4}\u3000{fw8}。",
    ],
)
def test_bind_by_code_as_people_type_it(
    client: TestClient, services: Services, sim: WeChatSimulator, typed: str
) -> None:
    village = _village_name("长岭村")
    (number,) = add_households(services, village, ["张三丰"])
    code = issue(services)[number]
    text = typed.format(c=code, c4=code[:4], c8=code[4:], fw=code.translate(FULL_WIDTH),
                        fw4=code[:4].translate(FULL_WIDTH), fw8=code[4:].translate(FULL_WIDTH))
    reply = say(client, sim, text)
    assert f"已绑定：{village} 张＊＊家" in reply
    assert "张三丰" not in reply and code not in reply
    assert bindings(services)[sim.openid][:2] == (number, "code")


def test_the_code_is_not_kept_in_the_message_log(client: TestClient, services: Services, sim: WeChatSimulator) -> None:
    (number,) = add_households(services, _village_name("长岭村"), ["张三"])
    code = issue(services)[number]
    say(client, sim, f"绑定 {code[:4]} {code[4:]}")
    say(client, sim, "绑定 " + "1" + code[1:][::-1])  # most likely wrong; must not be kept either
    drain(services)  # the Redis inbox logs behind (bot.flusher)
    with services.db.session() as session:
        texts = [row.text or "" for row in session.scalars(select(MessageLog))]
    assert texts and all(code not in t and code[:4] not in t for t in texts)
    assert any("绑定 ********" in t for t in texts)


def test_bare_keyword_explains_and_unrelated_questions_are_not_taken(
    client: TestClient, services: Services, sim: WeChatSimulator
) -> None:
    assert "8位绑定码" in say(client, sim, "绑定")
    assert "8位" in say(client, sim, "绑定 1234")  # a typo, not a guess
    reply = say(client, sim, "绑定银行卡有什么用")
    assert "绑定码" not in reply  # a policy question, left to the policy answers


def test_two_family_members_bind_one_household(
    client: TestClient, services: Services, settings: Settings, api: FakeWeChatAPI
) -> None:
    village = _village_name("长岭村")
    (number,) = add_households(services, village, ["张三丰"])
    code = issue(services)[number]
    mum, son = member(settings, 1), member(settings, 2)
    assert "已绑定" in say(client, mum, f"绑定 {code}")
    assert "已绑定" in say(client, son, f"绑定{code}")
    assert "不用再绑" in say(client, son, f"绑定 {code}")
    assert {k: v[0] for k, v in bindings(services).items()} == {mum.openid: number, son.openid: number}


def test_a_follower_belongs_to_one_household_and_can_unbind(
    client: TestClient, services: Services, sim: WeChatSimulator, api: FakeWeChatAPI
) -> None:
    village = _village_name("长岭村")
    first, second = add_households(services, village, ["张三丰", "李四光"])
    codes = issue(services)
    assert "已绑定" in say(client, sim, f"绑定 {codes[first]}")
    wait_for(lambda: bindings(services)[sim.openid][2])
    reply = say(client, sim, f"绑定 {codes[second]}")
    assert "解绑" in reply and f"{village} 张＊＊家" in reply and "李" not in reply
    assert bindings(services)[sim.openid][0] == first

    tag_id = village_tag_id(services, village)
    assert tag_id and sim.openid in api.tag_members(tag_id)
    reply = say(client, sim, "解绑")
    assert f"已解除绑定：{village} 张＊＊家" in reply
    assert sim.openid not in bindings(services)
    (call,) = wait_for(lambda: api.calls_to("tags/members/batchuntagging"))
    assert call.json == {"tagid": tag_id, "openid_list": [sim.openid]}
    assert sim.openid not in api.tag_members(tag_id)
    assert "还没有绑定" in say(client, sim, "解绑")
    assert f"已绑定：{village} 李＊＊家" in say(client, sim, f"绑定 {codes[second]}")


# -- binding by QR scene ------------------------------------------------------------------------


def _with_scene(services: Services, number: str) -> str:
    with services.db.session() as session:
        row = session.scalar(select(Household).where(Household.number == number))
        return binding.set_scene(session, row)


def test_scanning_the_household_qr_code_binds_on_follow(
    client: TestClient, services: Services, sim: WeChatSimulator
) -> None:
    village = _village_name("长岭村")
    (number,) = add_households(services, village, ["张三丰"])
    issue(services)
    scene = _with_scene(services, number)
    assert scene.startswith("hh_") and number not in scene and len(scene) <= 64
    reply = sim.post(client, sim.event("subscribe", f"qrscene_{scene}")).text or ""
    assert "欢迎关注" in reply and f"已绑定：{village} 张＊＊家" in reply
    assert bindings(services)[sim.openid][:2] == (number, "qr")


def test_scanning_the_household_qr_code_binds_an_existing_follower(
    client: TestClient, services: Services, sim: WeChatSimulator
) -> None:
    village = _village_name("长岭村")
    (number,) = add_households(services, village, ["张三丰"])
    issue(services)
    scene = _with_scene(services, number)
    assert "已绑定" not in (sim.post(client, sim.event("subscribe")).text or "")
    reply = sim.post(client, sim.event("SCAN", scene)).text or ""
    assert f"已绑定：{village} 张＊＊家" in reply
    assert bindings(services)[sim.openid][:2] == (number, "qr")
    assert "不用再绑" in (sim.post(client, sim.event("SCAN", scene)).text or "")
    # A village poster's scene is not a household: the old welcome-back, nothing bound.
    other = WeChatSimulator(TOKEN, APPID, openid="oPosterScan000000000000001")
    assert "欢迎回来" in (other.post(client, other.event("SCAN", "village07")).text or "")
    assert other.openid not in bindings(services)


def test_a_reissued_households_old_qr_code_no_longer_binds(
    client: TestClient, services: Services, sim: WeChatSimulator
) -> None:
    (number,) = add_households(services, _village_name("长岭村"), ["张三丰"])
    issue(services)
    scene = _with_scene(services, number)
    with services.db.session() as session:
        binding.reissue(session, ensure_township(session, services.settings.township), number)
    assert household(services, number).qr_scene is None
    reply = sim.post(client, sim.event("SCAN", scene)).text or ""
    assert "换过" in reply and sim.openid not in bindings(services)


# -- rate limits ------------------------------------------------------------------------------


def _wrong(code: str) -> str:
    """A code that is surely not issued (another first digit keeps it 8 digits)."""
    return ("2" if code[0] == "1" else "1") + code[1:]


def test_five_wrong_codes_lock_one_follower_only(
    client: TestClient, services: Services, settings: Settings
) -> None:
    (number,) = add_households(services, _village_name("长岭村"), ["张三丰"])
    code = issue(services)[number]
    guesser, other = member(settings, 1), member(settings, 2)
    for _ in range(3):
        assert "8位" in say(client, guesser, "绑定 123")  # typos do not count
    replies = [say(client, guesser, f"绑定 {_wrong(code)[:-1]}{d}") for d in "01234"]
    assert all("不对" in r for r in replies)
    assert "帮扶干部" not in replies[3] and "帮扶干部" in replies[4]  # the 5th: ask your helper
    locked = say(client, guesser, f"绑定 {code}")  # even the right code now: no more guessing
    assert "次数太多" in locked and "帮扶干部" in locked
    assert guesser.openid not in bindings(services)
    assert "已绑定" in say(client, other, f"绑定 {code}")  # others are not affected


def test_the_account_wide_limit_stops_everyone(make_settings: Callable[..., Settings]) -> None:
    from bot.app import create_app

    services = build_services(make_settings(bind_fail_global_rate="4/hour"), migrate=True)
    try:
        (number,) = add_households(services, _village_name("长岭村"), ["张三丰"])
        code = issue(services)[number]
        with TestClient(create_app(services)) as client:
            for n in range(4):  # four followers, one wrong code each
                assert "不对" in say(client, member(services.settings, n), f"绑定 {_wrong(code)}")
            late = say(client, member(services.settings, 9), f"绑定 {code}")
            assert "过一会儿再试" in late and "二维码" in late
            assert not bindings(services)
            scene = _with_scene(services, number)  # the QR code still works: it cannot be guessed
            sim = member(services.settings, 10)
            assert "已绑定" in (sim.post(client, sim.event("SCAN", scene)).text or "")
    finally:
        services.close()


# -- village tags ---------------------------------------------------------------------------------


def test_binding_tags_the_follower_and_creates_the_village_tag_once(
    client: TestClient, services: Services, settings: Settings, api: FakeWeChatAPI
) -> None:
    a, b = _village_name("长岭村"), _village_name("河口村")
    (na,) = add_households(services, a, ["张三丰"])
    (nb,) = add_households(services, b, ["李四光"])
    codes = issue(services)
    sims = [member(settings, n) for n in range(3)]
    say(client, sims[0], f"绑定 {codes[na]}")
    say(client, sims[1], f"绑定 {codes[na]}")
    say(client, sims[2], f"绑定 {codes[nb]}")
    wait_for(lambda: all(v[2] for v in bindings(services).values()) and len(bindings(services)) == 3)
    created = [c.json["tag"]["name"] for c in api.calls_to("tags/create")]
    assert sorted(created) == sorted([a, b])
    tag_a, tag_b = village_tag_id(services, a), village_tag_id(services, b)
    assert api.tag_members(tag_a) == {sims[0].openid, sims[1].openid}
    assert api.tag_members(tag_b) == {sims[2].openid}


def test_retag_pending_after_a_wechat_error_in_batches_of_50(
    client: TestClient, services: Services, sim: WeChatSimulator, api: FakeWeChatAPI
) -> None:
    village = _village_name("长岭村")
    (number,) = add_households(services, village, ["张三丰"])
    code = issue(services)[number]
    api.inject("tags/members/batchtagging", *[{"errcode": 45009, "errmsg": "api freq out of limit"}] * 4)
    assert "已绑定" in say(client, sim, f"绑定 {code}")
    wait_for(lambda: len(api.calls_to("tags/members/batchtagging")) >= 4)
    assert not bindings(services)[sim.openid][2]
    # 119 more family members whose tagging never happened (e.g. the worker died after the commit).
    with services.db.session() as session:
        household_id = session.scalar(select(Household.id).where(Household.number == number))
        for n in range(119):
            session.add(HouseholdBinding(household_id=household_id, openid=f"oPending{n:017d}", via="code"))
    api.reset()
    assert wechat_side.retag_pending(services) == 120
    calls = api.calls_to("tags/members/batchtagging")
    assert [len(c.json["openid_list"]) for c in calls] == [50, 50, 20]
    assert all(tagged for _, _, tagged in bindings(services).values())
    assert len(api.tag_members(village_tag_id(services, village))) == 120
    assert api.calls_to("tags/create") == []  # the village's tag was created once, on the first binding
    assert wechat_side.retag_pending(services) == 0


def test_an_existing_tag_of_the_same_name_is_found_not_duplicated(
    services: Services, api: FakeWeChatAPI
) -> None:
    village = _village_name("长岭村")
    (number,) = add_households(services, village, ["张三丰"])
    existing = services.wechat.create_tag(village)  # created by hand, or by an attempt that lost its answer
    with services.db.session() as session:
        household_id = session.scalar(select(Household.id).where(Household.number == number))
        session.add(HouseholdBinding(household_id=household_id, openid="oTagged000000000000000001", via="qr"))
    api.inject("tags/create", {"errcode": 45157, "errmsg": "invalid tag name"})
    assert wechat_side.retag_pending(services) == 1
    assert village_tag_id(services, village) == existing
    assert "oTagged000000000000000001" in api.tag_members(existing)


# -- cadres ------------------------------------------------------------------------------------


def test_a_cadre_binds_their_own_wechat_with_a_cadre_code(
    client: TestClient, services: Services, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with services.db.session() as session:
        township = ensure_township(session, settings.township)
        session.add(Cadre(township_id=township.id, name="赵书记", phone="13812345678", role="村"))
    result = cli(monkeypatch, settings, "codes", "--cadres", "--json")
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.stdout)
    assert item["cadre"] == "赵书记" and item["phone"] == "138****5678" and re.fullmatch(r"\d{8}", item["code"])
    cadre, intruder = member(settings, 1), member(settings, 2)
    assert "干部绑定好了" in say(client, cadre, f"绑定 {item['code']}")
    assert "别的微信" in say(client, intruder, f"绑定 {item['code']}")
    with services.db.session() as session:
        assert session.scalar(select(Cadre.openid)) == cadre.openid
    assert "已解除干部" in say(client, cadre, "解绑")


# -- the printable sheet and QR codes -------------------------------------------------------------


def test_sheet_has_village_masked_name_inline_qr_and_code() -> None:
    labels = [Label(village="长岭村", hamlet="三组", head="张＊＊", number="HH-001", code="47218390",
                    qr_url="http://weixin.qq.com/q/abc"),
              Label(village="河口村", hamlet="", head="李＊", number="HH-002", code="51936274", qr_url=None)]
    html = render_sheet(labels)
    assert html.count('class="label"') == 2
    assert "长岭村 三组" in html and "张＊＊" in html and "4721 8390" in html and "5193 6274" in html
    assert html.count("<svg") == 1 and "size: A4" in html
    assert not re.search(r"<(img|script|link)\b", html) and "src=" not in html and "https://" not in html


def test_qr_option_creates_one_permanent_code_per_household_and_reuses_it(
    services: Services, settings: Settings, api: FakeWeChatAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    village = _village_name("长岭村")
    numbers = add_households(services, village, ["张三丰", "李四光", "王二"])
    out = tmp_path / "labels.html"
    result = cli(monkeypatch, settings, "codes", "--village", village, "--qr", "--out", str(out))
    assert result.exit_code == 0, result.output
    calls = api.calls_to("qrcode/create")
    assert len(calls) == 3
    assert all(c.json["action_name"] == "QR_LIMIT_STR_SCENE" for c in calls)
    scenes = [c.json["action_info"]["scene"]["scene_str"] for c in calls]
    rows = [household(services, n) for n in numbers]
    assert sorted(scenes) == sorted(r.qr_scene for r in rows)
    assert all(r.qr_url and r.qr_url.startswith("http://weixin.qq.com/q/") for r in rows)
    assert not any(n in s for n in numbers for s in scenes)

    html = out.read_text(encoding="utf-8")
    assert html.count("<svg") == 3 and village in html and "张＊＊" in html and "李＊＊" in html
    assert all(binding.format_code(r.code or "") in html for r in rows)
    assert "张三丰" not in html and "李四光" not in html and "王二" not in html
    assert not re.search(r"<(img|script|link)\b", html)

    api.reset()  # a second run, e.g. to print again: no new permanent codes (quota)
    again = cli(monkeypatch, settings, "codes", "--village", village, "--qr", "--out", str(out))
    assert again.exit_code == 0, again.output
    assert api.calls_to("qrcode/create") == []
    assert out.read_text(encoding="utf-8").count("<svg") == 3

    # Reissuing one household: one new QR code, a sheet with just that label.
    reissued = cli(monkeypatch, settings, "codes", "--reissue", numbers[0], "--qr", "--out", str(out))
    assert reissued.exit_code == 0, reissued.output
    (call,) = api.calls_to("qrcode/create")
    assert call.json["action_info"]["scene"]["scene_str"] == household(services, numbers[0]).qr_scene
    assert call.json["action_info"]["scene"]["scene_str"] != rows[0].qr_scene
    assert out.read_text(encoding="utf-8").count('class="label"') == 1


def test_binding_code_masking() -> None:
    assert mask_text("绑定 4721 8390") == "绑定 ********"
    assert mask_text("绑定码：４７２１８３９０") == "绑定码：********"
    assert mask_text("绑定四七二一八三九零") == "绑定********"
    assert mask_text("绑定两个账户") == "绑定两个账户"
    assert binding.mask_code("47218390") == "******90"
    assert binding.normalise_code("４７２１-８３９０！") == "47218390"
    assert binding.normalise_code("4721839") is None


def test_codes_command_help_names_its_options() -> None:
    result = runner.invoke(app, ["households", "codes", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--village", "--json", "--reissue", "--qr", "--out", "--cadres"):
        assert option in result.output


def test_the_sweeper_retags_what_failed_once_a_minute(services: Services, api: FakeWeChatAPI) -> None:
    import handlers  # noqa: F401
    from bot.pipeline import Pipeline
    from bot.router import router
    from bot.sweeper import Sweeper

    village = _village_name("长岭村")
    (number,) = add_households(services, village, ["张三丰"])
    with services.db.session() as session:
        household_id = session.scalar(select(Household.id).where(Household.number == number))
        session.add(HouseholdBinding(household_id=household_id, openid="oSwept0000000000000000001", via="code"))
    sweeper = Sweeper(services, Pipeline(services, router))
    assert sweeper.sweep()["retagged"] == 1
    assert "oSwept0000000000000000001" in api.tag_members(village_tag_id(services, village))
    assert "retagged" not in sweeper.sweep()  # not again within the minute
