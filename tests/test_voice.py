"""Voice messages end to end (issue 12): signed voice pushes in, customer-service replies out.

The audio is real: clips are made here (tones, chords, silence, espeak-ng
speech), encoded to AMR-NB with PyAV's FFmpeg, served by the fake WeChat API's
``media/get`` and decoded by Sisong. Only the speech model is stood in for, by
``ToneRecogniser`` (a tone's pitch names a phrase) or, for the cloud engine,
by the fake Tencent Cloud endpoint behind Tencent's own SDK.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from bot.flusher import drain
from bot.app import create_app
from bot.config import Settings
from bot.context import Context, Conversation
from bot.router import _Keyword, router
from bot.services import Services, build_services
from bot.simulator import WeChatSimulator
from bot.voice.engines import EngineError
from storage.models import KbUnanswered, MessageLog
from storage.models.messages import RECEIVED
from tests.conftest import wait_for
from tests.support.fake_tencent_asr import FakeTencentAsr
from tests.support.fake_wechat_api import FakeWeChatAPI
from tests.support.voice_clips import (
    ToneRecogniser, corrupt_clip, music_clip, silence_clip, tone, tone_clip, truncated,
)

CUSTOM = "message/custom/send"


@pytest.fixture
def voice_settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {"voice_dir": str(tmp_path / "voice"), "asr_timeout": 3.0,
                                     "asr_max_seconds": 10.0, "sweep_interval": 0.5}
        values.update(overrides)
        return make_settings(**values)

    return make


@pytest.fixture
def recogniser() -> ToneRecogniser:
    return ToneRecogniser()


@pytest.fixture
def voice_services(voice_settings: Callable[..., Settings], recogniser: ToneRecogniser) -> Iterator[Services]:
    built = build_services(voice_settings(), migrate=True)
    built.queue.voice.use(recogniser)  # the stand-in for a speech model
    yield built
    built.close()


@pytest.fixture
def voice_client(voice_services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(voice_services)) as client:
        yield client


def post_voice(client: TestClient, sim: WeChatSimulator, api: FakeWeChatAPI, clip: bytes | None,
               media_id: str = "voice-media-1", msg_id: int | None = None) -> float:
    """Post a voice push without Recognition (as WeChat sends them since 2023); seconds the webhook took."""
    if clip is not None:
        api.add_media(media_id, clip)
    started = time.monotonic()
    reply = sim.post(client, sim.voice(media_id=media_id, msg_id=msg_id))
    took = time.monotonic() - started
    assert reply.status == 200 and reply.is_success, reply.raw  # answered at once, nothing passive
    return took


def sent_texts(api: FakeWeChatAPI, openid: str) -> list[str]:
    return [c.json["text"]["content"] for c in api.calls_to(CUSTOM) if c.json and c.json.get("touser") == openid]


def reply_to(api: FakeWeChatAPI, openid: str, timeout: float = 20.0) -> str:
    (text,) = wait_for(lambda: sent_texts(api, openid), timeout=timeout)
    return text


def inbound(services: Services) -> list[MessageLog]:
    drain(services)  # the Redis inbox logs behind (bot.flusher)
    with services.db.session() as session:
        # By arrival: a message logged behind (bot.flusher) gets its row id after later ones committed at once.
        return list(session.scalars(select(MessageLog).where(MessageLog.direction == "in")
                                    .order_by(MessageLog.created_at, MessageLog.id)))


def queued_for_cadres(services: Services) -> list[str]:
    with services.db.session() as session:
        return [row.question for row in session.scalars(select(KbUnanswered).order_by(KbUnanswered.id))]


def kept_clips(settings: Settings) -> list[Path]:
    return sorted(Path(settings.voice_path).rglob("*.amr"))


def settled(services: Services) -> MessageLog:
    return wait_for(lambda: next((r for r in inbound(services) if r.status == "answered"), None))


# -- the whole path ---------------------------------------------------------------------


def test_voice_question_is_transcribed_and_answered_like_typed_text(
    voice_client: TestClient, voice_services: Services, api: FakeWeChatAPI, sim: WeChatSimulator,
) -> None:
    took = post_voice(voice_client, sim, api, tone_clip("底保咋个申请"))
    assert took < 1.0  # the webhook never waits for the recogniser
    text = reply_to(api, sim.openid)
    assert text.startswith("您说的是：“底保咋个申请”\n")  # what was understood comes first, to be corrected
    assert "低保" in text and "第" in text and "条" in text  # the handbook's cited answer, homophone and all
    (media_call,) = api.calls_to("media/get")
    assert media_call.query["media_id"] == "voice-media-1"
    row = settled(voice_services)
    assert row.msg_type == "voice" and row.text == "底保咋个申请" and row.handler == "policy_qa.ask"
    assert row.channel == "custom" and row.errcode == 0
    assert kept_clips(voice_services.settings) == []  # the audio is not kept after transcription
    assert queued_for_cadres(voice_services) == []


def test_a_transcribed_keyword_routes_like_the_typed_keyword(
    voice_client: TestClient, voice_services: Services, api: FakeWeChatAPI, sim: WeChatSimulator,
) -> None:
    typed = sim.post(voice_client, sim.text("帮助")).text or ""
    post_voice(voice_client, sim, api, tone_clip("帮助"))
    text = reply_to(api, sim.openid)
    assert text == "您说的是：“帮助”\n" + typed
    post_voice(voice_client, sim, api, tone_clip("绑定 12345678"), media_id="voice-media-2")
    wait_for(lambda: len(sent_texts(api, sim.openid)) == 2)
    handlers = [r.handler for r in inbound(voice_services)]
    assert handlers[-1] is not None and handlers[-1].startswith("binding.")


def test_a_transcript_answers_the_conversation_step_it_is_in(
    voice_client: TestClient, voice_services: Services, api: FakeWeChatAPI, sim: WeChatSimulator,
) -> None:
    """A survey question waiting for an answer gets the spoken answer, as it would a typed one."""
    answers: list[str | None] = []

    def survey_step(ctx: Context) -> str:
        answers.append(ctx.text)
        ctx.conversation.enter(None)
        return "谢谢您的回答。"

    router.states["voice_test_survey"] = survey_step
    try:
        conversation = Conversation(voice_services, sim.openid)
        conversation.enter("voice_test_survey")
        conversation.save()
        post_voice(voice_client, sim, api, tone_clip("底保咋个申请"))
        assert reply_to(api, sim.openid) == "您说的是：“底保咋个申请”\n谢谢您的回答。"
        assert answers == ["底保咋个申请"]
        assert Conversation(voice_services, sim.openid).state is None  # the step's own state change was saved
    finally:
        del router.states["voice_test_survey"]


def test_transcript_is_logged_masked(
    voice_client: TestClient, voice_services: Services, api: FakeWeChatAPI, sim: WeChatSimulator,
) -> None:
    post_voice(voice_client, sim, api, tone_clip("我的电话是13812345678，低保啥时候发"))
    text = reply_to(api, sim.openid)
    assert "13812345678" in text  # the household sees its own words
    row = settled(voice_services)
    assert row.text is not None and "低保啥时候发" in row.text and "13812345678" not in row.text
    assert row.reply is not None and "13812345678" not in row.reply


def test_wechat_retries_do_not_transcribe_or_answer_twice(
    voice_client: TestClient, voice_services: Services, api: FakeWeChatAPI, sim: WeChatSimulator,
    recogniser: ToneRecogniser,
) -> None:
    recogniser.delay = 1.0  # still transcribing when WeChat retries
    api.add_media("voice-media-1", tone_clip("帮助"))
    xml = sim.voice(media_id="voice-media-1", msg_id=424242)
    assert sim.post(voice_client, xml).is_success
    assert sim.post(voice_client, xml).is_success  # WeChat's retry, same MsgId
    reply_to(api, sim.openid)
    assert sim.post(voice_client, xml).is_success  # a retry after the answer went
    time.sleep(1.0)
    assert len(sent_texts(api, sim.openid)) == 1 and len(api.calls_to("media/get")) == 1
    assert len(recogniser.heard) == 1 and len(inbound(voice_services)) == 1


def test_recognition_from_wechat_is_used_as_before(
    voice_client: TestClient, voice_services: Services, api: FakeWeChatAPI, sim: WeChatSimulator,
) -> None:
    reply = sim.post(voice_client, sim.voice(recognition="帮助"))
    assert "打字或发语音问政策" in (reply.text or "")  # the passive reply, at once
    assert api.calls_to("media/get") == [] and api.calls_to(CUSTOM) == []


def test_keep_voice_keeps_the_audio(
    voice_settings: Callable[..., Settings], api: FakeWeChatAPI, sim: WeChatSimulator,
) -> None:
    services = build_services(voice_settings(keep_voice=True), migrate=True)
    services.queue.voice.use(ToneRecogniser())
    clip = tone_clip("帮助")
    try:
        with TestClient(create_app(services)) as client:
            post_voice(client, sim, api, clip)
            reply_to(api, sim.openid)
            (kept,) = wait_for(lambda: kept_clips(services.settings))
            assert kept.read_bytes() == clip and kept.stem == str(settled(services).id)
    finally:
        services.close()


def test_media_download_from_the_fake_wechat_api(
    voice_services: Services, api: FakeWeChatAPI,
) -> None:
    """media/get as Sisong calls it: binary audio, a token refresh on 40001, 40007 once WeChat dropped it."""
    from bot.voice.task import _download

    clip = tone_clip("帮助")
    api.add_media("m-1", clip)
    data, problem = _download(voice_services, "m-1")
    assert problem is None and data == clip
    api.invalidate_tokens()  # the shared token went stale: refreshed once, then the download works
    data, problem = _download(voice_services, "m-1")
    assert problem is None and data == clip and len(api.calls_to("token")) == 2
    api.expire_media("m-1")  # WeChat keeps temporary media 3 days
    data, problem = _download(voice_services, "m-1")
    assert data == b"" and problem is not None and problem.kind == "expired" and "40007" in problem.detail


# -- every failure: a kind reply, and the message kept for a cadre ------------------------


@pytest.mark.parametrize(
    ("clip", "reply_says", "note_says", "audio_kept"),
    [
        (None, "取不到了", "语音已过期", False),  # media/get: 40007 (WeChat keeps voice 3 days)
        (corrupt_clip(), "打不开", "语音文件损坏", True),
        (truncated(tone_clip("帮助", seconds=3)), "打不开", "语音文件损坏", True),
        (tone_clip("帮助", seconds=12), "有点长", "语音太长", True),  # over SISONG_ASR_MAX_SECONDS (10 here)
        (silence_clip(), "没有声音", "语音没有声音", True),
        (music_clip(), "没听清", "没听清", True),
        (tone_clip("嗯"), "没听清", "没听清", True),  # a filler is not a request
    ],
    ids=["expired", "corrupt", "truncated", "too_long", "silence", "music", "filler"],
)
def test_voice_that_cannot_be_understood_gets_a_kind_reply_and_is_kept(
    voice_client: TestClient, voice_services: Services, api: FakeWeChatAPI, sim: WeChatSimulator,
    clip: bytes | None, reply_says: str, note_says: str, audio_kept: bool,
) -> None:
    post_voice(voice_client, sim, api, clip)
    text = reply_to(api, sim.openid)
    assert reply_says in text and "“0”" in text and "您说的是" not in text
    (note,) = queued_for_cadres(voice_services)
    assert note.startswith("【语音消息 ") and note_says in note
    row = settled(voice_services)
    assert row.handler == "voice.unrecognised_voice" and row.reply == text
    kept = kept_clips(voice_services.settings)
    if audio_kept:  # the cadre can listen to what the recogniser could not
        assert [p.read_bytes() for p in kept] == [clip] and str(kept[0]) in note
    else:
        assert kept == [] and "voice-media-1" in note


def test_a_slow_recogniser_is_cut_off_at_the_time_limit(
    voice_settings: Callable[..., Settings], api: FakeWeChatAPI, sim: WeChatSimulator,
) -> None:
    services = build_services(voice_settings(asr_timeout=0.5), migrate=True)
    services.queue.voice.use(ToneRecogniser(delay=3.0))
    try:
        with TestClient(create_app(services)) as client:
            post_voice(client, sim, api, tone_clip("帮助"))
            started = time.monotonic()
            text = reply_to(api, sim.openid)
            assert time.monotonic() - started < 2.5  # answered at the limit, not when the engine finished
            assert "听得慢" in text
            (note,) = queued_for_cadres(services)
            assert "识别超时" in note
    finally:
        services.close()


@pytest.mark.parametrize("error", [EngineError("model file unreadable"), RuntimeError("onnxruntime: bad alloc")],
                         ids=["engine_error", "unexpected"])
def test_a_failing_recogniser_answers_kindly(
    voice_client: TestClient, voice_services: Services, api: FakeWeChatAPI, sim: WeChatSimulator,
    recogniser: ToneRecogniser, error: Exception,
) -> None:
    recogniser.fail = error
    post_voice(voice_client, sim, api, tone_clip("帮助"))
    assert "听不了语音" in reply_to(api, sim.openid)
    (note,) = queued_for_cadres(voice_services)
    assert "识别出错" in note


def test_a_handler_bug_on_a_transcript_still_apologises_and_keeps_the_words(
    voice_client: TestClient, voice_services: Services, api: FakeWeChatAPI, sim: WeChatSimulator,
) -> None:
    def broken(ctx: Context) -> str:
        raise RuntimeError("handler bug")

    keyword = _Keyword(re.compile(r"^帮助$"), broken, True)
    router.keywords.insert(0, keyword)
    try:
        post_voice(voice_client, sim, api, tone_clip("帮助"))
        assert "出了点小问题" in reply_to(api, sim.openid)
    finally:
        router.keywords.remove(keyword)
    (row,) = inbound(voice_services)
    assert row.status == "failed" and row.text == "帮助"
    assert queued_for_cadres(voice_services) == ["帮助"]


def test_wechat_busy_for_the_download_answers_kindly(
    voice_settings: Callable[..., Settings], api: FakeWeChatAPI, sim: WeChatSimulator,
) -> None:
    services = build_services(voice_settings(api_retry_attempts=2), migrate=True)
    services.queue.voice.use(ToneRecogniser())
    try:
        with TestClient(create_app(services)) as client:
            api.inject("media/get", {"errcode": -1, "errmsg": "system error"}, {"errcode": -1, "errmsg": "busy"})
            post_voice(client, sim, api, tone_clip("帮助"))
            assert "暂时取不到" in reply_to(api, sim.openid)
            assert len(api.calls_to("media/get")) == 2  # retried, then gave up kindly
            (note,) = queued_for_cadres(services)
            assert "暂时取不到语音" in note
    finally:
        services.close()


def test_without_a_recogniser_voice_asks_to_type_and_is_kept(
    make_settings: Callable[..., Settings], api: FakeWeChatAPI, sim: WeChatSimulator,
) -> None:
    services = build_services(make_settings(), migrate=True)
    assert not services.queue.voice.configured
    try:
        with TestClient(create_app(services)) as client:
            api.add_media("voice-media-1", tone_clip("帮助"))
            reply = sim.post(client, sim.voice(media_id="voice-media-1"))
            assert "没听清" in (reply.text or "") and "打字" in (reply.text or "")  # today's reply, passive
            (note,) = queued_for_cadres(services)
            assert "未开启语音识别" in note and "voice-media-1" in note
            assert api.calls_to("media/get") == []
    finally:
        services.close()


def test_a_worker_that_dies_mid_transcription_loses_nothing(
    voice_client: TestClient, voice_services: Services, api: FakeWeChatAPI, sim: WeChatSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The task vanished (its worker was killed): the claim's lease runs out and the sweeper hands it on."""
    lost: list[tuple[int, str]] = []
    real = voice_services.queue.transcribe_voice
    monkeypatch.setattr(voice_services.queue, "transcribe_voice", lambda row_id, owner: lost.append((row_id, owner)))
    post_voice(voice_client, sim, api, tone_clip("帮助"))
    wait_for(lambda: lost)
    (row,) = inbound(voice_services)
    assert row.status == RECEIVED and row.owner == lost[0][1]  # held for the task, durable
    monkeypatch.setattr(voice_services.queue, "transcribe_voice", real)
    with voice_services.db.session() as session:  # the lease runs out (the dead task's budget)
        session.execute(update(MessageLog).where(MessageLog.id == row.id)
                        .values(lease_until=row.created_at.replace(year=2000)))
    text = reply_to(api, sim.openid)
    assert text.startswith("您说的是：“帮助”")
    assert settled(voice_services).attempts == 2


