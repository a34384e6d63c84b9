"""Personal numbers in every format households write them, masked on every path out.

First the table: each format (half- and full-width, spoken digits) and what
``mask_text`` makes of it, then ordinary numbers that must stay as written.
Then every format through each path: log lines (key=value and JSON), logged
tracebacks, the WeCom robot, the unanswered queue and ``sisong unanswered
list``, FAQ promotion and ``sisong faq list``. Each path test asserts both that
the clear number is gone and that the masked form is there, so a path that
drops the text altogether does not pass.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

import knowledge.cli as cli
from bot.flusher import drain
from bot.logs import JsonFormatter, KeyValueFormatter, MaskingFilter, setup_logging
from storage.privacy import mask_text
from bot.services import Services
from bot.wecom import WeComRobot
from knowledge.search.faq_match import core
from knowledge.store.faq import add_faq, list_faqs, promote_unanswered
from knowledge.store.unanswered import list_unanswered, record_unanswered
from storage.models.knowledge import KbUnanswered
from tests.support.fake_wechat_api import FakeWeChatAPI

PHONE = "138****5678"
ID18 = "110101********1234"
ID18X = "110101********123X"
ID15 = "110101******123"
CARD19 = "6222 **** 0123"
CARD16 = "6222 **** 7890"

# (as written, masked)
FORMATS: list[tuple[str, str]] = [
    # mainland mobiles
    ("13812345678", PHONE),
    ("+86 13812345678", PHONE),
    ("+8613812345678", PHONE),
    ("0086-138-1234-5678", PHONE),
    ("86 138 1234 5678", PHONE),
    ("138-1234-5678", PHONE),
    ("138 1234 5678", PHONE),
    ("138.1234.5678", PHONE),
    ("138-1234 5678", PHONE),
    ("１３８１２３４５６７８", PHONE),
    ("＋８６１３８１２３４５６７８", PHONE),
    ("＋８６ １３８ １２３４ ５６７８", PHONE),
    ("１３８－１２３４－５６７８", PHONE),
    ("１３８\u3000１２３４\u3000５６７８", PHONE),
    ("一三八一二三四五六七八", PHONE),
    ("幺三八幺二三四五六七八", PHONE),
    ("一三八 一二三四 五六七八", PHONE),
    ("一五零两三四〇六七八九", "150****6789"),
    ("138一二三四五六七八", PHONE),
    # resident IDs
    ("110101199001011234", ID18),
    ("11010119900101123X", ID18X),
    ("11010119900101123x", ID18X),
    ("110101 19900101 1234", ID18),
    ("110101-1990-0101-123X", ID18X),
    ("１１０１０１１９９００１０１１２３４", ID18),
    ("１１０１０１１９９００１０１１２３Ｘ", ID18X),
    ("110101900101123", ID15),
    ("110101 900101 123", ID15),
    ("１１０１０１９００１０１１２３", ID15),
    # bank cards
    ("6222021234567890123", CARD19),
    ("6222 0212 3456 7890 123", CARD19),
    ("6222-0212-3456-7890-123", CARD19),
    ("6222021234567890", CARD16),
    ("6222 0212 3456 7890", CARD16),
    ("６２２２０２１２３４５６７８９０１２３", CARD19),
    ("６２２２\u3000０２１２\u3000３４５６\u3000７８９０\u3000１２３", CARD19),
    # stray openids
    ("oAbCdEfGhIjKlMnOpQrStUvWxYz", "oAbC…WxYz"),
]

# Ordinary numbers a household or a log line carries: never masked.
UNMASKED = [
    "补贴20000元",
    "2024-01-15",
    "2024年1月15日",
    "2024.01.15 2024.01.16",
    "2021 2022 2023 2024年都领了",
    "户编号530123001，第30条",
    "1,234,567元",
    "乡政府电话0871-65123456",
    "+86 871 6512 3456",
    "400-800-1234",
    "192.168.100.123",
    "10:30:45 3.1415926 v1.2.3",
    "一二三四五 第十一条 两个人 一九九〇年",
    "123456789012345",  # 15 digits, but no birth date where an old ID has one
    "elapsed 1705312345678 ms",
    "共 13 14 15 16 17 18 户",
]


def _digits(text: str) -> str:
    """ASCII digits only: how a clear number would look once its separators are stripped."""
    spoken = str.maketrans("〇零一二三四五六七八九幺两", "0012345678912")
    table = {0xFF10 + i: str(i) for i in range(10)}
    return re.sub(r"\D", "", text.translate(table).translate(spoken))


def _sentence(raw: str) -> str:
    return f"我的号码{raw}请回电"


def assert_masked(output: str, raw: str, masked: str) -> None:
    """The clear number is absent in every spelling and the masked form is present."""
    assert masked in output, output
    assert raw not in output, output
    if raw.startswith("o"):
        return
    national = _digits(raw)[-11:] if masked.endswith("****5678") or "****6789" in masked else _digits(raw)
    assert national not in _digits(output), output


# -- the table ---------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "masked"), FORMATS)
def test_every_format_is_masked(raw: str, masked: str) -> None:
    assert mask_text(raw) == masked
    assert mask_text(_sentence(raw)) == _sentence(masked)
    assert mask_text(f"{raw}，{raw}") == f"{masked}，{masked}"
    assert mask_text(mask_text(raw)) == masked  # stored masked, masked again on the way out


@pytest.mark.parametrize("text", UNMASKED)
def test_ordinary_numbers_are_left_alone(text: str) -> None:
    assert mask_text(text) == text


def test_numbers_next_to_each_other_are_masked_one_by_one() -> None:
    assert mask_text("13812345678 13987654321") == "138****5678 139****4321"
    assert mask_text("2024-01-15 13812345678") == "2024-01-15 138****5678"
    assert mask_text("138 1234 5678 2个人") == "138****5678 2个人"
    assert mask_text("13812345678两个人都打过") == "138****5678两个人都打过"
    assert mask_text("户主手机13812345678，身份证号码110101199001011234，卡号6222021234567890123") == (
        "户主手机138****5678，身份证号码110101********1234，卡号6222 **** 0123"
    )
    assert mask_text("用户oAbCdEfGhIjKlMnOpQrStUvWxYz来了") == "用户oAbC…WxYz来了"
    assert mask_text("") == ""


def test_long_runs_of_digits_cost_linear_time() -> None:
    """Every log line and message goes through mask_text: a crafted message must not stall it."""
    import time

    started = time.perf_counter()
    for crafted in ("1 " * 50_000, "一" * 100_000, "9" * 100_000, "13812345678 " * 5_000):
        masked = mask_text(crafted)
    assert masked == f"{PHONE} " * 5_000
    assert time.perf_counter() - started < 3.0


# -- logs ----------------------------------------------------------------------------------


@pytest.fixture
def sisong_logging() -> Iterator[None]:
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_sisong", False):
            root.removeHandler(handler)


@pytest.mark.parametrize("json_lines", [False, True], ids=["key=value", "json"])
def test_log_lines_mask_every_format(
    json_lines: bool, capsys: pytest.CaptureFixture[str], sisong_logging: None
) -> None:
    setup_logging("INFO", json_lines=json_lines)
    log = logging.getLogger("sisong.test.privacy")
    for raw, masked in FORMATS:
        log.info("住户说 %s", _sentence(raw), extra={"question": _sentence(raw), "raw": [raw]})
        err = capsys.readouterr().err
        assert err.count(masked) >= 3, err  # message, string extra, list extra
        assert_masked(err, raw, masked)
        if json_lines:
            line = json.loads(err)
            assert line["msg"] == "住户说 " + _sentence(masked) and line["question"] == _sentence(masked)


@pytest.mark.parametrize("json_lines", [False, True], ids=["key=value", "json"])
def test_logged_tracebacks_mask_every_format(
    json_lines: bool, capsys: pytest.CaptureFixture[str], sisong_logging: None
) -> None:
    setup_logging("INFO", json_lines=json_lines)
    log = logging.getLogger("sisong.test.privacy")
    for raw, masked in FORMATS:
        words = _sentence(raw)
        try:
            raise ValueError(f"cannot parse {words!s}")
        except ValueError:
            log.exception("handler failed")
        err = capsys.readouterr().err
        assert "Traceback" in err and "ValueError: cannot parse " + _sentence(masked) in err, err
        assert_masked(err, raw, masked)
        if json_lines:
            assert _sentence(masked) in json.loads(err)["exc"]


def test_a_phone_passed_as_a_number_is_masked(capsys: pytest.CaptureFixture[str], sisong_logging: None) -> None:
    setup_logging("INFO", json_lines=True)
    logging.getLogger("sisong.test.privacy").info("callback", extra={"phone": 13812345678, "ms": 12})
    line = json.loads(capsys.readouterr().err)
    assert line["phone"] == PHONE and line["ms"] == 12


@pytest.mark.parametrize("formatter", [JsonFormatter(), KeyValueFormatter("%(message)s")], ids=["json", "key=value"])
def test_formatters_mask_without_the_filter_and_mask_stack_info(formatter: logging.Formatter) -> None:
    """A formatter wired up without MaskingFilter still masks, stack_info included."""
    try:
        raise RuntimeError(_sentence("138 1234 5678"))
    except RuntimeError:
        import sys

        exc_info = sys.exc_info()
    record = logging.makeLogRecord({
        "msg": "got %s", "args": ("６２２２０２１２３４５６７８９０１２３",), "exc_info": exc_info,
        "stack_info": "Stack (most recent call last):\n  handle(text='110101 19900101 1234')",
    })
    out = formatter.format(record)
    for raw, masked in [("138 1234 5678", PHONE), ("６２２２０２１２３４５６７８９０１２３", CARD19),
                        ("110101 19900101 1234", ID18)]:
        assert_masked(out, raw, masked)


def test_masking_filter_masks_exc_text_for_every_handler_after_it() -> None:
    try:
        raise KeyError("＋８６ １３８ １２３４ ５６７８")
    except KeyError:
        import sys

        record = logging.makeLogRecord({"msg": "boom", "exc_info": sys.exc_info()})
    assert MaskingFilter().filter(record)
    assert record.exc_text and PHONE in record.exc_text and "５６７８" not in record.exc_text
    assert PHONE in logging.Formatter().format(record)  # a plain formatter reuses the masked text


# -- WeCom ---------------------------------------------------------------------------------


def test_wecom_robot_masks_every_format(api: FakeWeChatAPI) -> None:
    robot = WeComRobot(api.wecom_url)
    for raw, _masked in FORMATS:
        robot.send_markdown(f"### 有住户请求人工帮助\n> 最近的问题：{_sentence(raw)}")
    calls = api.calls_to("webhook/send")
    assert len(calls) == len(FORMATS)
    for call, (raw, masked) in zip(calls, FORMATS):
        content = call.json["markdown"]["content"]
        assert content == f"### 有住户请求人工帮助\n> 最近的问题：{_sentence(masked)}"
        assert_masked(content, raw, masked)


def test_wecom_notices_from_the_queue_are_masked(services: Services, api: FakeWeChatAPI) -> None:
    services.queue.wecom_task.call_local("> 最近的问题：我身份证110101-1990-0101-123X，电话+86 138 1234 5678")
    (call,) = api.calls_to("webhook/send")
    content = call.json["markdown"]["content"]
    assert content == f"> 最近的问题：我身份证{ID18X}，电话{PHONE}"


# -- unanswered queue and `sisong unanswered list` -------------------------------------------

runner = CliRunner()


@pytest.fixture
def db(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator:  # type: ignore[type-arg]
    """The app's database on both backends, also behind the command line."""
    cli.set_db_factory(lambda: services.db)
    monkeypatch.setattr(cli.console, "_width", 240)  # no table cell wraps a masked number
    yield services.db
    cli.set_db_factory(cli._default_db)


