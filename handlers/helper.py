"""“我的帮扶人是谁” / “联系帮扶人” / “我家是哪个村”: answered from the household's record.

Only a bound follower gets their household's details (the helper's name and
phone are for that household); anyone else is told how to bind. Asking to
contact the helper also tells the helper, after the message's unit of work
has committed: in the cadres' WeCom group, and by a customer-service message
when the helper has bound their own WeChat and wrote within 48 hours.
"""

from __future__ import annotations

from bot.context import Context
from bot.notices import notify
from bot.router import router
from storage.households import household_of
from storage.models.org import Household
from storage.privacy import mask_name, short_openid

NOT_BOUND = (
    "您还没有绑定家里的信息。请向帮扶干部要“绑定码”，然后回复：绑定 绑定码\n"
    "也可以用微信扫一扫政策汇编上贴的二维码。"
)
NO_HELPER = "您家还没有登记帮扶责任人。回复“0”，我们请工作人员联系您。"


@router.keyword("我的帮扶人是谁", "我的帮扶责任人是谁", "帮扶人是谁", "帮扶责任人是谁", "谁是我的帮扶人",
                "谁是我家的帮扶人", "我家的帮扶人是谁", "我的帮扶人", "我的帮扶责任人", "帮扶人电话",
                "帮扶人的电话", "帮扶人电话是多少", "帮扶人的电话是多少", overrides_state=True)
def who_is_my_helper(ctx: Context) -> str:
    household = household_of(ctx.session, ctx.openid)
    if household is None:
        return NOT_BOUND
    if household.helper is None:
        return NO_HELPER
    return f"您家的帮扶责任人是{household.helper.name}{_phone(household)}。有事可以直接打电话，也可以回复“联系帮扶人”。"


@router.keyword("联系帮扶人", "我要联系帮扶人", "找帮扶人", "找我的帮扶人", "联系帮扶责任人",
                "联系我的帮扶人", overrides_state=True)
@router.click("CONTACT_HELPER")
def contact_helper(ctx: Context) -> str:
    household = household_of(ctx.session, ctx.openid)
    if household is None:
        return NOT_BOUND + "\n也可以回复“0”，请工作人员联系您。"
    if household.helper is None:
        return NO_HELPER
    _tell_helper(ctx, household)
    return (f"已经告诉您家的帮扶责任人{household.helper.name}，请留意电话。"
            f"着急的话可以直接打{_phone(household, lead='')}。")


@router.keyword("我家是哪个村", "我家在哪个村", "我是哪个村的", "我家是哪个村的", "我家的信息", "我的信息",
                "查我家信息", "我家登记的信息", overrides_state=True)
def my_household(ctx: Context) -> str:
    household = household_of(ctx.session, ctx.openid)
    if household is None:
        return NOT_BOUND
    place = household.village.name + (household.hamlet.name if household.hamlet else "")
    area = f"（{household.village.area.name}）" if household.village.area else ""
    lines = [f"您家登记在{place}{area}，户主{household.head_name}，户编号{household.number}。"]
    if household.helper is not None:
        lines.append(f"帮扶责任人：{household.helper.name}{_phone(household)}。")
    lines.append("信息不对的话，请告诉帮扶干部改正。")
    return "\n".join(lines)


def _phone(household: Household, lead: str = "，电话") -> str:
    phone = household.helper.phone if household.helper else ""
    return f"{lead}{phone}" if phone else ""


def _tell_helper(ctx: Context, household: Household) -> None:
    """The household's WeCom group (masked: other cadres read it) and, if reachable, the helper's own WeChat.

    ``bot.notices`` picks the group and checks the helper's 48-hour window; the
    rows commit with this message and go out after the commit.
    """
    helper = household.helper
    assert helper is not None
    markdown = (
        "### 住户请帮扶责任人联系\n"
        f"> 村：{household.village.name}\n> 户主：{mask_name(household.head_name)}（户编号 {household.number}）\n"
        f"> 帮扶责任人：{helper.name}\n> 住户：{short_openid(ctx.openid)}"
    )
    direct = (f"{household.village.name}{household.head_name}家（户编号 {household.number}）"
              f"请您联系他们{('，电话' + household.phone) if household.phone else ''}。")
    notice = notify(ctx.session, ctx.services, markdown, household=household, helper_text=direct)
    ctx.after_commit(lambda: notice.dispatch(ctx.services))