# -- the cloud engine, through Tencent's SDK against a fake endpoint ------------------------


@pytest.fixture
def tencent() -> Iterator[FakeTencentAsr]:
    pytest.importorskip("tencentcloud.asr", reason='the Tencent Cloud SDK is not installed (pip install ".[voice]")')
    with FakeTencentAsr() as fake:
        fake.transcriber = lambda pcm, params: ToneRecogniser().phrase(_samples(pcm))
        yield fake


def _samples(pcm: bytes):  # type: ignore[no-untyped-def]
    import numpy as np

    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def test_cloud_engine_transcribes_through_tencents_sdk(
    voice_settings: Callable[..., Settings], api: FakeWeChatAPI, sim: WeChatSimulator, tencent: FakeTencentAsr,
) -> None:
    settings = voice_settings(asr_secret_id=tencent.secret_id, asr_secret_key=tencent.secret_key,
                              asr_endpoint=tencent.endpoint)
    assert settings.asr_choice == "tencent"
    services = build_services(settings, migrate=True)
    try:
        with TestClient(create_app(services)) as client:
            post_voice(client, sim, api, tone_clip("底保咋个申请", seconds=2.0))
            text = reply_to(api, sim.openid)
            assert text.startswith("您说的是：“底保咋个申请”") and "低保" in text
        (call,) = tencent.calls
        assert call.action == "SentenceRecognition" and call.signature_ok
        assert call.params["EngSerViceType"] == "16k_zh_dialect" and call.params["VoiceFormat"] == "pcm"
        assert abs(call.params["DataLen"] - 2 * 16000 * 2.0) < 16000 * 2 * 0.1  # 2 s of 16 kHz 16-bit PCM
    finally:
        services.close()


