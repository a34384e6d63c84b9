"""Deciding what to reply to one message, given a loaded snapshot.

Order matters and is deliberate: messages that are not questions (emoji,
thanks, "详细", "0") first; then the cadres' FAQ; then a direct article number
(第四十条); then the handbook search, read in the context of the previous
topic when the message is a short follow-up; and below the confidence
threshold an honest hand-over instead of a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from knowledge import fixed_replies, reply_text
from knowledge.result import Answer, Source
from knowledge.nlp.cn_numbers import parse_cn_number
from knowledge.nlp.sentences import split_sentences
from knowledge.nlp.cues import (AMOUNT_TITLE_TERMS, CUE_TITLE_TERMS, PROCEDURE_WORDS, SHARE_TITLE_TERMS, WHO_ASKED,
                                 WHO_TITLE_TERMS, asked_facts, asks_money)
from knowledge.search.faq_match import core
from knowledge.search.query import Query
from knowledge.search.ranker import SHORTLIST, Candidate
from knowledge.snapshot import ArticleRecord, Snapshot

FOLLOW_UP_MAX_CHARS = 20
SAME_CHAPTER_BOOST = 1.15
CONTINUES_CHAPTER_BOOST = 1.5
NO_TOPIC_CHAPTER_BOOST = 2.0
CUE_TITLE_BOOST = 1.25
CUE_TOPIC_TITLE_BOOST = 1.6
DOCUMENT_TOPIC_BOOST = 1.3
# "住院救助一年最多好多钱": the question names a section by its own title. In a 细则 the sections of a
# chapter share their words (住院 and 救助 are in every section of 医疗救助), so only the title, a
# phrase of three characters or more said as one, tells 住院救助 from 门诊救助 and 倾斜救助.
TITLE_NAMED_BOOST = 2.0
TITLE_NAMED_MIN_CHARS = 3
PROCEDURE_CUES = frozenset({"how", "where", "materials"})
SINGLE_CHAR_TOPIC = 0.7  # only words, not lone characters, name a topic in a title
SOURCES = 3  # articles cited in an answer's sources
# A message that opens by carrying on from the last answer ("那要多久", "那在县外住院呢").
_CONTINUES = re.compile(r"^(那|那么|那要|那我|那个|那还|那如果|还有|另外)")
# "那C级的呢", "县外的呢": the previous question asked again of another item.
_SAME_QUESTION = re.compile(r"呢[？?。！!\s]*$")
PREVIOUS_ARTICLE_BOOST = 1.3
# "有啥子帮扶", "有哪些待遇": a question for a list, naming what is listed last.
_LISTED = re.compile(r"(有|都有|还有|享受)(啥子|啥|什么|哪些|些啥|些什么|哪几种|哪样)(?P<what>[^\s，,。？?！!]{2,4}?)"
                     r"(呢|吗|嘛|没|不|啊)?[？?。！!]*$")
GROUP_LIMIT = 60  # articles of the previous chapter/document checked for a follow-up
_ARTICLE_REF = re.compile(r"第([零〇一二两三四五六七八九十百千\d０-９]+)条")


def _article_number(label: str) -> int | None:
    match = _ARTICLE_REF.fullmatch(label)
    return parse_cn_number(match.group(1)) if match else None


def article_topic(article_id: int) -> str:
    return f"a:{article_id}"


def faq_topic(faq_id: int) -> str:
    return f"f:{faq_id}"


def parse_topic(topic: str | None) -> tuple[str, int] | None:
    if not topic or ":" not in topic:
        return None
    kind, _, raw = topic.partition(":")
    return (kind, int(raw)) if kind in ("a", "f") and raw.isdigit() else None


def topic_article(snapshot: Snapshot, topic: str | None) -> ArticleRecord | None:
    parsed = parse_topic(topic)
    if parsed is None or parsed[0] != "a":
        return None
    position = snapshot.positions.get(parsed[1])
    return snapshot.articles[position] if position is not None else None


def _whole(snapshot: Snapshot, topic: str | None) -> tuple[str, str] | None:
    """(heading, body) of the article or FAQ behind ``topic``."""
    parsed = parse_topic(topic)
    if parsed is None:
        return None
    if parsed[0] == "f":
        entry = snapshot.faq_by_id.get(parsed[1])
        return (f"常见问题：{entry.question}", entry.answer) if entry else None
    article = topic_article(snapshot, topic)
    return (reply_text.citation(article), article.text) if article is not None else None


def article_pages(snapshot: Snapshot, topic: str | None) -> list[str]:
    whole = _whole(snapshot, topic)
    return reply_text.paginate(*whole) if whole is not None else []


def _source(article: ArticleRecord, score: float) -> Source:
    chapter = article.chapter_label or article.chapter_title
    return Source(article.document, chapter, article.cited_label, article.title, round(score, 4))


@dataclass
class Trace:
    """What the search did for one question, kept only when a caller asks why (the console's 试一试).

    The responder fills it at the points where it decides, with the very objects it
    decided on, so an explanation can never disagree with the answer. Without a
    trace (every household's message) nothing extra is kept or computed.
    """

    route: str = ""  # article_number | search | followup ("" when no search ran: FAQ, greeting...)
    query: Query | None = None  # the query the answer was chosen with (with the previous topic for a follow-up)
    candidates: list[Candidate] = field(default_factory=list)  # the whole shortlist, best first
    boosts: dict[int, float] = field(default_factory=dict)  # article position -> factor applied to its score
    context: str | None = None  # the previous article's words a follow-up was read with
    sentences: list[str] = field(default_factory=list)  # what the reply quotes of the cited article


class Responder:
    def __init__(self, snapshot: Snapshot, min_confidence: float, answer_chars: int,
                 trace: Trace | None = None) -> None:
        self.snapshot = snapshot
        self.min_confidence = min_confidence
        self.answer_chars = answer_chars
        self.trace = trace

    # -- entry point ------------------------------------------------------------

    def respond(self, question: str, last_topic: str | None) -> Answer:
        question = (question or "").strip()
        if not fixed_replies.has_text(question):
            return Answer(fixed_replies.NO_TEXT, topic=last_topic, kind="smalltalk")
        kind = fixed_replies.kind_of(question)
        if kind == "human":
            return Answer(fixed_replies.HANDOVER, handover=True, topic=last_topic, kind="handover")
        if kind == "detail":
            return self._detail(last_topic)
        if kind == "greeting":
            return Answer(fixed_replies.GREETING, topic=last_topic, kind="smalltalk")
        if kind == "thanks":
            return Answer(fixed_replies.THANKS, topic=last_topic, kind="smalltalk")
        if len(question) > fixed_replies.LONG_QUESTION:
            return Answer(fixed_replies.TOO_LONG, handover=True, topic=last_topic, kind="unanswerable")
        faq = self.snapshot.faqs.match(question)
        if faq is not None:
            entry, score = faq
            source = Source("常见问题", "", "", entry.question, round(score, 4))
            return Answer(reply_text.faq_text(entry.answer), [source], topic=faq_topic(entry.id),
                          confidence=score, kind="faq")
        if self.snapshot.empty:
            return Answer(fixed_replies.EMPTY_KB, handover=True, topic=last_topic, kind="unanswerable")
        direct = self._by_article_number(question, last_topic)
        if direct is not None:
            return direct
        return self._search(question, last_topic)

    # -- the pieces ---------------------------------------------------------------

    def _detail(self, last_topic: str | None) -> Answer:
        whole = _whole(self.snapshot, last_topic)
        if whole is None:
            return Answer(fixed_replies.NEED_TOPIC_FOR_DETAIL, topic=last_topic, kind="clarify")
        article = topic_article(self.snapshot, last_topic)
        sources = [_source(article, 1.0)] if article else []
        # The whole article in one piece, as written (the handler pages it; may exceed 2048 bytes).
        heading, body = whole
        return Answer(f"{heading}\n{body}", sources, topic=last_topic, confidence=1.0, kind="detail")

    def _by_article_number(self, question: str, last_topic: str | None) -> Answer | None:
        match = _ARTICLE_REF.search(question)
        if match is None:
            return None
        number = parse_cn_number(match.group(1))  # 第6条, 第六条 and 第０６条 are the same article
        if number is None:
            return None
        same = [a for a in self.snapshot.articles if _article_number(a.label) == number]
        if not same:
            return None
        query = self.snapshot.analyzer.analyse(question)
        if len(same) > 1:
            # Several documents number their articles alike: the rest of the question decides.
            scores = self.snapshot.ranker.article_scores(query)
            same.sort(key=lambda a: -scores[self.snapshot.positions[a.id]])
        article = same[0]
        if self.trace is not None:
            self.trace.route, self.trace.query = "article_number", query
        body = reply_text.excerpt(article, query, self.answer_chars, self._unit)
        self._quoted(body)
        return Answer(reply_text.answer_text(article, body), [_source(article, 1.0)],
                      topic=article_topic(article.id), confidence=1.0, kind="article")

    def _quoted(self, body: str) -> None:
        if self.trace is not None:
            self.trace.sentences = split_sentences(body)

    @property
    def _unit(self) -> float:
        return self.snapshot.index.max_idf()

    def _has_topic(self, query: Query) -> bool:
        """Does the question name something of its own, other than the papers it asks about ("要几张照片")?

        A paper asked about in another sense ("身份证过期了咋个换") is the topic itself.
        """
        if not query.has_topic or not query.asks_papers:
            return query.has_topic
        ranker = self.snapshot.ranker
        return not all(ranker.is_paper(c) for c in query.topic_concepts if c.known)

    def _is_follow_up(self, question: str, query: Query, alone: list[Candidate], previous: ArticleRecord) -> bool:
        """A short message that does not stand on its own ("那要什么材料", "去哪里办"),
        or whose words the previous article has too ("要几张照片" after 残疾证)."""
        if len(core(question)) > FOLLOW_UP_MAX_CHARS:
            return False
        if not self._has_topic(query):
            return True
        if not alone or alone[0].coverage < self.min_confidence:
            return True
        # Only what the previous article itself says: "那C级的呢" after the D级 section is a new section.
        ranker = self.snapshot.ranker
        coverage, _ = ranker.coverage(self.snapshot.positions[previous.id], query, documents=False)
        if coverage >= self.min_confidence:
            return True
        if _CONTINUES.match(question.strip()):
            # "那要多久能批下来" after "低保咋个申请": it carries on, and the same chapter (in a
            # compilation, the same document) answers it, so it is about that, not about anything else.
            group = [i for i, a in enumerate(self.snapshot.articles) if a.document == previous.document
                     and (ranker.compilation or a.chapter_label == previous.chapter_label)][:GROUP_LIMIT]
            return any(ranker.coverage(i, query, documents=False)[0] >= self.min_confidence for i in group)
        return False

    def _search(self, question: str, last_topic: str | None) -> Answer:
        analyzer, ranker = self.snapshot.analyzer, self.snapshot.ranker
        query = analyzer.analyse(question)
        cue_boost = self._cue_title_boost(query)
        for position, factor in self._listed_title_boost(query).items():
            cue_boost[position] = cue_boost.get(position, 1.0) * factor
        for position, factor in self._document_boost(query).items():
            cue_boost[position] = cue_boost.get(position, 1.0) * factor
        for position in self._titles_named(query):
            cue_boost[position] = cue_boost.get(position, 1.0) * TITLE_NAMED_BOOST
        for position, factor in self._who_title_boost(query).items():
            cue_boost[position] = cue_boost.get(position, 1.0) * factor
        # Explaining shows the whole shortlist; the answer only ever uses the first SOURCES.
        keep = SHORTLIST if self.trace is not None else SOURCES
        candidates = ranker.rank(query, k=keep, boost=cue_boost)
        if self.trace is not None:
            self.trace.route, self.trace.query, self.trace.candidates = "search", query, candidates
            self.trace.boosts = cue_boost
        previous = topic_article(self.snapshot, last_topic)
        kind = "article"
        if previous is None and not self._has_topic(query) and not query.unknown_topic:
            return Answer(fixed_replies.CLARIFY, topic=last_topic, kind="clarify")  # "要什么材料": of what?
        if previous is not None and self._is_follow_up(question, query, candidates, previous):
            context = f"{previous.title} {previous.chapter_title}".strip() or previous.label
            if self.snapshot.ranker.compilation:
                context = f"{context} {previous.document}"  # a compilation's documents are its topics
            contextual = analyzer.analyse(question, context=context)
            # A question with no topic of its own ("找哪个申请") is about the previous chapter.
            own_topic = self._has_topic(query)
            # "那C级的呢" after "D级危房补多少": the same part of the document, asked the same way.
            factor = ((CONTINUES_CHAPTER_BOOST if _CONTINUES.match(question.strip()) else SAME_CHAPTER_BOOST)
                      if own_topic else NO_TOPIC_CHAPTER_BOOST)
            boost = {
                i: factor
                for i, a in enumerate(self.snapshot.articles)
                if a.document == previous.document and a.chapter_label == previous.chapter_label
                and a.chapter_title == previous.chapter_title
            }
            if self.snapshot.ranker.compilation:
                for i, a in enumerate(self.snapshot.articles):
                    if a.document == previous.document:
                        boost.setdefault(i, factor ** 0.5)
            if not own_topic or (_SAME_QUESTION.search(question.strip()) and self._asks_within(query, previous)):
                # "找哪个申请" after 雨露计划, "那C级的呢" after the amounts: the same article is asked
                # again (another row, another fact of it) before its neighbours are.
                position = self.snapshot.positions[previous.id]
                boost[position] = boost.get(position, 1.0) * PREVIOUS_ARTICLE_BOOST
            for position, extra in cue_boost.items():
                boost[position] = boost.get(position, 1.0) * extra
            # The previous document is the context already: its other sections earn no extra credit.
            followed = ranker.rank(contextual, k=keep, boost=boost, documents=False)
            if followed:
                query, candidates, kind = contextual, followed, "followup"
                if not own_topic and not query.unknown_topic:
                    candidates[0].coverage = 1.0  # the previous topic is the whole topic
                if self.trace is not None:
                    self.trace.route, self.trace.query, self.trace.candidates = "followup", query, candidates
                    self.trace.boosts, self.trace.context = boost, context
        if not candidates:
            return self._no_answer(query, last_topic)
        best = candidates[0]
        if best.coverage < self.min_confidence or self._lacks_the_sum(query, best):
            return self._no_answer(query, last_topic)
        article = self.snapshot.articles[best.position]
        body = reply_text.excerpt(article, query, self.answer_chars, self._unit)
        self._quoted(body)
        sources = [_source(self.snapshot.articles[c.position], c.score) for c in candidates[:SOURCES]]
        return Answer(reply_text.answer_text(article, body), sources, topic=article_topic(article.id),
                      confidence=round(best.coverage, 4), kind=kind)

    def _asks_within(self, query: Query, previous: ArticleRecord) -> bool:
        """"那C级的呢" after the 危房 amounts asks another item of the same article: every word of its
        own topic stands in it. "那临时救助呢" after applying for 低保 names another topic, which the
        previous article is no better placed to answer than any other."""
        position = self.snapshot.positions[previous.id]
        ranker = self.snapshot.ranker
        return all(ranker.credit(position, c, query.asks_papers, documents=False) for c in query.own_concepts)

    def _lacks_the_sum(self, query: Query, best: Candidate) -> bool:
        """A question for a sum of money ("水费一方要好多钱", "流转费一亩好多") whose best article
        states no amount at all: the article is about the thing, not its price, and quoting it
        would look like an answer without being one, so the question goes to a person."""
        facts = self.snapshot.ranker.facts
        return bool(facts) and asks_money(query.text) and "amount" not in facts[best.position]

    def _cue_title_boost(self, query: Query) -> dict[int, float]:
        """Articles whose title names what the question asks for (申请 for "咋个申请", 标准 for "多少").

        When a question asks how, where or with what papers, and a title names both the
        procedure and the question's topic ("低保申请办理" for "低保咋个申请"), the article
        is about exactly what is asked, and wins over one that only mentions it
        ("农村最低生活保障对象 … 可以申请低保").
        """
        words = {w for cue in query.cues for w in CUE_TITLE_TERMS.get(cue, ())}
        if "share" in asked_facts(query.text):
            words = (words - AMOUNT_TITLE_TERMS) | set(SHARE_TITLE_TERMS)
        # The procedure the household names ("啥时候报名", "哪个来验收") is what a title says too,
        # for an article about the question's topic.
        named_steps = {h for c in query.concepts if not c.from_context for h in c.heads} & PROCEDURE_WORDS - words
        if not words and not named_steps:
            return {}
        topic = {h for c in query.topic_concepts if c.known and c.salience >= SINGLE_CHAR_TOPIC
                 for h in c.heads if len(h) >= 2}
        procedure = {w for cue in query.cues & PROCEDURE_CUES for w in CUE_TITLE_TERMS[cue]}
        boost = {}
        articles, texts = self.snapshot.articles, self.snapshot.analyzer.text
        # A compilation's section titles are short ("农户申请"): the document's title names its topic
        # (《…住房安全保障实施方案》 for 危房改造, whose rule reads 住房).
        compilation = self.snapshot.ranker.compilation
        for i in sorted(set().union(*(self.snapshot.titles_with(w) for w in words))):
            title = articles[i].title
            about = f"{title} {articles[i].document}" if compilation else title
            named = any(w in title for w in procedure) and any(h in about for h in topic)
            boost[i] = CUE_TOPIC_TITLE_BOOST if named else CUE_TITLE_BOOST
        for i in sorted(set().union(*(self.snapshot.titles_with(w) for w in named_steps))):
            about = texts is None or any(h in texts.texts[i] or h in texts.titles[i] for h in topic - named_steps)
            if i not in boost and about:
                boost[i] = CUE_TITLE_BOOST
        return boost

    def _listed_title_boost(self, query: Query) -> dict[int, float]:
        """"监测户有啥子帮扶", "特困人员有哪些待遇": what is listed is named last, and the article
        whose title names it ("帮扶措施") is the list asked for, not the one on who qualifies."""
        match = _LISTED.search(query.text)
        if match is None:
            return {}
        start, end = match.span("what")
        heads = {h for c in query.concepts if not c.from_context and c.start < end and start < c.end
                 for h in c.heads if len(h) >= 2}
        titles = self.snapshot.analyzer.text
        if not heads or titles is None:
            return {}
        return {i: CUE_TOPIC_TITLE_BOOST for i, article in enumerate(self.snapshot.articles)
                if any(h in article.title for h in heads)}

    def _document_boost(self, query: Query) -> dict[int, float]:
        """In a compilation, the sections of a document whose title names the question's topic
        (《…农村低保和临时救助工作规程》 for "低保公示几天"): the document is about it, while the
        word may be in passing in many others ("低保户" in every list of who qualifies)."""
        if not self.snapshot.ranker.compilation:
            return {}
        topic = {h for c in query.topic_concepts if c.known and c.salience >= SINGLE_CHAR_TOPIC
                 for h in c.heads if len(h) >= 2}
        if not topic:
            return {}
        documents = self.snapshot.document_positions
        return {i: DOCUMENT_TOPIC_BOOST for title, positions in documents.items()
                if any(h in title for h in topic) for i in positions}

    def _who_title_boost(self, query: Query) -> dict[int, float]:
        """"哪些人可以享受医疗救助", "高血压算不算慢特病": the article whose title names whom or what a
        measure covers (救助对象, 病种), ×1.6 when its title, its chapter's or its document's names the
        question's topic too (第四章 医疗救助 › 一、救助对象), else ×1.25."""
        if not WHO_ASKED.search(query.text):
            return {}
        topic = {h for c in query.topic_concepts if c.known and c.salience >= SINGLE_CHAR_TOPIC
                 for h in c.heads if len(h) >= 2}
        boost = {}
        for i in sorted(set().union(*(self.snapshot.titles_with(w) for w in WHO_TITLE_TERMS))):
            a = self.snapshot.articles[i]
            about = f"{a.title} {a.chapter_title} {a.document}"
            boost[i] = CUE_TOPIC_TITLE_BOOST if any(h in about for h in topic) else CUE_TITLE_BOOST
        return boost

    def _titles_named(self, query: Query) -> list[int]:
        """Articles whose own title the question says as one phrase ("住院救助", "倾斜救助最高好多"),
        as heard and as meant (a voice slip corrected). Only the section's own title: a chapter's or a
        document's is shared by the very sections the question tells apart."""
        said = {query.text, query.heard} - {""}
        titles = self.snapshot.ranker.naming_titles((a.title for a in self.snapshot.articles),
                                                    self.snapshot.analyzer.segmenter.words, TITLE_NAMED_MIN_CHARS)
        return [i for i, title in titles if any(title in text for text in said)]

    def _no_answer(self, query: Query, last_topic: str | None) -> Answer:
        if not query.topic_concepts:
            # Only "要什么材料", "多少钱": ask which policy, do not bother a person yet.
            return Answer(fixed_replies.CLARIFY, topic=last_topic, kind="clarify")
        return Answer(fixed_replies.UNANSWERABLE, handover=True, topic=last_topic, kind="unanswerable")
