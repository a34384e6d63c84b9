"""“绑定 <绑定码>” and “解绑”: a family member links their WeChat to their household.

The words are for elderly people reading on a phone: short, kind, and never a
name in clear (``长岭村 张＊＊家``). The code a follower typed is masked in the
message log by ``mask_text`` like a phone number would be. WeChat calls
(village tags) run only after the binding committed.
"""

from __future__ import annotations

from bot import binding as wechat_side
from bot.context import Context
from bot.router import router
from storage import binding
from storage.binding import BindResult, UnbindResult
from storage.privacy import mask_name

_DIGIT_CHARS = "0-9０-９〇零一二三四五六七八九幺两"
# "绑定 4721 8390", "绑定4721-8390", "绑定码：４７２１８３９０", "绑定" alone; not "绑定银行卡…".
BIND_PATTERN = rf"^\s*绑定码?\s*[:：]?\s*(?:[{_DIGIT_CHARS}][{_DIGIT_CHARS}\s\u3000\-－—_.。,，]*)?\s*[。.!！]*\s*$"
UNBIND_WORDS = ("解绑", "解除绑定", "取消绑定")

HOW_TO = "请发“绑定”两个字，后面跟上政策手册上的8位绑定码。也可以直接用微信扫手册上的二维码。"


@router.pattern(BIND_PATTERN, overrides_state=True)
def bind(ctx: Context) -> str:
    words = (ctx.text or "").strip()
    code = words.split("定", 1)[1].lstrip("码:： \u3000") if "定" in words else ""
    if not any(ch.isdigit() or ch in "〇零一二三四五六七八九幺两" for ch in code):
        return HOW_TO
    settings = ctx.services.settings
    result = binding.bind_by_code(
        ctx.session, ctx.openid, code, limiter=ctx.services.limiter,
        follower_rate=settings.bind_fail_rate, global_rate=settings.bind_fail_global_rate,
    )
    after_binding(ctx, result)
    return bind_reply(result)


@router.keyword(*UNBIND_WORDS, overrides_state=True)
def unbind(ctx: Context) -> str:
    result = binding.unbind(ctx.session, ctx.openid)
    after_unbinding(ctx, result)
    return unbind_reply(result)


def after_binding(ctx: Context, result: BindResult) -> None:
    """A new household binding gets its village tag once the unit of work has committed."""
    if result.status == binding.BOUND:
        services, openid = ctx.services, ctx.openid
        ctx.after_commit(lambda: wechat_side.tag_follower(services, openid))


def after_unbinding(ctx: Context, result: UnbindResult) -> None:
    if result.tag_id is not None:
        services, openid, tag_id = ctx.services, ctx.openid, result.tag_id
        ctx.after_commit(lambda: wechat_side.untag_follower(services, tag_id, openid))


def bind_reply(result: BindResult) -> str:
    status = result.status
    if status == binding.BOUND:
        return f"绑定好了！已绑定：{result.label}。\n以后有事直接在这里说，帮扶干部能更快帮到您。"
    if status == binding.ALREADY:
        return f"您已经绑定好了：{result.label}，不用再绑。"
    if status == binding.OTHER_HOUSEHOLD:
        return (f"您的微信已经绑定了：{result.label}。一个微信只能绑定一户。\n"
                "如果要换成别的户，请先回复“解绑”，再重新绑定。")
    if status == binding.WRONG_CODE:
        if result.locked_now:
            return "这个绑定码不对。已经试了好几次了，请先别试，请您的帮扶干部帮您绑定。"
        return "这个绑定码不对，请对照政策手册上的8位数字，再发一次“绑定”加绑定码。"
    if status == binding.BAD_FORMAT:
        return "绑定码是8位数字，好像少了或多了几位。" + HOW_TO
    if status == binding.LOCKED:
        return "绑定码试错的次数太多了，请过一个小时再试，或请您的帮扶干部帮您绑定。"
    if status == binding.BUSY:
        return "现在绑定的人比较多，请过一会儿再试。也可以用微信扫政策手册上的二维码绑定。"
    if status == binding.UNKNOWN_SCENE:
        return "这个二维码已经换过了，不能再用。请用新的二维码，或请帮扶干部帮您绑定。"
    if status == binding.CADRE_BOUND:
        return f"干部绑定好了：{mask_name(result.cadre.name if result.cadre else '')}。群众找您时，这里会通知您。"
    if status == binding.CADRE_ALREADY:
        return "您的干部微信已经绑定好了，不用再绑。"
    if status == binding.CADRE_TAKEN:
        return "这个干部绑定码已经绑定了别的微信。如要更换，请联系镇里的管理员。"
    return HOW_TO  # pragma: no cover - every status is answered above


def unbind_reply(result: UnbindResult) -> str:
    if result.household is not None:
        return (f"已解除绑定：{binding.household_label(result.household)}。\n"
                "如要重新绑定，发“绑定”加绑定码，或扫政策手册上的二维码。")
    if result.cadre is not None:
        return "已解除干部微信的绑定。"
    return "您的微信还没有绑定哪一户，不用解绑。"
