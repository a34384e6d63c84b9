"""Writing the reply: the few sentences that answer, the citation, and the full-article pages.

A household asked one thing, often on an old phone: the reply quotes the
sentence of the article that states it first (the amount for "多少钱", the date
for "啥时候到卡上", the papers for "要带啥"), adds at most one that completes it,
answers "有啥补助" with the article's list of measures and a table with its
matching row, names where it comes from so a cadre can check, and says how to
get more.
"""

from __future__ import annotations

import re

from knowledge.nlp.cues import asked_facts, fact_kinds, sentence_cue_hits
from knowledge.search.ranker import STEP_FACTS, Ranker
from knowledge.nlp.sentences import split_sentences
from knowledge.search.query import Query
from knowledge.snapshot import ArticleRecord

_WORDLIKE = re.compile(r"[\u3400-\u9fffa-z0-9]{2}")
FOOTER = "回复“详细”看全文 / 回复“0”转人工"
FAQ_FOOTER = "回复“0”转人工"
PAGE_BYTES = 2048
MAX_SENTENCES = 2  # the asked fact and at most one sentence that completes it
CUE_BONUS = 0.8  # per matched cue, relative to the rarest handbook word's weight
FOLLOW_SHARE = 0.12  # a further sentence must add at least this share of the best one's score
ALSO_RELEVANT = 0.5  # ... or be nearly as relevant as the best one on its own
TITLE_WORD_SHARE = 0.7  # a question word that is in the article's title tells its sentences apart less
IMPLIED_CUE_SHARE = 0.5  # where to go and what to bring, for a "how" question
WEAK_CUE_SHARE = 0.3  # "能不能" beside a question for an amount, a time or a place
OWN_WORDS = 1.0  # the weight of a question's own word found as written


def citation(article: ArticleRecord) -> str:
    """《青山县…汇编》第二章 第六条 危房改造补助标准; 《云溪县…实施方案》三、（二）评议公示."""
    parts = []
    label = article.cited_label
    if article.chapter_label and article.chapter_label != article.label and not label.startswith(article.chapter_label):
        parts.append(article.chapter_label)
    elif article.chapter_title and not article.chapter_label:
        parts.append(article.chapter_title)
    if label:
        parts.append(label)
    if article.title and article.title != label:
        parts.append(article.title)
    document = f"《{article.document}》" if article.document else ""
    # Labels that end in punctuation (三、（二）, 12．) need no space before the title.
    text = ""
    for part in parts:
        text += part if not text or text[-1] in "、．.）)" else " " + part
    return document + text


def mentions(sentence: str, term: str) -> bool:
    """``term`` in ``sentence``; a number only as a whole number (60 is not in 600元)."""
    if not term.isdigit():
        return term in sentence
    return re.search(rf"(?<![\d.]){re.escape(term)}(?![\d.])", sentence) is not None


# The same handbook sentences are cut and paired for question after question: remembered, bounded.
_MEMO_LIMIT = 50_000
_BIGRAMS: dict[str, frozenset[str]] = {}
_UNITS: dict[str, tuple[tuple[str, int], ...]] = {}


def _remember(memo: dict, key: str, value):  # type: ignore[no-untyped-def]
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    memo[key] = value
    return value


def _bigrams(text: str) -> frozenset[str]:
    found = _BIGRAMS.get(text)
    if found is None:
        found = _remember(_BIGRAMS, text, frozenset(
            text[i:i + 2] for i in range(len(text) - 1) if _WORDLIKE.fullmatch(text[i:i + 2])))
    return found