def test_cloud_engine_refusal_is_a_kind_reply(
    voice_settings: Callable[..., Settings], api: FakeWeChatAPI, sim: WeChatSimulator, tencent: FakeTencentAsr,
) -> None:
    settings = voice_settings(asr_engine="tencent", asr_secret_id=tencent.secret_id, asr_secret_key="not-the-key",
                              asr_endpoint=tencent.endpoint)
    services = build_services(settings, migrate=True)
    try:
        with TestClient(create_app(services)) as client:
            post_voice(client, sim, api, tone_clip("帮助"))
            assert "听不了语音" in reply_to(api, sim.openid)
            (note,) = queued_for_cadres(services)
            assert "识别出错" in note
        assert [c.signature_ok for c in tencent.calls] == [False]
    finally:
        services.close()


def test_voice_clip_length_survives_the_round_trip() -> None:
    """A control on the clip maker itself: the tone recogniser must not hear a phrase in plain noise."""
    import numpy as np

    from bot.voice.audio import Audio, decode, encode_amr

    rng = np.random.default_rng(1)
    noise = (rng.standard_normal(32000) * 0.2).astype(np.float32)
    audio = decode(encode_amr(noise, 16000), 60)
    assert ToneRecogniser().phrase(audio.samples) == ""
    assert ToneRecogniser().phrase(Audio(tone(600, 1.0), 1.0).samples) == "帮助"
