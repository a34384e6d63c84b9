"""Why the knowledge base answers a question the way it does (the console's 试一试).

``explain`` runs the same ``Responder`` a household's message goes through,
with a ``Trace`` that records the query it analysed and the shortlist it
ranked, and turns them into plain data: the reply, which article was cited,
every candidate with its BM25 score, coverage and the score the shortlist is
ordered by, the synonym rules and homophone fixes applied to the question,
and — in words a cadre can act on — why it answered, asked back or handed
over. Nothing here ranks anything itself, so the explanation is the ranking.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from knowledge import fixed_replies
from knowledge.responder import Responder, Trace, article_topic, topic_article
from knowledge.result import Answer
from knowledge.search.faq_match import DICE_MIN
from knowledge.search.query import Concept
from knowledge.snapshot import Snapshot
from storage.db import Database
from storage.models.knowledge import KbPassage

CUE_NAMES = {
    "amount": "问金额", "materials": "问材料", "where": "问去哪办", "when": "问时间", "how": "问怎么办",
    "eligibility": "问条件",
}
ROUTE_NAMES = {
    "faq": "常见问题", "article_number": "按条号", "search": "搜索汇编", "followup": "追问（接着上一条）",
    "smalltalk": "不是政策问题", "handover": "要求转人工", "detail": "看全文", "clarify": "先问清楚",
    "too_long": "问题太长", "empty": "政策库是空的",
}


@dataclass(frozen=True)
class ExplainedConcept:
    words: str  # as the household wrote them
    means: list[str]  # the words searched for it (its own, the homophone fix, synonym expansions)
    from_synonyms: list[str]  # of those, what a synonym rule added
    weight: float  # how much it counts towards coverage
    in_handbook: bool  # the handbook uses one of its words
    asks: bool  # a way of asking (多少, 咋个办), not a topic


@dataclass(frozen=True)
class ExplainedCandidate:
    article_id: int
    document: str
    chapter: str
    label: str  # 第六条, as written
    title: str
    bm25: float  # its best passage's BM25 score, times the boost
    boost: float  # 1.0, or the factor for a title naming what is asked (申请, 标准...)
    coverage: float  # share of the question's weight the article covers (0..1)
    score: float  # what the shortlist is ordered by: bm25 × (0.2 + 0.8 × coverage²) × (1 + 0.6 × fact fit)
    cited: bool
    matched: list[str]  # the question's words it covers
    missing: list[str]  # the question's words it does not
    passage: str  # its best passage
    fact_fit: float = 0.0  # share of the kinds of fact asked for (amount, time, place…) the article states


@dataclass
class Explanation:
    question: str
    reply: str  # exactly the text a household would get
    kind: str  # Answer.kind
    route: str  # a key of ROUTE_NAMES
    route_name: str  # its Chinese name
    handover: bool
    reason: str  # why, in a sentence a cadre can act on
    confidence: float
    min_confidence: float
    cited: ExplainedCandidate | None = None
    faq: dict[str, Any] | None = None  # {"id", "question", "similarity", "threshold"}
    concepts: list[ExplainedConcept] = field(default_factory=list)
    cues: list[str] = field(default_factory=list)  # what kind of question it is (问金额...)
    synonyms: list[dict[str, Any]] = field(default_factory=list)  # {"phrase", "expansions", "whole"}
    homophones: list[dict[str, str]] = field(default_factory=list)  # {"heard", "meant"}
    candidates: list[ExplainedCandidate] = field(default_factory=list)
    context: str | None = None  # the previous topic a follow-up was read with
    sentences: list[str] = field(default_factory=list)  # the sentences of the cited article the reply quotes

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _route(answer: Answer, trace: Trace) -> str:
    if answer.kind in ("faq", "clarify", "smalltalk", "handover", "detail"):
        return answer.kind
    if trace.route:
        return trace.route
    if answer.text == fixed_replies.TOO_LONG:
        return "too_long"
    if answer.text == fixed_replies.EMPTY_KB:
        return "empty"
    return "search"


def _name(concept: Concept) -> str:
    """What the household wrote; a question cue (added by the kind of question, not by a word) by its name."""
    return CUE_NAMES.get(concept.surface, concept.surface) if concept.start < 0 else concept.surface


def _words(concepts: list[Concept]) -> list[str]:
    return list(dict.fromkeys(_name(c) for c in concepts))


def _reason(answer: Answer, route: str, min_confidence: float, best: ExplainedCandidate | None,
            faq: dict[str, Any] | None, unknown: list[str]) -> str:
    if route == "faq" and faq is not None:
        return (f"和常见问题“{faq['question']}”的相似度是 {faq['similarity']:.2f}（到 {DICE_MIN} 就用常见问题回答），"
                "所以直接用它的答案，不查汇编。")
    if route == "article_number":
        return "问题里写了条号，直接回答这一条。"
    if route == "too_long":
        return f"问题超过 {fixed_replies.LONG_QUESTION} 字，一下子答不全，转给工作人员。"
    if route == "empty":
        return "政策库里还没有任何条文，转给工作人员。"
    if route == "smalltalk":
        return "这不是政策问题（问候、道谢、表情或空消息），回一句固定的话。"
    if route == "handover":
        return "群众要求找人工，直接转给工作人员。"
    if route == "detail":
        return "“详细”是看上一条的全文。"
    if route == "clarify":
        if answer.text == fixed_replies.NEED_TOPIC_FOR_DETAIL:
            return "还没有问过政策问题，不知道要看哪一条的全文。"
        return "问题里只有“要什么材料”“多少钱”这类问法，没有说是哪项政策，先请群众说具体些，不转人工。"
    if best is None:
        return "汇编里没有找到和问题有关的词，答不上来，转给工作人员。"
    share, need = f"{best.coverage:.0%}", f"{min_confidence:.0%}"
    where = f"{best.label or best.title}《{best.title}》" if best.label else f"《{best.title}》"
    if answer.handover:
        missing = "、".join(best.missing)
        why = f"最相关的{where}只对上了问题的 {share}，不到 {need}，答不准就不猜，转给工作人员。"
        if missing:
            why += f"没对上的：{missing}"
            if unknown:
                why += f"（{'、'.join(unknown)} 在汇编里没有出现，可以考虑添加同义词或常见问题）"
            why += "。"
        return why
    lead = "按追问理解（接着上一条的主题）；" if route == "followup" else ""
    return f"{lead}{where}对上了问题的 {share}（至少 {need} 才回答），引用这一条。"


def explain(snapshot: Snapshot, db: Database, question: str, min_confidence: float, answer_chars: int,
            last_topic: str | None = None) -> Explanation:
    """Answer ``question`` as a household's message would be answered, and say why."""
    trace = Trace()
    answer = Responder(snapshot, min_confidence, answer_chars, trace).respond(question, last_topic)
    route = _route(answer, trace)
    explanation = Explanation(question, answer.text, answer.kind, route, ROUTE_NAMES.get(route, route),
                              answer.handover, "",
                              round(answer.confidence, 4), min_confidence, context=trace.context,
                              sentences=list(trace.sentences))
    if route == "faq" and answer.topic:
        entry = snapshot.faq_by_id.get(int(answer.topic.split(":", 1)[1]))
        if entry is not None:
            explanation.faq = {"id": entry.id, "question": entry.question, "similarity": round(answer.confidence, 4),
                               "threshold": DICE_MIN}
    query = trace.query
    unknown: list[str] = []
    if query is not None:
        # The household's own words; the kind of question (问金额...) is listed as ``cues``.
        own = [c for c in query.concepts if not c.from_context and c.start >= 0]
        explanation.concepts = [
            ExplainedConcept(c.surface, sorted(c.heads or c.terms), sorted(c.expansions), round(c.weight, 3), c.known,
                             c.aspect)
            for c in own
        ]
        explanation.cues = [CUE_NAMES.get(cue, cue) for cue in sorted(query.cues)]
        unknown = _words([c for c in query.topic_concepts if not c.known])
        fixes, hits = snapshot.analyzer.rewrites(question)
        explanation.homophones = [{"heard": f.heard, "meant": f.meant} for f in fixes]
        explanation.synonyms = [{"phrase": h.phrase, "expansions": list(h.expansions), "whole": h.whole}
                                for h in hits]
        explanation.candidates = _candidates(snapshot, db, trace, answer)
        explanation.cited = next((c for c in explanation.candidates if c.cited), None)
        if route == "article_number":
            article = topic_article(snapshot, answer.topic)
            if article is not None:
                explanation.cited = ExplainedCandidate(
                    article.id, article.document, article.chapter_label or article.chapter_title, article.cited_label,
                    article.title, 0.0, 1.0, 1.0, 1.0, True, [], [], "")
    best = explanation.candidates[0] if explanation.candidates else None
    explanation.reason = _reason(answer, route, min_confidence, best, explanation.faq, unknown)
    return explanation