def _contributions(sentence: str, query: Query, unit: float, title: str = "") -> dict[str, float]:
    """What a sentence contributes, per concept and per cue, so overlap can be discounted.

    A word of the article's title (危房改造 in 危房改造补助标准) is what every sentence of it
    is about: it counts less than a word that singles a sentence out (修缮加固 for 漏雨).
    """
    parts: dict[str, float] = {}
    for n, concept in enumerate(query.concepts):
        best = 0.0
        for term, weight in concept.terms.items():
            if (len(term) >= 2 or concept.surface == term) and mentions(sentence, term):
                best = max(best, weight * (TITLE_WORD_SHARE if term in title else 1.0))
        if len(concept.surface) >= 2 and concept.start >= 0 and concept.surface in sentence:
            # The household's own words, as written ("考上大学"), say more than what a rule adds.
            best = max(best, OWN_WORDS * (TITLE_WORD_SHARE if concept.surface in title else 1.0))
        if best:
            scale = 0.3 if concept.from_context else 1.0
            parts[f"c{n}"] = best * max(concept.focus, 0.5 * unit) * scale * (0.5 if concept.aspect else 1.0)
    facts = asked_facts(query.text)
    for cue in query.cues:
        if sentence_cue_hits(sentence, {cue}):
            # "有补助没" asks whether there is money and how much: the amount, not who may.
            share = WEAK_CUE_SHARE if cue == "eligibility" and facts & {"amount", "when", "where"} else 1.0
            parts[f"q{cue}"] = CUE_BONUS * unit * share
    if "how" in query.cues:
        # "咋个办" is answered by the procedure: where to go and what to bring are part of it.
        for cue in ("where", "materials"):
            if cue not in query.cues and sentence_cue_hits(sentence, {cue}):
                parts[f"q{cue}"] = IMPLIED_CUE_SHARE * CUE_BONUS * unit
    return parts


_LIST_QUESTION = re.compile(r"(有|都有|还有|能有|享受)(啥|啥子|什么|哪些|些啥|些什么|哪几)|哪些|哪几|几种|几项")
_LIST_ITEM = re.compile(r"^\s*(（\d{1,2}）|\(\d{1,2}\)|\d{1,2}[.．、]|[①②③④⑤⑥⑦⑧⑨⑩]|[一二三四五六七八九]是)")
LIST_CHARS = 160  # a list of measures may run a little longer than one fact
ITEM_CHARS = 48
_CIRCLED = "①②③④⑤⑥⑦⑧⑨⑩"


def _list_items(article: ArticleRecord) -> list[str]:
    """The measures an article lists: its numbered lines ("（1）…", "一是…"), else the clauses
    after a colon that enumerates ("根据风险类型落实帮扶：有劳动能力的…，因病的…，因灾的…")."""
    lines = [line.strip() for line in article.text.splitlines() if line.strip()]
    numbered = [_LIST_ITEM.sub("", line).strip() for line in lines if _LIST_ITEM.match(line)]
    if len(numbered) >= 2:
        return numbered
    for sentence in split_sentences(article.text, clause_split_over=10**9):
        head, colon, rest = sentence.partition("：")
        if colon and len(head) <= 40:
            clauses = [c.strip("，,；;。 ") for c in re.split(r"[；;]|，(?=[^，；]{4,}(?:的|时))", rest) if c.strip("，,；;。 ")]
            if len(clauses) >= 3:
                return clauses
    return []


def _shorten(item: str, limit: int = ITEM_CHARS) -> str:
    """One list item, cut at a clause end when it is long (the amount stays: it comes first or is kept)."""
    item = item.rstrip("；;，,。")
    if len(item) <= limit:
        return item
    clauses = re.split(r"(?<=[，,；;：:])", item)
    # The clauses that state a fact (an amount, a time) are the point of the item: keep them,
    # and the others in their order while there is room.
    keep = {n for n, clause in enumerate(clauses) if re.search(r"\d", clause)}
    room = limit - sum(len(clauses[n]) for n in keep)
    for n, clause in enumerate(clauses):
        if n not in keep and len(clause) <= room:
            keep.add(n)
            room -= len(clause)
        elif n not in keep:
            break
    out = "".join(clauses[n] for n in sorted(keep)) if keep else clauses[0]
    return out.rstrip("；;，,：:")


def _list_answer(article: ArticleRecord, query: Query) -> str | None:
    """"有啥补助" about an article that lists several measures: the measures, numbered and short."""
    if not _LIST_QUESTION.search(query.text):
        return None
    items = _list_items(article)
    if len(items) < 2:
        # No numbered measures: the article's sentences are its measures ("入学资助…；还可以…助学贷款").
        items = [u for u in split_sentences(article.text) if not u.endswith(("：", ":"))]
        if not 2 <= len(items) <= 4 or sum(len(u) for u in items) > LIST_CHARS or max(map(len, items)) > 60:
            return None
    out = ""
    for n, item in enumerate(items[:len(_CIRCLED)]):
        piece = f"{_CIRCLED[n]}{_shorten(item)}；"
        if out and len(out) + len(piece) > LIST_CHARS:
            out += "等。"
            return out
        out += piece
    return out[:-1] + "。"


