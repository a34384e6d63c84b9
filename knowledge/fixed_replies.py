"""Fixed replies: greetings, thanks, emoji, empty, over-long and unanswerable messages.

Short and kind, in the words a village cadre would use; each says what to do next.
"""

from __future__ import annotations

import re

from knowledge.search.faq_match import core

UNANSWERABLE = "这个问题我还答不上来，已经转给工作人员，会有人尽快回复您。您也可以换个说法再问问。"
TOO_LONG = "您说的情况比较多，我一下子答不全。已经转给工作人员，会有人尽快回复您。"
NO_TEXT = "您好！请用文字告诉我您想了解的政策，比如“危房改造补多少钱”“娃儿读书有啥补助”。"
GREETING = "您好！我是四送助手，可以帮您查帮扶政策。直接问就行，比如“看病能先不给钱吗”“低保咋个申请”。"
THANKS = "不客气！还有别的政策问题，随时问我。"
CLARIFY = "您想问的是哪一项政策呢？说得具体一点我才好找，比如“危房改造要什么材料”“低保去哪里申请”。"
NEED_TOPIC_FOR_DETAIL = "请先问一个政策问题，再回复“详细”看全文。"
HANDOVER = "好的，已经为您转人工，工作人员会尽快回复您。"
EMPTY_KB = "政策资料还在整理中，这个问题已经转给工作人员，会有人尽快回复您。"

LONG_QUESTION = 300

_WORD = re.compile(r"[\u3400-\u9fff\uf900-\ufaffA-Za-z0-9]")
_GREETINGS = {"你好", "您好", "在吗", "在不在", "有人吗", "hello", "hi", "哈喽", "喂", "早上好", "晚上好", "你好啊", "在"}
_THANKS = {"谢谢", "谢谢你", "谢谢您", "感谢", "多谢", "好的", "好", "知道了", "晓得了", "收到", "明白了", "懂了", "行", "要得", "ok", "嗯"}
_DETAIL = {"详细", "详情", "全文", "看全文", "详细点", "详细些", "详细的", "具体", "具体点", "具体的", "详细说说", "详细内容", "原文"}
_HUMAN = {"0", "〇", "零", "转人工", "人工", "人工服务", "找人工", "转人工服务"}


def has_text(question: str) -> bool:
    return bool(_WORD.search(question))


def kind_of(question: str) -> str | None:
    """greeting | thanks | detail | human, or None for a real question."""
    key = core(question) or question.strip().lower()
    if key in _HUMAN or question.strip() in _HUMAN:
        return "human"
    if key in _DETAIL:
        return "detail"
    if key in _GREETINGS:
        return "greeting"
    if key in _THANKS:
        return "thanks"
    return None