def _candidates(snapshot: Snapshot, db: Database, trace: Trace, answer: Answer) -> list[ExplainedCandidate]:
    query = trace.query
    assert query is not None
    positions = [c.position for c in trace.candidates]
    best = snapshot.ranker.best_passages(query, positions)
    texts: dict[int, str] = {}
    if best:
        with db.session() as session:
            ids = [passage_id for passage_id, _ in best.values()]
            texts = dict(session.execute(select(KbPassage.id, KbPassage.text).where(KbPassage.id.in_(ids))).all())
    topics = query.own_concepts
    cited_topic = None if answer.handover else answer.topic
    out = []
    for candidate in trace.candidates:
        article = snapshot.articles[candidate.position]
        matched = {id(c) for c in candidate.matched}
        passage_id = best.get(candidate.position, (0, 0.0))[0]
        out.append(ExplainedCandidate(
            article.id, article.document, article.chapter_label or article.chapter_title, article.cited_label,
            article.title, round(candidate.score, 4), round(trace.boosts.get(candidate.position, 1.0), 4),
            round(candidate.coverage, 4), round(candidate.rank_score, 4), article_topic(article.id) == cited_topic,
            _words([c for c in topics if id(c) in matched]), _words([c for c in topics if id(c) not in matched]),
            texts.get(passage_id, ""), round(candidate.fit, 4),
        ))
    return out