def answer_units(text: str) -> list[str]:
    """What an answer is made of: sentences, and the clauses of long ones (a list of amounts
    "D级…每户补助4万元；C级…1.8万元" is answered with the one clause asked about)."""
    return [unit for unit, _ in _units(text)]


def _units(text: str) -> list[tuple[str, int]]:
    """(unit, the number of the sentence it comes from)."""
    found = _UNITS.get(text)
    if found is None:
        units = []
        for n, sentence in enumerate(split_sentences(text)):
            parts = [p for p in re.split(r"(?<=[；;])", sentence) if p.strip()] if len(sentence) > SHORT_UNIT else [sentence]
            units.extend((p.strip(), n) for p in parts)
        found = _remember(_UNITS, text, tuple(units))
    return list(found)


def _topic_part(parts: dict[str, float]) -> float:
    return sum(v for k, v in parts.items() if k.startswith("c"))


SHORT_UNIT = 60  # sentences longer than this are answered clause by clause
# A table row as the importer writes it: "品种：茶叶；奖补标准：每亩500元；最低规模：2亩。"
_TABLE_ROW = re.compile(r"^[^：；。]{1,16}：[^；。]+(；[^：；。]{1,16}：[^；。]+)+。?$")


def excerpt(article: ArticleRecord, query: Query, max_chars: int, unit: float) -> str:
    """The asked fact first, in one or two short sentences of the article.

    The best sentence (or clause of a long one) comes first, whatever its place in the
    article: a household asking "啥时候到账" reads the date before anything else. A second
    one follows only if it adds something the first lacks (another part of the question,
    or the amount/papers/place asked for) and the reply stays within ``max_chars``. A
    question about what measures there are ("有啥补助") is answered with the list.
    """
    listed = _list_answer(article, query)
    if listed is not None:
        return listed
    units = _units(article.text)
    sentences = [unit for unit, _ in units]
    if not sentences:
        return article.title
    contributions = [_contributions(s, query, unit, article.title) for s in sentences]
    totals = [sum(c.values()) for c in contributions]
    # The asked fact first: for "领多少", "啥时候", "去哪办", "要带啥", the best sentence that states
    # such a fact, when one is about the question at all.
    asked = asked_facts(query.text) | (query.cues & {"materials", "where", "when"})
    stating = [i for i in range(len(sentences)) if totals[i] > 0 and asked & fact_kinds(sentences[i])]
    if asked & STEP_FACTS:
        # "产业奖补好久报名": the time of the step named (报名), not of the one after it (验收).
        steps = Ranker.named_steps(query) or Ranker.anchor(query)
        stating = [i for i in stating if any(w in sentences[i] for w in steps)] or stating
    pool = stating or list(range(len(sentences)))
    first = max(pool, key=lambda i: (totals[i], -i))
    # A clause whose sibling clauses say the same thing about the question ("开工后拨付40%；验收
    #合格后拨付剩余60%" for "啥时候到账") is answered with its whole sentence, when that is short
    # enough; a sibling about another case ("D级…" when C级 was asked) is left out.
    siblings = [i for i, (_, n) in enumerate(units) if n == units[first][1]]
    if len(siblings) > 1 and asked and all(fact_kinds(sentences[i]) and
                                 _topic_part(contributions[i]) >= 0.9 * _topic_part(contributions[first])
                                 for i in siblings):
        whole = "".join(sentences[i] for i in siblings)
        if len(whole) <= max_chars:
            for i in siblings[1:]:
                for k, v in contributions[i].items():
                    contributions[siblings[0]][k] = max(contributions[siblings[0]].get(k, 0.0), v)
            sentences[siblings[0]] = whole
            totals[siblings[0]] = sum(contributions[siblings[0]].values())
            for i in siblings[1:]:
                sentences[i], contributions[i], totals[i] = "", {}, 0.0
            first = siblings[0]
    chosen = [first]
    covered = dict(contributions[first])
    length = len(sentences[first])
    best = totals[first]

    def gain(i: int) -> float:
        return sum(max(0.0, v - covered.get(k, 0.0)) for k, v in contributions[i].items())

    # Between sentences that add as much, the one about the same case as those chosen:
    # for "房子漏雨补多少" after "漏雨…属于C级的，按修缮加固标准补助", the C级 amount, not the D级 one.
    title_pairs = _bigrams(article.title)
    pairs = [_bigrams(s) - title_pairs for s in sentences]

    def affinity(i: int) -> int:
        return len(pairs[i] & set().union(*(pairs[j] for j in chosen)))

    def topic_gain(i: int) -> float:
        return sum(max(0.0, v - covered.get(k, 0.0)) for k, v in contributions[i].items() if k.startswith("c"))

    def allowed(i: int) -> bool:
        if not sentences[i] or sentences[i].endswith(("：", ":")):
            return False  # "具体标准如下：" introduces, says nothing
        if _TABLE_ROW.match(sentences[first]) and _TABLE_ROW.match(sentences[i]):
            # The row that matches the question, not its neighbours ("茶叶" asked: not 魔芋, 中药材).
            return topic_gain(i) >= best * FOLLOW_SHARE
        return gain(i) >= best * FOLLOW_SHARE or totals[i] >= best * ALSO_RELEVANT

    while len(chosen) < MAX_SENTENCES and best > 0:
        options = [(round(gain(i), 6), affinity(i), totals[i], -i, i) for i in range(len(sentences))
                   if i not in chosen and length + len(sentences[i]) <= max_chars and allowed(i)]
        if not options:
            break
        i = max(options)[-1]
        chosen.append(i)
        for k, v in contributions[i].items():
            covered[k] = max(covered.get(k, 0.0), v)
        length += len(sentences[i])
    # The best first; what it needs (a sentence before it that it continues) in the article's order.
    rest = sorted(chosen[1:])
    order = [chosen[0]] + rest
    pieces = []
    for i in order:
        sentence = sentences[i]
        if sentence.endswith(("；", ";", "，", ",", "：", ":")):
            sentence = sentence[:-1] + "。"
        elif not sentence.endswith(("。", "！", "？", "!", "?", "”", "）", ")")):
            sentence += "。"
        pieces.append(sentence)
    return "".join(pieces)


