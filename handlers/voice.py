"""Voice messages nobody could turn into words: a kind reply, and the message kept for a cadre.

Voice that WeChat recognised (``Recognition``) or that we transcribed
(``bot.voice``) never comes here: its words are routed like typed text. This
handler answers the rest: no recogniser configured (``ctx.voice`` is None),
or the reason the recogniser gave (``ctx.voice.kind``). Whatever the reason,
the message goes into the cadres' queue (``sisong unanswered list``) in this
message's unit of work, so no household's voice is lost.
"""

from __future__ import annotations

from datetime import datetime, timezone

from bot.context import Context
from bot.router import router
from bot.voice import service as v
from knowledge.store.unanswered import queue_unanswered
from storage.clock import local

_TYPE_OR_ZERO = "也可以打字告诉我；需要人帮忙，回复“0”。"

REPLIES = {
    v.OFF: "不好意思，这条语音我没听清。请打字告诉我您想问什么；语音已经转给工作人员。需要人帮忙，回复“0”。",
    v.EXPIRED: "不好意思，这条语音时间太久，我取不到了。请再发一遍，" + _TYPE_OR_ZERO,
    v.UNAVAILABLE: "不好意思，这条语音我暂时取不到，已经转给工作人员。请过一会儿再发一遍，" + _TYPE_OR_ZERO,
    v.CORRUPT: "不好意思，这条语音打不开，已经转给工作人员。请再录一遍，" + _TYPE_OR_ZERO,
    v.TOO_LONG: "这条语音有点长，我听不过来。请分成几小段，每段说一件事，" + _TYPE_OR_ZERO,
    v.SILENCE: "这条语音没有声音。请按住说话，靠近手机再说一遍，" + _TYPE_OR_ZERO,
    v.UNCLEAR: "不好意思，我没听清。请在安静的地方，慢一点再说一遍，" + _TYPE_OR_ZERO,
    v.SLOW: "不好意思，我这会儿听得慢，没来得及听完，已经转给工作人员。请过一会儿再说一遍，" + _TYPE_OR_ZERO,
    v.FAILED: "不好意思，我这会儿听不了语音，已经转给工作人员。" + _TYPE_OR_ZERO,
}

# How the cadres' queue names each reason.
NOTES = {
    v.OFF: "未开启语音识别", v.EXPIRED: "语音已过期，取不到", v.UNAVAILABLE: "暂时取不到语音",
    v.CORRUPT: "语音文件损坏", v.TOO_LONG: "语音太长", v.SILENCE: "语音没有声音", v.UNCLEAR: "没听清",
    v.SLOW: "识别超时", v.FAILED: "识别出错",
}


@router.message("voice")
def unrecognised_voice(ctx: Context) -> str:
    result = ctx.voice
    kind = result.kind if result is not None and not result.heard else v.OFF
    queue_unanswered(ctx.session, ctx.openid, cadre_note(ctx, result, kind))
    return REPLIES[kind]


def cadre_note(ctx: Context, result: v.VoiceResult | None, kind: str) -> str:
    """What a cadre reads in the queue: when, how long, why not understood, where the audio is kept.

    The time (to the second) also keeps two voice messages of one household
    apart in the queue, which merges identical questions.
    """
    created = datetime.fromtimestamp(int(ctx.message._data.get("CreateTime") or 0), timezone.utc)
    when = local(created, ctx.services.settings.timezone, "%m-%d %H:%M:%S")
    parts = [f"语音消息 {when}"]
    if result is not None and result.seconds:
        parts.append(f"{result.seconds:.0f}秒")
    parts.append(NOTES[kind])
    if result is not None and result.kept:
        parts.append(f"录音已保存：{result.kept}")
    else:
        parts.append(f"MediaId {getattr(ctx.message, 'media_id', '') or '无'}（微信保存3天）")
    return "【" + "，".join(parts) + "】"
