"""送政策 over WeChat: a household asks, the handbook answers (or a person is asked to)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.config import Settings
from bot.services import Services
from bot.simulator import WeChatSimulator
from bot.textfit import utf8_len
from storage.models import KbUnanswered
from tests.conftest import wait_for
from tests.support.fake_wechat_api import FakeWeChatAPI


def test_question_in_own_words_gets_a_cited_answer(client: TestClient, sim: WeChatSimulator) -> None:
    text = sim.post(client, sim.text("娃儿读大学有补助没")).text or ""
    assert "5000元" in text
    assert "《青山县脱贫攻坚政策文件汇编》" in text and "第三十一条" in text
    assert "详细" in text and "转人工" in text
    assert utf8_len(text) <= 2048


def test_voice_question_with_a_homophone_is_understood(client: TestClient, sim: WeChatSimulator) -> None:
    text = sim.post(client, sim.voice(recognition="底保咋个申请")).text or ""
    assert "低保" in text and "第" in text and "条" in text


def test_details_sends_the_whole_article_in_pages(client: TestClient, sim: WeChatSimulator) -> None:
    first = sim.post(client, sim.text("房子漏雨能补钱不")).text or ""
    assert "危房" in first
    full = sim.post(client, sim.text("详细")).text or ""
    assert utf8_len(full) <= 2048
    assert len(full) > 100 and "危房" in full and "1.5万元" in full and "3.5万元" in full


def test_details_of_a_long_article_loses_no_page(make_settings) -> None:  # type: ignore[no-untyped-def]
    """An article longer than one WeChat message comes whole over "详细" + "更多"."""
    from bot.app import create_app
    from bot.services import build_services
    from knowledge.ingest.importer import import_files

    settings = make_settings()
    services = build_services(settings, migrate=True)
    sentences = "".join(f"第{i}项：山羊养殖补助按每只三百元发放，需到村委会登记。" for i in range(1, 80))
    handbook = Path(settings.queue_file).parent / "long.md"
    handbook.write_text(f"# 长条款汇编\n\n## 第一章 产业\n\n第一条 山羊养殖补助 {sentences}\n", encoding="utf-8")
    import_files(services.db, [handbook])
    sim = WeChatSimulator(settings.wechat_token, settings.wechat_appid, openid="oLongRead000000000000001")
    try:
        with TestClient(create_app(services)) as client:
            assert "山羊" in (sim.post(client, sim.text("山羊补助多少钱")).text or "")
            pages = [sim.post(client, sim.text("详细")).text or ""]
            while "回复“更多”" in pages[-1]:
                pages.append(sim.post(client, sim.text("更多")).text or "")
            assert len(pages) >= 2 and all(utf8_len(p) <= 2048 for p in pages)
            whole = "".join(pages)
            assert "第1项" in whole and "第79项" in whole
    finally:
        services.close()


def test_other_ways_of_asking_for_a_person_are_queued(
    client: TestClient, services: Services, sim: WeChatSimulator
) -> None:
    sim.post(client, sim.text("残疾人两项补贴怎么领"))
    reply = sim.post(client, sim.text("找人工")).text or ""
    assert "工作人员会尽快联系您" in reply
    with services.db.session() as session:
        assert session.scalar(select(KbUnanswered).where(KbUnanswered.openid == sim.openid)) is not None


def test_follow_up_is_read_in_the_context_of_the_last_topic(client: TestClient, sim: WeChatSimulator) -> None:
    first = sim.post(client, sim.text("易地扶贫搬迁有哪些补助")).text or ""
    assert "搬迁" in first
    follow = sim.post(client, sim.text("那要什么材料")).text or ""
    assert "搬迁" in follow and "答不上来" not in follow


def test_unanswerable_question_is_queued_and_cadres_told(
    client: TestClient, services: Services, sim: WeChatSimulator, api: FakeWeChatAPI
) -> None:
    text = sim.post(client, sim.text("你们村的篮球场晚上几点关门")).text or ""
    assert "答不上来" in text
    with services.db.session() as session:
        row = session.scalar(select(KbUnanswered))
        assert row is not None and row.question == "你们村的篮球场晚上几点关门" and row.openid == sim.openid
    (notice,) = wait_for(lambda: api.calls_to("webhook/send"), timeout=15)
    assert "篮球场" in notice.json["markdown"]["content"]


def test_emoji_only_and_very_long_messages_get_sensible_replies(client: TestClient, sim: WeChatSimulator) -> None:
    emoji = sim.post(client, sim.text("👍👍🙏")).text or ""
    assert emoji and "系统繁忙" not in emoji and "出了点小问题" not in emoji
    long = sim.post(client, sim.text("我想问一下低保的事情" * 200)).text or ""
    assert long and utf8_len(long) <= 2048 and "出了点小问题" not in long


def test_promoting_an_unanswered_question_answers_the_asker(
    client: TestClient, services: Services, settings: Settings, sim: WeChatSimulator, api: FakeWeChatAPI
) -> None:
    """A cadre answers from the command line; the household gets it as a customer-service message."""
    sim.post(client, sim.text("村里的篮球场晚上几点关门"))
    with services.db.session() as session:
        row = session.scalar(select(KbUnanswered))
        assert row is not None
        question_id = row.id
    env = {k: v for k, v in os.environ.items() if not k.startswith("SISONG_") or k.startswith("SISONG_TEST_")}
    env.update(
        SISONG_WECHAT_TOKEN=settings.wechat_token,
        SISONG_WECHAT_APPID=settings.wechat_appid,
        SISONG_WECHAT_SECRET=settings.wechat_secret,
        SISONG_WECHAT_API_BASE=settings.wechat_api_base,
        SISONG_DATABASE_URL=settings.database_url,
        SISONG_QUEUE_PATH=str(settings.queue_file),
        PYTHONPATH=str(Path(__file__).parents[1]),
    )
    if settings.redis_url:
        env["SISONG_REDIS_URL"] = settings.redis_url
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "faq", "add", "--from-unanswered", str(question_id), "晚上九点关门。"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    sent = wait_for(lambda: api.calls_to("message/custom/send"), timeout=15)
    assert sent[0].json["touser"] == sim.openid
    assert "晚上九点关门" in sent[0].json["text"]["content"]
    # The FAQ answers the next household directly, once this worker sees the change (no restart).
    other = WeChatSimulator(settings.wechat_token, settings.wechat_appid, openid="oNeighbour00000000000001")
    wait_for(lambda: "九点" in (other.post(client, other.text("篮球场晚上几点关门")).text or ""),
             timeout=10, interval=0.5)