def answer_text(article: ArticleRecord, body: str) -> str:
    return f"{body}\n——摘自{citation(article)}\n{FOOTER}"


def faq_text(answer: str) -> str:
    return f"{answer}\n{FAQ_FOOTER}"


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def paginate(heading: str, body: str, limit: int = PAGE_BYTES) -> list[str]:
    """Split ``heading`` + ``body`` into pages, each strictly under ``limit`` UTF-8 bytes.

    Pages break between sentences (never inside one unless a single sentence is
    longer than a page); line breaks of the article are kept.
    """
    marker_room = _utf8_len("（99/99）\n")
    budget = limit - 1 - marker_room
    units: list[tuple[str, bool]] = []  # (text, starts a new line)
    for line in body.splitlines():
        for n, sentence in enumerate(split_sentences(line, clause_split_over=10**9)):
            first = n == 0
            while _utf8_len(sentence) > budget:  # one enormous sentence: cut by characters
                cut = len(sentence)
                while _utf8_len(sentence[:cut]) > budget:
                    cut = cut * 3 // 4
                units.append((sentence[:cut], first))
                sentence, first = sentence[cut:], False
            units.append((sentence, first))
    pages: list[str] = []
    current = heading
    for text, new_line in units:
        candidate = (current + ("\n" if new_line else "") + text) if current else text
        if current and _utf8_len(candidate) > budget:
            pages.append(current)
            current = text
        else:
            current = candidate
    if current:
        pages.append(current)
    if len(pages) > 1:
        pages = [f"（{n}/{len(pages)}）\n{page}" for n, page in enumerate(pages, 1)]
    return pages
