"""Writing the reply: the few sentences that answer, the citation, and the full-article pages.

A household asked one thing; the reply quotes the sentences of the article
that answer it (the amount for "多少钱", the papers for "要带啥"), keeps them in
the article's order so they read naturally, names where they come from so a
cadre can check, and says how to get more.
"""

from __future__ import annotations

import re

from knowledge.nlp.cues import sentence_cue_hits
from knowledge.nlp.sentences import split_sentences
from knowledge.search.query import Query
from knowledge.snapshot import ArticleRecord

_WORDLIKE = re.compile(r"[\u3400-\u9fffa-z0-9]{2}")
FOOTER = "回复“详细”看全文 / 回复“0”转人工"
FAQ_FOOTER = "回复“0”转人工"
PAGE_BYTES = 2048
MAX_SENTENCES = 3
CUE_BONUS = 0.8  # per matched cue, relative to the rarest handbook word's weight
FOLLOW_SHARE = 0.12  # a further sentence must add at least this share of the best one's score
ALSO_RELEVANT = 0.5  # ... or be nearly as relevant as the best one on its own
TITLE_WORD_SHARE = 0.7  # a question word that is in the article's title tells its sentences apart less
IMPLIED_CUE_SHARE = 0.5  # where to go and what to bring, for a "how" question


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


def _bigrams(text: str) -> set[str]:
    return {text[i:i + 2] for i in range(len(text) - 1) if _WORDLIKE.fullmatch(text[i:i + 2])}


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
        if best:
            scale = 0.3 if concept.from_context else 1.0
            parts[f"c{n}"] = best * max(concept.focus, 0.5 * unit) * scale * (0.5 if concept.aspect else 1.0)
    for cue in query.cues:
        if sentence_cue_hits(sentence, {cue}):
            parts[f"q{cue}"] = CUE_BONUS * unit
    if "how" in query.cues:
        # "咋个办" is answered by the procedure: where to go and what to bring are part of it.
        for cue in ("where", "materials"):
            if cue not in query.cues and sentence_cue_hits(sentence, {cue}):
                parts[f"q{cue}"] = IMPLIED_CUE_SHARE * CUE_BONUS * unit
    return parts


def excerpt(article: ArticleRecord, query: Query, max_chars: int, unit: float) -> str:
    """The few sentences of the article that answer the question, in its order.

    The best sentence first; then only sentences that add something the chosen
    ones lack (another part of the question, or the amount/papers/place asked
    for), so an answer is short and still complete.
    """
    sentences = split_sentences(article.text)
    if not sentences:
        return article.title
    contributions = [_contributions(s, query, unit, article.title) for s in sentences]
    totals = [sum(c.values()) for c in contributions]
    first = max(range(len(sentences)), key=lambda i: (totals[i], -i))
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

    while len(chosen) < MAX_SENTENCES and best > 0:
        options = [(round(gain(i), 6), affinity(i), totals[i], -i, i) for i in range(len(sentences))
                   if i not in chosen and length + len(sentences[i]) <= max_chars
                   and (gain(i) >= best * FOLLOW_SHARE or totals[i] >= best * ALSO_RELEVANT)]
        if not options:
            break
        i = max(options)[-1]
        chosen.append(i)
        for k, v in contributions[i].items():
            covered[k] = max(covered.get(k, 0.0), v)
        length += len(sentences[i])
    chosen.sort()
    pieces = []
    for n, i in enumerate(chosen):
        sentence = sentences[i]
        ends_run = n == len(chosen) - 1 or chosen[n + 1] != i + 1
        if ends_run and sentence.endswith(("；", ";", "，", ",", "：", ":")):
            sentence = sentence[:-1] + "。"
        pieces.append(sentence)
        if ends_run and n != len(chosen) - 1:
            pieces.append("……")
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
