"""What a household meant by its reply to a survey question, typed or spoken.

Households answer the way they talk: "1", "①", "二", "第一个", "认得到", "晓不得", "基本上满意", "还可以",
"产业和教育", often padded with particles ("嗯，我认识的嘛") or followed by a question of their own, and
voice messages arrive as WeChat's transcript with its homophones ("认是", "满义"). `read_answer` turns
one reply into a `Reading`:

- ``answer``  a code (or codes, or text) to record;
- ``confirm`` a likely code resting on a weak cue (还可以 → 基本满意?): the conversation asks
  "您是说『基本满意』吗？回复1是 2不是" and records only on yes (`read_yes_no`);
- ``unclear`` anything else (no cue, contradicting cues, two codes for a single choice, a question
  such as "补贴什么时候发" that the conversation layer routes to policy Q&A): ask again;
- ``skip`` / ``quit``.

A wrong code recorded is worse than asking again, so every rule leans to ``confirm`` or ``unclear`` when
in doubt. The general lexicon below is keyed by option *label*, so an edited questionnaire that keeps the
usual labels (认识, 满意, 产业 …) keeps the lexicon; the YAML's ``words`` add to it. Pure and fast: no
I/O, tables built once per question, well under 0.2 ms a call (bench/survey_answers.py).
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# Only single characters are looked up here, so pypinyin's phrase dictionary (44 MB per process, and
# half a second to load) is never needed: its documented switch, set before its first import.
os.environ.setdefault("PYPINYIN_NO_PHRASES", "true")

from pypinyin import Style, lazy_pinyin

from bot.survey.questionnaire import Question

MAX_CHARS = 300  # a reply longer than this is not an answer to a numbered question

# --- the reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    outcome: str  # "answer" | "confirm" | "unclear" | "skip" | "quit"
    codes: tuple[int, ...] = ()  # answer/confirm: sorted, unique
    text: str | None = None  # the free-text answer (kind "text"), stripped

    def confirm_prompt(self, question: Question) -> str:
        """The yes/no question that settles a weak reading, e.g. 您是说『基本满意』吗？回复1是 2不是"""
        if self.outcome != "confirm" or not self.codes:
            raise ValueError("confirm_prompt needs a confirm reading with codes")
        labels = "、".join(question.option(code).label for code in self.codes)
        return f"您是说『{labels}』吗？回复1是 2不是"


UNCLEAR = Reading("unclear")

# --- the general lexicon -------------------------------------------------------------------------
# label -> (strong phrases, weak phrases). Strong: a cadre would write the code down. Weak: it leans
# that way but a cadre would ask (decided on the labelled examples, see docs/survey-answers.md).

LEXICON: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "认识": (
        ("认识", "认得", "认得到", "认到", "晓得", "知道", "熟悉", "很熟", "熟得很", "蛮熟", "挺熟", "熟", "认识的"),
        ("见过", "见到过", "听说过", "知道一点"),
    ),
    "不认识": (
        ("不认识", "不认得", "认不得", "认不到", "认不倒", "不晓得", "晓不得", "不知道", "不清楚", "不熟悉",
         "没见过", "没有见过", "从来没见过", "没听说过", "没有听说过", "从来没听说", "从没听说", "没听过",
         "不熟", "没印象", "没有印象", "记不得", "不记得"),
        ("不太清楚", "不大清楚", "不太熟", "不大熟", "不是很熟", "不怎么熟", "认不全"),
    ),
    "满意": (
        ("满意", "很满意", "非常满意", "十分满意", "特别满意", "挺满意", "蛮满意", "超满意", "满意得很",
         "巴适", "巴适得很", "巴适得板", "安逸", "安逸得很"),
        ("比较满意", "还满意", "很好", "挺好", "蛮好", "好得很", "非常好", "不错", "很不错", "要得",
         "没意见", "没有意见", "没什么意见", "没啥意见", "莫得意见", "没得意见", "莫得啥子意见",
         "没得啥子意见", "没有什么意见", "没得说"),
    ),
    "基本满意": (
        ("基本满意", "基本上满意", "还算满意", "大体满意", "总体满意", "基本还满意", "基本上还满意",
         "基本上还是满意", "基本上是满意", "基本还是满意", "基本上都满意"),
        ("还可以", "还行", "将就", "还将就", "一般", "一般般", "凑合", "还凑合", "过得去", "还过得去",
         "马马虎虎", "还好", "还ok", "差不多"),
    ),
    "不满意": (
        ("不满意", "不太满意", "不怎么满意", "不大满意", "很不满意", "非常不满意", "特别不满意", "不满",
         "一点都不满意", "一点也不满意"),
        ("不好", "不咋好", "不太好", "很差", "太差", "太差了", "差得很", "差", "不行", "有意见",
         "意见大", "意见很大", "意见大得很", "不咋样", "不怎么样"),
    ),
    "产业": (
        ("产业", "产业扶贫", "种养", "养殖", "种植", "养猪", "养牛", "养羊", "养鸡", "养鸭", "养鹅", "养鱼",
         "养蜂", "种茶", "茶叶", "茶园", "种果树", "果树", "种菜", "烤烟", "药材", "中药材", "合作社",
         "分红", "产业奖补", "以奖代补", "小额信贷", "扶贫贷款", "种了", "养了"),
        (),
    ),
    "就业": (
        ("就业", "务工", "打工", "公益岗", "公益性岗位", "护林员", "保洁员", "护路员", "生态护林", "技能培训",
         "扶贫车间", "上班", "劳务", "稳岗", "外出务工", "就业补贴"),
        (),
    ),
    "教育": (
        ("教育", "读书", "上学", "学费", "助学", "雨露计划", "营养餐", "教育资助", "奖学金", "控辍保学",
         "教育扶贫", "助学金", "助学贷款"),
        (),
    ),
    "健康": (
        ("健康", "医疗", "看病", "住院", "报销", "医保", "家庭医生", "签约医生", "大病", "大病救助", "慢病",
         "慢性病", "先诊疗后付费", "体检", "医药费", "合作医疗", "农合", "健康扶贫"),
        (),
    ),
    "住房": (
        ("住房", "房子", "房屋", "危房", "危改", "危房改造", "搬迁", "易地搬迁", "修房", "建房", "安置房",
         "新房子", "新房", "改厕", "住房保障"),
        (),
    ),
    "兜底保障": (
        ("兜底保障", "兜底", "低保", "低保户", "五保", "五保户", "特困", "特困供养", "临时救助", "养老保险",
         "养老金", "社会保障", "民政救助", "残疾人补贴", "残疾补贴"),
        (),
    ),
    "其他": (("其他", "其它", "别的", "其余", "另外的"), ()),
}

# Generic replies to a yes/no question (two options, one the negation of the other). They count only
# as a whole clause: "是的" is yes, "是他呀" is not.
YES_WORDS = {"是": False, "是的": False, "对": False, "对的": False, "对头": False, "没错": False,
             "嗯": True, "嗯嗯": True, "嗯呢": True, "好": True, "好的": True, "要得": True, "yes": True,
             "ok": True, "有": True}  # word -> weak
NO_WORDS = {"不是": False, "不对": False, "没有": False, "没得": False, "莫得": False, "木有": False,
            "没": False, "不": False, "no": True}

# "是的是的", "没得": a word, maybe repeated, and nothing else. No-words first ("不是" before "是").
_YES_NO = [(re.compile(rf"(?:{re.escape(word)})+"), weak, yes)
           for yes, words in ((False, NO_WORDS), (True, YES_WORDS)) for word, weak in words.items()]

# Negations in front of a cue: the degree ones ("不太认识") soften it to a weak counter-reading.
DEGREE_NEG = ("不是很", "不是太", "不是特别", "不太", "不大", "不怎么", "不咋", "不很", "不是")
PLAIN_NEG = ("从来没有", "从来没", "从没有", "从没", "没有", "没得", "莫得", "没", "不", "莫", "未", "木有")
# Right after a cue, these mock it ("满意个啥哦", 西南官话 "认得个锤子").
MOCKING = ("个啥", "个屁", "个鬼", "个锤子", "个铲铲", "个什么")
# Words that make any cue tentative ("好像认识", "应该满意吧").
HEDGES = ("好像", "应该", "可能", "大概", "也许", "估计", "记不清", "一点点", "有点", "好象")
EXCEPT_WORDS = ("除了", "除开", "以外", "之外")

QUIT_STRONG = ("退出", "不答了", "不想答", "不回答了", "不想回答", "不填了", "不做了", "不搞了", "不弄了",
               "不问了", "不调查了", "下次再说", "以后再说", "改天再说", "回头再说", "等会再答", "等会儿再答",
               "等下再答", "下次说", "下回再说", "结束调查", "不想做了")
QUIT_WEAK = ("算了",)
SKIP_WORDS = ("跳过", "略过", "下一题", "下一个", "不想说", "不说了", "没什么说的", "没啥说的", "没什么好说")

# A clause with one of these is the household's own question (for policy Q&A), not an answer.
QUESTION_WORDS = ("怎么", "怎样", "咋办", "咋个", "如何", "多少", "几时", "什么时候", "啥时候", "好久",
                  "为什么", "为啥", "哪里", "在哪", "是什么", "什么是", "什么叫", "啥叫", "啥是", "干什么",
                  "干啥", "能不能", "可不可以", "能否", "有没有", "是不是", "行不行", "要不要", "啥子时候",
                  "什么意思", "啥意思")
# Particles and padding that carry no meaning at either end of a clause.
PADDING = "嗯啊呀嘛哈哦噢喔呢吧啦嘞咯喽呗哒滴噻耶哟诶欸哎唉呃额了~…"
SEPARATORS = re.compile(r"[\s,，、.。;；!！?？/+|:：\"'“”‘’()（）\[\]【】<>《》]+")
_CLAUSE = re.compile(r"([^\s,，、.。;；!！?？/+|:：\"'“”‘’()（）\[\]【】<>《》]+)([?？]?)")
_QUESTION_END = re.compile(r"[吗么]$")
_EXTRA = str.maketrans({"❶": "1", "❷": "2", "❸": "3", "❹": "4", "❺": "5", "❻": "6", "❼": "7", "❽": "8",
                        "❾": "9", "➀": "1", "➁": "2", "➂": "3", "➃": "4", "➄": "5", "➅": "6", "➆": "7",
                        "➇": "8", "➈": "9", "㈠": "一", "㈡": "二", "㈢": "三", "㈣": "四", "㈤": "五",
                        "㈥": "六", "㈦": "七"})

# --- numbers -------------------------------------------------------------------------------------

_NUMERALS = {"一": 1, "壹": 1, "幺": 1, "二": 2, "贰": 2, "两": 2, "三": 3, "叁": 3, "四": 4, "肆": 4,
             "五": 5, "伍": 5, "六": 6, "陆": 6, "七": 7, "柒": 7, "八": 8, "捌": 8, "九": 9, "玖": 9,
             "零": 0}
_NUM = "0-9" + "".join(_NUMERALS)
_ITEM = rf"(?:第)?[{_NUM}]+(?:个|项|号|条|种|题)?"
_JOIN = r"(?:和|与|跟|及|还有|加|到|至|-|~)?"
_NUMERIC_CLAUSE = re.compile(rf"^(?:我|就|那)*(?:选择|选项|选|答案是|答案|答|是)?{_ITEM}(?:{_JOIN}{_ITEM})*$")
_ITEM_FIND = re.compile(rf"(到|至|-|~)?(?:第)?([{_NUM}]+)")
_LEADING_DIGIT = re.compile(r"^([0-9])(?=[^0-9年月日岁元块口亩斤次天万千百点个人])(.+)$")
_LAST = re.compile(r"^(?:我|就)*(?:选)?最后(?:一个|那个|一项)$")


@dataclass
class _Cues:
    strong: set[int]
    weak: set[int]
    negated: set[int]
    bad_number: bool = False
    ranged: bool = False


@lru_cache(maxsize=8192)
def _syllable(ch: str) -> str:
    if "\u4e00" <= ch <= "\u9fff":
        return lazy_pinyin(ch, style=Style.NORMAL)[0]
    return ch


@dataclass(frozen=True)
class _Tables:
    phrases: dict[str, tuple[int, bool]]  # phrase -> (code, weak)
    max_len: int
    sounds: dict[tuple[str, ...], tuple[int, bool, str]]  # pinyin of phrases of 2+ characters
    max_sounds: int
    counterpart: dict[int, int]  # 认识 <-> 不认识, 满意 <-> 不满意
    negative: frozenset[int]  # codes whose label is a negation (不认识, 不满意)
    yes_code: int | None
    no_code: int | None


def _negation_pairs(question: Question) -> dict[int, int]:
    pairs: dict[int, int] = {}
    by_label = {o.label: o.code for o in question.options}
    for option in question.options:
        for neg in ("不", "没", "没有"):
            other = by_label.get(neg + option.label)
            if other is not None:
                pairs[option.code] = other
                pairs[other] = option.code
    return pairs


def _build(question: Question) -> _Tables:
    phrases: dict[str, tuple[int, bool]] = {}
    for option in question.options:
        strong, weak = LEXICON.get(option.label, ((), ()))
        for phrase in weak:
            phrases[phrase] = (option.code, True)
        for phrase in (*strong, *option.words, option.label):
            phrases[phrase.lower()] = (option.code, False)
    sounds: dict[tuple[str, ...], tuple[int, bool, str]] = {}
    for phrase in sorted(phrases, key=len):  # the literal phrase wins over a shorter one's homophone
        if len(phrase) >= 2:
            sounds.setdefault(tuple(_syllable(c) for c in phrase), (*phrases[phrase], phrase))
    pairs = _negation_pairs(question)
    negative = frozenset(o.code for o in question.options if o.code in pairs and o.label.startswith(("不", "没")))
    yes_code = no_code = None
    if len(question.options) == 2 and pairs.get(1) == 2 and 2 in negative:
        yes_code, no_code = 1, 2  # a yes/no question: 是的 / 没得 answer it
    return _Tables(phrases, max(map(len, phrases), default=0), sounds, max(map(len, sounds), default=0),
                   pairs, negative, yes_code, no_code)


_tables: dict[int, tuple[Question, _Tables]] = {}


def _tables_for(question: Question) -> _Tables:
    cached = _tables.get(id(question))
    if cached is not None and cached[0] is question:
        return cached[1]
    if len(_tables) > 512:
        _tables.clear()
    built = _build(question)
    _tables[id(question)] = (question, built)
    return built


# --- reading -------------------------------------------------------------------------------------


def _normalize(message: str) -> str:
    return unicodedata.normalize("NFKC", message).translate(_EXTRA).lower().strip()


def _trim(clause: str) -> str:
    return clause.strip(PADDING)


def _clauses(text: str) -> list[str]:
    return [c for c in (_trim(part) for part in SEPARATORS.split(text)) if c]


def _is_question(raw_clause: str, question_mark: bool) -> bool:
    if question_mark or _QUESTION_END.search(raw_clause):
        return True
    for degree in DEGREE_NEG:  # "不怎么满意" is an answer, not a question about 怎么
        raw_clause = raw_clause.replace(degree, "")
    return any(w in raw_clause for w in QUESTION_WORDS)


def _split_with_questions(text: str) -> list[tuple[str, bool]]:
    """Clauses with whether each is a question (ends with ？ or 吗, or has a question word)."""
    out: list[tuple[str, bool]] = []
    for match in _CLAUSE.finditer(text):
        raw, mark = match.group(1), bool(match.group(2))
        clause = _trim(raw) or ("嗯" if "嗯" in raw else "")  # a bare 嗯 is a (weak) yes
        if clause:
            out.append((clause, _is_question(raw.rstrip(PADDING), mark)))
    return out


def question_part(message: str) -> str | None:
    """The household's own question riding on an answer ("认识，低保补贴什么时候发？" → "低保补贴什么时候发"):
    the question clauses, when the message also has clauses that are not questions; None otherwise."""
    clauses = _split_with_questions(_normalize(message or ""))
    asked = [clause for clause, is_question in clauses if is_question]
    if not asked or len(asked) == len(clauses):
        return None
    return "，".join(asked)


def _numbers(clause: str, question: Question, cues: _Cues) -> bool:
    """Codes from a clause that is only a numbered choice ("1", "第一个", "选2", "一三五", "1到3")."""
    n = len(question.options)
    if _LAST.match(clause):
        cues.strong.add(n)
        return True
    if not _NUMERIC_CLAUSE.match(clause):
        return False
    previous: int | None = None
    for match in _ITEM_FIND.finditer(clause):
        joiner, run = match.group(1), match.group(2)
        if n >= 10 and run.isascii() and len(run) <= 2:
            values = [int(run)]
        elif len(run) > 1 and question.kind != "multi":
            cues.bad_number = True  # "12" to a single choice: one code or two?
            return True
        else:
            values = [_NUMERALS[c] if c in _NUMERALS else int(c) for c in run]
        if any(v < 1 or v > n for v in values):
            cues.bad_number = True
            return True
        if joiner and previous is not None and len(values) == 1 and question.kind == "multi":
            low, high = sorted((previous, values[0]))
            cues.weak.update(range(low, high + 1))
            cues.ranged = True
        else:
            cues.strong.update(values)
        previous = values[-1]
    return True


def _negation_before(clause: str, start: int) -> str | None:
    head = clause[:start]
    for neg in DEGREE_NEG:
        if head.endswith(neg):
            return "degree"
    for neg in PLAIN_NEG:
        if head.endswith(neg):
            return "plain"
    return None


def _mocked_after(clause: str, end: int) -> bool:
    """"满意个啥", "认识个锤子": the cue is mocked, meaning its opposite."""
    return clause.startswith(MOCKING, end)


def _phrases(clause: str, tables: _Tables) -> list[tuple[int, int, int, bool]]:
    """Non-overlapping (start, end, code, weak) matches: literal phrases and their homophones
    (WeChat's voice transcript writes 认是 for 认识), the longest first."""
    found: list[tuple[int, int, int, int, bool]] = []  # (-length, start, source, code, weak) pre-sort
    for i in range(len(clause)):
        for length in range(min(tables.max_len, len(clause) - i), 0, -1):
            hit = tables.phrases.get(clause[i:i + length])
            if hit is not None:
                found.append((-length, i, 0, hit[0], hit[1]))
                break
    if tables.sounds and any("\u4e00" <= c <= "\u9fff" for c in clause):
        sounds = [_syllable(c) for c in clause]
        for i in range(len(sounds) - 1):
            for length in range(min(tables.max_sounds, len(sounds) - i), 1, -1):
                hit = tables.sounds.get(tuple(sounds[i:i + length]))
                if hit is not None:
                    # Sharing no character with the word ("样样" for 养羊) makes it a guess: ask first.
                    shared = any(a == b for a, b in zip(clause[i:i + length], hit[2]))
                    found.append((-length, i, 1, hit[0], hit[1] or not shared))
                    break
    found.sort()
    taken: list[tuple[int, int, int, bool]] = []
    for neg_len, start, _source, code, weak in found:
        end = start - neg_len
        if all(end <= s or start >= e for s, e, _, _ in taken):
            taken.append((start, end, code, weak))
    taken.sort()
    return taken


def _words(clause: str, question: Question, tables: _Tables, cues: _Cues) -> None:
    if tables.yes_code is not None and tables.no_code is not None:
        for pattern, weak, yes in _YES_NO:
            if pattern.fullmatch(clause):
                (cues.weak if weak else cues.strong).add(tables.yes_code if yes else tables.no_code)
                return
    for start, end, code, weak in _phrases(clause, tables):
        negation = _negation_before(clause, start)
        if _mocked_after(clause, end):
            negation = "degree" if negation is None else None
        if negation is None:
            (cues.weak if weak else cues.strong).add(code)
            continue
        other = tables.counterpart.get(code)
        if question.kind == "multi":
            cues.negated.add(code)
        elif other is not None:
            # "不太认识" leans to 不认识; "没有不满意" to 满意: both are worth a question, not a record.
            strong = negation == "plain" and not weak and code not in tables.negative
            (cues.strong if strong else cues.weak).add(other)


def _control(text: str, question: Question, has_cues: bool) -> str | None:
    """quit / skip words; a choice's own answer wins over a mere "算了" ("算了，基本满意吧")."""
    if any(w in text for w in QUIT_STRONG):
        return "quit"
    if any(w in text for w in QUIT_WEAK) and not has_cues:
        return "quit"
    if any(w in text for w in SKIP_WORDS) and not has_cues:
        return "skip" if question.optional else "unclear"
    return None


def read_answer(question: Question, message: str) -> Reading:
    """Read one reply to `question` (see the module docstring for the outcomes)."""
    text = _normalize(message or "")
    if question.kind == "text":
        stripped = (message or "").strip()
        if not stripped or not _clauses(text):
            return UNCLEAR
        short = len(re.sub(SEPARATORS, "", text)) <= 12
        if short:
            control = _control(text, question, has_cues=False)
            if control == "quit" or (control == "skip" and question.optional):
                return Reading(control)
        return Reading("answer", text=stripped)
    if not text or len(text) > MAX_CHARS:
        return UNCLEAR

    tables = _tables_for(question)
    cues = _Cues(set(), set(), set())
    for clause, is_question in _split_with_questions(text):
        if is_question:
            continue  # the household's own question: the conversation layer answers it
        if _numbers(clause, question, cues):
            continue
        leading = _LEADING_DIGIT.match(clause)
        if leading:
            _numbers(leading.group(1), question, cues)
            clause = leading.group(2)
        _words(clause, question, tables, cues)
    if any(h in text for h in HEDGES):
        cues.weak |= cues.strong
        cues.strong = set()

    has_cues = bool(cues.strong or cues.weak or cues.bad_number)
    control = _control(text, question, has_cues)
    if control is not None:
        return Reading(control) if control in ("quit", "skip") else UNCLEAR
    if cues.bad_number:
        return UNCLEAR

    if question.kind == "multi":
        if any(w in text for w in EXCEPT_WORDS):
            return UNCLEAR  # "除了住房都有": too easy to get wrong
        codes = (cues.strong | cues.weak) - cues.negated
        if not codes:
            return UNCLEAR  # includes "都有", "都没有": never guessed
        outcome = "confirm" if cues.weak - cues.strong or cues.ranged else "answer"
        return Reading(outcome, tuple(sorted(codes)))

    if len(cues.strong) == 1:
        if cues.weak <= cues.strong:
            return Reading("answer", tuple(cues.strong))
        return UNCLEAR
    if not cues.strong and len(cues.weak) == 1:
        return Reading("confirm", tuple(cues.weak))
    return UNCLEAR


_YES = ("1", "是", "是的", "对", "对的", "对头", "嗯", "嗯嗯", "好", "好的", "没错", "要得", "是滴", "yes",
        "ok", "确定", "正确", "是这样", "就是", "就是这个")
_NO = ("2", "不是", "不对", "不", "错了", "搞错了", "没有", "no", "不是的", "不要", "不正确", "错", "不是这个")


def read_yes_no(message: str) -> bool | None:
    """The reply to a confirm prompt ("回复1是 2不是"): True, False, or None when it is neither."""
    verdicts = set()
    for clause in _clauses(_normalize(message or "")) or (["嗯"] if "嗯" in (message or "") else []):
        if clause in _NO or re.fullmatch(r"(?:不是|不对)+", clause):
            verdicts.add(False)
        elif clause in _YES or re.fullmatch(r"(?:是|对|嗯|好)+(?:的)?", clause):
            verdicts.add(True)
    if len(verdicts) == 1:
        return verdicts.pop()
    return None