def _cli(*args: str) -> str:
    result = runner.invoke(cli.app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_unanswered_questions_are_stored_and_listed_masked(db) -> None:  # type: ignore[no-untyped-def]
    ids = {record_unanswered(db, f"oAsker{n:022d}", _sentence(raw)): (raw, masked)
           for n, (raw, masked) in enumerate(FORMATS)}
    assert len(ids) == len(FORMATS)

    with db.session() as session:
        stored = {row.id: (row.question, row.normalized) for row in session.query(KbUnanswered)}
    listed = {u.id: u.question for u in list_unanswered(db)}
    table = _cli("unanswered", "list")
    as_json = {item["id"]: item for item in map(json.loads, _cli("unanswered", "list", "--json").splitlines())}
    for item_id, (raw, masked) in ids.items():
        question, normalized = stored[item_id]
        assert question == _sentence(masked)
        assert normalized == core(_sentence(masked))
        assert listed[item_id] == _sentence(masked)
        assert as_json[item_id]["question"] == _sentence(masked)
        assert_masked(json.dumps(as_json[item_id], ensure_ascii=False), raw, masked)
    for raw, masked in FORMATS:
        assert_masked(table, raw, masked)


def test_the_same_number_written_differently_is_one_queue_entry(db) -> None:  # type: ignore[no-untyped-def]
    first = record_unanswered(db, "oSameAsker", "我电话13812345678，低保咋个办")
    assert record_unanswered(db, "oSameAsker", "我电话１３８－１２３４－５６７８，低保咋个办") == first
    assert record_unanswered(db, "oSameAsker", "我电话一三八一二三四五六七八，低保咋个办") == first
    assert [u.question for u in list_unanswered(db)] == [f"我电话{PHONE}，低保咋个办"]


def test_rows_queued_before_masking_are_listed_masked(db) -> None:  # type: ignore[no-untyped-def]
    raw = "+86 138 1234 5678"
    with db.session() as session:
        session.add(KbUnanswered(openid="oOld", question=_sentence(raw), normalized=core(_sentence(raw))))
    assert_masked(_cli("unanswered", "list"), raw, PHONE)
    assert_masked(_cli("unanswered", "list", "--json"), raw, PHONE)


# -- FAQ ---------------------------------------------------------------------------------------


def test_promotion_masks_every_format_in_the_faq_question(db) -> None:  # type: ignore[no-untyped-def]
    """Rows queued before masking hold clear numbers: promotion still masks what households will see."""
    for n, (raw, masked) in enumerate(FORMATS):
        with db.session() as session:
            row = KbUnanswered(openid=f"oLegacy{n}", question=_sentence(raw), normalized=core(_sentence(raw)))
            session.add(row)
            session.flush()
            item_id = row.id
        # Clear numbers in a question are refused unless the cadre allows them; then they are masked.
        promote_unanswered(db, item_id, "请带材料到乡镇办理。", allow_contact=True)
        with db.session() as session:
            faq_id = session.get(KbUnanswered, item_id).faq_id
        (faq,) = [f for f in list_faqs(db) if f.id == faq_id]
        assert faq.question == _sentence(masked)
        assert_masked(faq.question, raw, masked)
    listing = _cli("faq", "list", "--json")
    assert "13812345678" not in listing and "110101199001011234" not in listing


def test_a_rephrased_question_is_masked_and_a_cadre_answer_kept_as_written(db) -> None:  # type: ignore[no-untyped-def]
    item = record_unanswered(db, "oAsker", "残疾证咋个办")
    answer = "请联系帮扶干部，手机13912345678，或打乡政府电话0871-65123456。"
    promote_unanswered(db, item, answer, question="残疾证咋个办（住户１１０１０１１９９００１０１１２３４问）",
                       allow_contact=True)  # refused without: see test_private_reply.py
    (faq,) = list_faqs(db)
    assert faq.answer == answer  # the cadre's deliberate contact numbers reach the households
    assert_masked(faq.question, "１１０１０１１９９００１０１１２３４", ID18)

    add_faq(db, "我电话 138 1234 5678 能办低保吗", "可以，带户口本到村委会。")
    direct = list_faqs(db)[-1]
    assert direct.question == f"我电话 {PHONE} 能办低保吗"
    table = _cli("faq", "list")
    assert "13912345678" in table and "0871-65123456" in table
    assert_masked(table, "138 1234 5678", PHONE)


def test_the_command_line_masks_what_it_prints_even_if_a_store_did_not(  # type: ignore[no-untyped-def]
    db, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: whatever a store hands back, households' numbers are not printed in clear."""
    from datetime import datetime

    from knowledge.store.faq import FaqRecord
    from knowledge.store.unanswered import UnansweredRecord

    raw = "６２２２　０２１２　３４５６　７８９０　１２３"
    monkeypatch.setattr(cli, "list_unanswered", lambda *a, **k: [
        UnansweredRecord(1, "oAsker", _sentence(raw), "open", datetime(2024, 1, 15, 9, 30), None)])
    monkeypatch.setattr(cli, "list_faqs", lambda *a, **k: [FaqRecord(1, _sentence(raw), "带卡到信用社。", None)])
    for args in (("unanswered", "list"), ("unanswered", "list", "--json"), ("faq", "list"), ("faq", "list", "--json")):
        assert_masked(_cli(*args), raw, CARD19)


# -- the message path: everything a household's message leaves behind -------------------------


def test_numbers_in_a_message_are_masked_in_every_store_and_notice(client, services, api, backend) -> None:  # type: ignore[no-untyped-def]
    """One message with a phone, an ID and a card: the reply to the household is unchanged, but the
    message log, the unanswered queue, the conversation state (Redis) and the WeCom notice are masked."""
    from sqlalchemy import select

    from bot.simulator import WeChatSimulator
    from storage.models import KbUnanswered, MessageLog
    from tests.conftest import APPID, TOKEN, wait_for

    openid = "oPrivacyPath000000000001"
    sim = WeChatSimulator(TOKEN, APPID, openid=openid)
    words = "我电话+86 138-1234-5678，身份证１１０１０１１９９００１０１１２３４，卡号6222 0212 3456 7890 123，彩礼太高了政府管不管"
    clear = ("1234-5678", "12345678", "１９９００１０１", "199001011234", "3456 7890", "34567890")
    reply = sim.post(client, sim.text(words))
    assert reply.text  # handed over: the household is told a person will look
    sim.post(client, sim.text("0"))  # and asks for a person: the last question goes to the group

    notices = wait_for(lambda: api.calls_to("webhook/send"), timeout=10)
    drain(services)  # the Redis inbox logs behind (bot.flusher)
    with services.db.session() as session:
        logged = [m.text or "" for m in session.scalars(select(MessageLog))]
        queued = [q.question for q in session.scalars(select(KbUnanswered))]
    state = services.state.get("session:" + openid) or ""
    stored = logged + queued + [state] + [n.json["markdown"]["content"] for n in notices]
    assert queued and state and notices
    for text in stored:
        assert not any(c in text for c in clear), text
    assert any("138****5678" in text for text in logged)
