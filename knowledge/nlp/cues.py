"""What a question asks about: an amount, the papers to bring, where to go, when, how, or who qualifies.

The ranking finds the article; these cues pick the sentences of it worth
quoting. "补多少钱" wants the sentence with the amount, "要带啥" the one that
lists documents. Cue words are also what a follow-up like "那要什么材料"
consists of, which is how a follow-up is told from a new question.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Cue:
    name: str
    question: re.Pattern[str]  # matched on the question
    sentence: re.Pattern[str]  # matched on candidate sentences


CUES: tuple[Cue, ...] = (
    Cue(
        "amount",
        re.compile(r"多少|好多|几多|多钱|好些钱|几个钱|几块|块钱|补.{0,2}钱|给.{0,2}钱|标准|额度|补不补|补点|多补|能报|报多|最多|最高|几个点|比例|百分之|几成|工资|津贴|补贴|补助|奖励|多大|面积|平方|几年|期限"),
        re.compile(r"\d[\d.,]*\s*(万元|元|%|平方米|周岁|年|个月|天)|[一二三四五六七八九十两]+(万元|元|年|个月)|全额|免除|免费|不承担"),
    ),
    Cue(
        "materials",
        re.compile(r"材料|资料|手续|证明|证件|带啥|带什么|带哪些|要带|带上|东西|证$|照片|相片|复印件"),
        re.compile(r"提供|带上|带|材料|身份证|户口簿|证明|申请表|照片|凭"),
    ),
    Cue(
        "where",
        re.compile(r"哪里|哪儿|哪点|哪哈|哪块|哪切|在哪|去哪|找哪|找谁|哪个部门|哪个单位|向哪|哪家"
                   r"|哪个(来|管|负责|审|批|办|发|搞|收|定)|谁(来|管|负责|审|批|办|发|定)"
                   r"|哪个(卡|银行|账户|折子|窗口|地方|医院|网点)|(打|发|存|转|汇)到哪"
                   # "是找村里还是找乡里": a choice between places is a where-question too.
                   r"|(找|去|到|在)[^，,。？?！!\s]{1,6}还是(找|去|到|在)"),
        re.compile(r"到.{0,12}(办理|申请|咨询|领取|登记|报名|反映)|向.{0,12}(申请|提出|反映)|找|村委会|乡镇|县.{0,4}(局|中心|残联|大厅)|窗口|网点|小程序"),
    ),
    Cue(
        "when",
        re.compile(r"什么时候|啥时候|啥子时候|么子时候|哪阵|几时|多久|多长时间|几号|哪天|几天|几点|好久|时间|到账|期限"
                   r"|(多少|好多)(天|个工作日|个月|小时)|几个月|几月份"),
        re.compile(r"\d+\s*(日|号|月|天|个工作日|小时|年)|[一二三四五六七八九十]+(个月|天|年)|每月|每年|每季度|之前|以前|以内|期间|前后|时"),
    ),
    Cue(
        "how",
        re.compile(r"咋个|咋办|咋整|咋弄|咋搞|啷个|哪门|怎么|怎样|如何|申请|办理|程序|流程|领$|咋领|怎么领"),
        re.compile(r"申请|办理|提出|程序|登记|申报|报名|审核|审批|办"),
    ),
    Cue(
        "eligibility",
        re.compile(r"能不能|能否|可不可以|可以不|行不行|能.{1,8}不$|能.{1,6}吗|条件|符合|够不够|算不算|享受|资格|有没有|有没得|有.{0,6}没|会不会"),
        re.compile(r"可以|符合|条件|对象|不能|不得|应当|须|必须|享受|适用|一律|优先"),
    ),
)

# Handbook words the kind of question points to: "咋个申请" is answered by the
# article on the application procedure, "要带啥" by the one listing papers.
CUE_TERMS: dict[str, tuple[str, ...]] = {
    "materials": ("提供", "材料", "证明", "申请"),
    "where": ("办理", "申请", "窗口"),
    "how": ("申请", "程序", "办理"),
    "when": ("时间", "期限"),
    "amount": ("标准", "额度"),
}

# Words in an article's title that say it is about that aspect: "低保申请办理" answers "低保咋个申请",
# "危房改造补助标准" answers "补多少".
CUE_TITLE_TERMS: dict[str, tuple[str, ...]] = {
    "materials": ("申请", "办理", "材料"),
    "where": ("办理", "申请", "窗口"),
    "how": ("申请", "程序", "办理", "流程"),
    "when": ("时间", "期限"),
    "amount": ("标准", "额度"),
}

# A question for a share ("报百分之几", "按好多比例") is answered by the article on rates ("报销比例"),
# not by the one on thresholds ("起付标准") that the amount's title words would favour.
SHARE_TITLE_TERMS = ("比例",)
AMOUNT_TITLE_TERMS = frozenset(CUE_TITLE_TERMS["amount"])

# "哪些人可以享受医疗救助", "啥人能办": who qualifies is answered by the article whose title names the
# people it is for (救助对象, 适用范围), not by one that lists a few of them along the way; so is
# whether a thing is among those a measure covers ("高血压算不算慢特病": 病种, 目录).
WHO_ASKED = re.compile(r"哪些人|哪种人|哪样的人|啥人|啥子人|什么人|么子人|哪个能|哪些(对象|户)|谁能|谁可以"
                       r"|算不算|属不属于|包不包括|包括不包括|在不在.{0,6}(里|内|范围)")
WHO_TITLE_TERMS = ("对象", "范围", "病种", "种类", "目录", "名单", "清单")

# Words that only name an aspect; a question made of them alone is a follow-up.
# (比例 asks for a share, 享受 whether one qualifies: "哪些人可以享受医疗救助" is about 医疗救助.)
ASPECT_WORDS = frozenset(
    "材料 资料 手续 证明 证件 条件 标准 程序 流程 时间 多久 地方 部门 办理 申请 申报 报名 领取 钱 补助 补贴 资助 奖补 "
    "元 年龄 周岁 要求 规定 费用 一年 一个月 每月 每年 本人 工作日 期限 比例 享受".split()
)


# Question words: what is asked, never what it is about.
_ASKING = re.compile(
    r"多少|好多|几多|多钱|多久|多长时间|多长|好久|几时|什么时候|啥时候|啥时|几号|哪天|几天|几点|几年|几个|几次|几张"
    r"|哪里|哪儿|哪点|哪哈|哪块|哪切|哪个|哪些|哪家|哪阵|咋个|咋样|咋办|咋整|咋弄|咋搞|啷个|哪门|怎么|怎样|如何"
    r"|多大|好大|啥子|么子|哪样|啥|什么|几块钱|几块|块钱"
    r"|带啥|要带|带什么|带哪些|最长|最久|最多|最高|最少"
    # "报百分之几", "报几成", "算不算慢特病", "包不包括门诊": the kind of answer wanted (a share, a yes or no),
    # words a handbook never writes, and no topic of their own.
    r"|百分之几|百分之多少|几成|算不算|属不属于|包不包括|包括不包括"
)


def only_asks(phrase: str, residue_is_filler: Callable[[str], bool]) -> bool:
    """Is ``phrase`` (a word or synonym phrase of a question) only a way of asking?

    "要多久", "补多少", "盖多大", "几号发" say what kind of fact is wanted, not what
    the question is about. ``residue_is_filler`` judges what is left once the
    question words are taken out ("要", "补", "发").
    """
    residue, count = _ASKING.subn("", phrase)
    return count > 0 and (not residue or residue_is_filler(residue))


# Asking which papers to bring ("要带啥", "要啥证明", "要几张照片"), as opposed to merely
# naming a paper ("出生证明丢了去哪补"), which is a question about the paper itself.
_ASKS_PAPERS = re.compile(
    r"材料|资料|手续|证件|东西|要带|带啥|带什么|带哪些|带哪样|带上|带不带|几张|几份|啥证|什么证"
    r"|(要|需要|开|交|提供|准备)[^，,。？?！!\s]{0,4}(证明|照片|相片|复印件)"
)


def asks_papers(question: str) -> bool:
    return bool(_ASKS_PAPERS.search(question))


_HOW_ITSELF = re.compile(r"咋|怎|如何|程序|流程|领$")


def question_cues(question: str) -> set[str]:
    cues = {cue.name for cue in CUES if cue.question.search(question)}
    if "eligibility" in cues and "how" in cues and not _HOW_ITSELF.search(question):
        cues.discard("how")  # "能不能申请": whether one may, not how to
    return cues


def sentence_cue_hits(sentence: str, wanted: set[str]) -> int:
    return sum(1 for cue in CUES if cue.name in wanted and cue.sentence.search(sentence))


# Whether an article states the kind of fact a question asks for at all: an amount, a time,
# a place to go, the papers. Stricter than the sentence patterns above (those pick among the
# sentences of an article already chosen); used to order the shortlist ("危房改造的钱好久到卡上"
# belongs to the section that says when the money is paid, not the one with the amount).
FACT_PATTERNS: dict[str, re.Pattern[str]] = {
    "amount": re.compile(r"\d[\d.,]*\s*(万元|元|%|％|个百分点|度|平方米)|[一二三四五六七八九十两百千]+(万元|元)|全额|免除|免费|不收|不出.{0,3}费"),
    "when": re.compile(
        r"\d+\s*月(?!\d*元)|\d+\s*[日号](?!元)|\d+\s*(个)?(工作日|小时|天|个月)|[一二三四五六七八九十两]+(个)?(工作日|小时|天|个月)"
        r"|每月|每季度|每学期|春季|秋季|年底|月底|次月|当天|当日|当场|即时|按月|按季度|开工后|完工后|验收合格后|到期前|之日起|以内|内(办结|发放|到账|拨付)"),
    "where": re.compile(
        r"(到|向|找|在).{0,16}(办理|申请|申领|领取|登记|报名|咨询|反映|提出|申报|缴纳|备案)|村民委员会|村委会|乡镇|街道|县.{0,8}(局|中心|所|站|残联|银行)"
        r"|窗口|网点|银行|服务站|服务中心|卫生院|小程序|网站|热线|电话|\d{4}-?\d{7}|\d{5}"
        r"|一卡通|社保卡|社会保障卡|账户"),
    "materials": re.compile(r"提供|携带|带上|(?<![携地纽皮])带(?![动来领头薪])|材料|身份证|户口簿|证明|申请表|照片|复印件|授权书|学生证|录取通知书"),
    "age": re.compile(r"\d+\s*周?岁"),
    # A share (报销55%, 降低15个百分点, 报六成): "报百分之几" is answered by a rate, not by 500元.
    "share": re.compile(r"\d[\d.]*\s*(%|％|个百分点)|百分之[一二三四五六七八九十百]|[一二三四五六七八九]成"),
    "times": re.compile(r"[一两二三四五六七八九十\d]+次|一次性|只.{0,6}一次|每年.{0,6}次"),
    # The procedure itself: who applies to whom ("向村民委员会提交书面申请"), an application form.
    "how": re.compile(r"(到|向|找).{0,16}(办理|申请|申领|申报|报名|提出|提交|登记)|提出.{0,4}申请|书面申请|申请表|申报表"),
}


# The question side: only words that ask for the fact ("补好多", "几号发", "去哪办", "要带啥"),
# not topic words that happen to name money (补助, 补贴, 标准 are what many questions are about).
FACT_QUESTIONS: dict[str, re.Pattern[str]] = {
    "amount": re.compile(r"(多少|好多)(?!天|个工作日|个?月|年|小时|次|回)|几多|多钱|几块|块钱|几成|比例|几个点|最高|最多|多大|好大|几亩|几头|几只|额度"
                         r"|有.{0,4}(补助|补贴|资助|奖补|奖励|津贴)(没|不|吗|嘛|没得|没有)|补不补|给不给钱"),
    "age": re.compile(r"\d{2,3}(多|来)?(岁|周岁|了)|[二三四五六七八九]十[一二三四五六七八九]?(多|来)?(岁|周岁|了)"
                     r"|年纪|岁数|多大年纪|超龄|年龄"),
    # "能资助两回不": whether it is given twice is answered by how many times (资助一次，不重复享受).
    "times": re.compile(r"几回|几次|几趟|多少次|好多次|几道|几轮|(两|二)(回|次|道|份)(不|吗|嘛|没|呢)|重复"),
    "share": re.compile(r"百分之几|百分之多少|几成|比例|几个点|按(好多|多少)"),
    "when": CUES[3].question,
    "where": CUES[2].question,
    "materials": re.compile(r"材料|资料|手续|证件|带啥|带什么|带哪些|要带|啥证明|什么证明|几张|照片|填啥|填什么"),
    # "咋个申请", "怎么办理", "申请流程": the way to apply, not whether one may.
    "how": re.compile(r"(咋个|咋|怎么|怎样|如何|啷个|哪门)(申请|办理|办|弄|整|搞|申报|报名|登记|领)|(申请|办理)(流程|程序|手续)"),
}


# Steps of a procedure a household may name ("啥时候报名", "哪个来验收", "县外住院咋个报销"): the time
# or place asked is the time or place of that step, and a title naming it is about it.
PROCEDURE_WORDS = frozenset("申请 申报 报名 办理 登记 领取 申领 验收 审批 审核 备案 鉴定 评定 公示 报销 结算".split())

# Money words: "一吨好多钱", "流转费一亩好多", "补好多" ask for a sum of money, while "热线是好多"
# asks for a number of another kind.
_MONEY = re.compile(r"钱|费|补|奖|元|块|工资|津贴|报销|报好多|报多少|利息|贷")


def asks_money(question: str) -> bool:
    """Does the question ask how much money (not which phone number, not how long)?"""
    return "amount" in asked_facts(question) and bool(_MONEY.search(question))


@lru_cache(maxsize=16384)
def asked_facts(question: str) -> frozenset[str]:
    """The kinds of fact (amount, share, when, where, materials, age, times, how) a question asks for.

    Asked by the ranker, the responder and the excerpt for the same question: remembered."""
    return frozenset(kind for kind, pattern in FACT_QUESTIONS.items() if pattern.search(question))


_FACT_MEMO: dict[str, frozenset[str]] = {}
_FACT_MEMO_LIMIT = 50_000


def fact_kinds(text: str) -> frozenset[str]:
    """The kinds of fact (amount, share, when, where, materials, age, times, how) ``text`` states.

    Asked of the same handbook sentences for question after question: remembered (bounded)."""
    found = _FACT_MEMO.get(text)
    if found is None:
        if len(_FACT_MEMO) >= _FACT_MEMO_LIMIT:
            _FACT_MEMO.clear()
        found = _FACT_MEMO[text] = frozenset(kind for kind, pattern in FACT_PATTERNS.items() if pattern.search(text))
    return found
