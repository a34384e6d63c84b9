"""Ranking articles for a question and measuring how well the best one covers it.

Passages are scored with BM25; an article scores as its best passage. The
confidence of a candidate is the share of the question's topic concepts
(weighted by rarity) that the article mentions in any of their forms. BM25
alone always returns *something*; coverage is what tells a question about
低保 from one about 驾照 that merely shares the word 补贴.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from knowledge.nlp.cues import ASPECT_WORDS, PROCEDURE_WORDS, asked_facts, fact_kinds
from knowledge.nlp.sentences import split_sentences
from knowledge.nlp.tokenizer import normalize_text
from knowledge.search.index import PassageIndex
from knowledge.search.query import Concept, Query
from knowledge.search.senses import HandbookText, bounded


SHORTLIST = 10
PART_CREDIT = 0.5  # the article has 证明 where the question said 出生证明
EXPANSION_PIECE_CREDIT = 0.25
DOCUMENT_CREDIT = 0.4  # a compilation's section lacks the word, another section of its document has it
COMPILATION_DOCUMENTS = 3  # this many documents or more: a compilation, whose documents are topics  # the article has only a piece of a synonym's words (保障 of 最低生活保障)
ALL_PIECES_CREDIT = 0.8  # every part of a word the handbook lacks, apart (特困…供养 for 特困供养)
UNMATCHED_KNOWN = 0.35  # cost of a handbook word the article lacks, relative to its weight
# ...except a specific name of a thing (中药, 耕地, 要还 => 还款: about as rare as the handbook's
# rarest words): missing from the article, it is what the question is about, not how it is
# phrased ("家庭医生能开中药不", "临时救助的钱要还不").
UNMATCHED_SPECIFIC = 0.7
SPECIFIC_SHARE = 0.85
COVERAGE_BASE = 0.2  # a candidate covering none of the question keeps this share of its score
STEP_FACTS = frozenset({"when", "where"})  # asked of a named step: "啥时候报名", "哪个来验收"
DOCUMENT_TOPIC_SHARE = 0.7  # a compilation's section scores this share of its document's best for the document's topic
FACT_FIT = 0.6  # an article stating the kind of fact asked for (a time for "好久到账") ranks this much higher


def _covered_share(word: str, pieces: list[str]) -> float:
    covered: set[int] = set()
    for piece in pieces:
        start = word.find(piece)
        while start >= 0:
            covered.update(range(start, start + len(piece)))
            start = word.find(piece, start + 1)
    return len(covered) / max(1, len(word))


@dataclass
class Candidate:
    position: int  # index into the snapshot's article list
    score: float  # BM25 of its best passage, times any boost
    coverage: float
    matched: list[Concept]
    fit: float = 0.0  # share of the kinds of fact asked for (amount, time, place, papers) the article states
    # Coverage by the article's own words: in a compilation ``coverage`` also credits words other
    # sections of its document have, which says the handbook covers the question, not which
    # section answers it; the order uses this one.
    own_coverage: float | None = None

    @property
    def rank_score(self) -> float:
        """What the shortlist is ordered by: the score, discounted for what the article does not cover,
        raised when the article states the kind of fact asked for."""
        coverage = self.coverage if self.own_coverage is None else self.own_coverage
        return self.score * (COVERAGE_BASE + (1 - COVERAGE_BASE) * coverage ** 2) * (1 + FACT_FIT * self.fit)


class Ranker:
    def __init__(self, index: PassageIndex, passage_article: np.ndarray, article_count: int,
                 text: HandbookText | None = None, article_document: list[int] | None = None) -> None:
        self.index = index
        self.text = text
        # In a compilation (several policy documents), each article's document: a section of a
        # 实施方案 is read with its document ("二、（一）农户自主申报" is about 返贫 and 大病 too).
        documents = article_document or []
        self.article_document = np.asarray(documents, dtype=np.int64)
        self.compilation = len(set(documents)) >= COMPILATION_DOCUMENTS
        # What kinds of fact each article states (computed once per snapshot, a regex per kind).
        self.facts = [fact_kinds(t) for t in text.texts] if text is not None else []
        self._known_sense: dict[str, bool] = {}
        self._term_documents: dict[int, frozenset[int]] = {}
        self._documents_named: dict[frozenset[str], np.ndarray] = {}
        self._step_facts: dict[tuple[int, frozenset[str]], frozenset[str]] = {}
        self._sentences: dict[int, list[str]] = {}
        self._own_titles: list[tuple[int, str]] | None = None
        self.passage_article = passage_article.astype(np.int64)
        self.article_count = article_count
        # Which terms each article has, as one set of article * V + term: "does article a have
        # term t" is asked thousands of times a question and must be a set lookup.
        counts = np.diff(index.indptr)
        terms = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        self._vocab_size = max(1, len(counts))
        pairs = self.passage_article[index.indices] * self._vocab_size + terms if len(terms) else terms
        self._article_terms = set(pairs.tolist())
        self.passage_document = (self.article_document[self.passage_article]
                                 if len(self.article_document) == article_count else np.zeros(0, np.int64))
        self.document_count = int(self.article_document.max()) + 1 if len(self.article_document) else 0
        # Passages grouped by document (for each document's best passage in one reduceat): the
        # order, where each present document's run starts, and each passage's run number.
        self._document_order = np.argsort(self.passage_document, kind="stable")
        present, self._document_starts = np.unique(self.passage_document[self._document_order], return_index=True)
        self._document_rank = np.searchsorted(present, self.passage_document)
        order = np.argsort(self.passage_article, kind="stable")
        bounds = np.searchsorted(self.passage_article[order], np.arange(article_count + 1))
        self.article_passages = [order[bounds[i]:bounds[i + 1]] for i in range(article_count)]

    def passage_scores(self, query: Query) -> np.ndarray:
        """BM25 of every passage; in a compilation a section also inherits its document's topic.

        The sections of one document (《…住房安全保障实施方案》三、（一）农户申请) are all about the
        topic its title names, though most never repeat the words: "危房改造咋个申请" must not go to the one section
        that happens to say 危房 while the section on applying says 住房 once. So each topic concept
        scores in a section at least ``DOCUMENT_TOPIC_SHARE`` of its best score in the section's
        document, and the sections are told apart by the rest of the question.
        """
        if not self.compilation or not len(self.passage_document):
            return self.index.score(query.term_weights(self.index))
        plain: dict[int, float] = {}
        inheriting = []
        for concept, weights in query.concept_term_weights(self.index):
            named = (self._documents_naming(concept)
                     if not concept.aspect and not concept.from_context and self.text is not None else None)
            if named is not None and len(named):
                inheriting.append((weights, named[self.passage_article]))
            else:
                plain.update(weights)
        scores = self.index.score(plain)
        for weights, named in inheriting:
            own = self.index.score(weights)
            # Each document's best passage for the concept: passages grouped by document, one reduceat.
            best = np.maximum.reduceat(own[self._document_order], self._document_starts)
            inherited = DOCUMENT_TOPIC_SHARE * best[self._document_rank]
            scores += np.where(named, np.maximum(own, inherited), own)
        return scores

    def _documents_naming(self, concept: Concept) -> np.ndarray:
        """Per article: does its document's title name the concept (every section's headings do)?

        Only the document's title: a chapter heading (三、申请和审批) is shared by a few sections
        that the question may be telling apart. Empty when no document names it."""
        words = frozenset(concept.heads | concept.expansions)
        memo = self._documents_named.get(words)
        if memo is not None:
            return memo
        bounded(self._documents_named)
        named = np.fromiter((any(w in t for w in words) for t in self.text.titles), dtype=bool,
                            count=len(self.text.titles))
        if not named.any():
            self._documents_named[words] = np.zeros(0, dtype=bool)
            return self._documents_named[words]
        missing = np.zeros(self.document_count, dtype=bool)
        missing[self.article_document[~named]] = True
        self._documents_named[words] = ~missing[self.article_document]
        return self._documents_named[words]

    def _other_documents_topic(self, position: int, concept: Concept) -> bool:
        """Does a document's title name the concept while the article's own document's does not?"""
        if self.text is None or not concept.known or concept.aspect or len(concept.surface) < 2 or concept.salience < 1.0:
            return False  # only names of things (小额信贷), not 人 or a verb
        named = self._documents_naming(concept)
        return bool(len(named)) and not named[position]

    def naming_titles(self, titles: Iterable[str], words: Callable[[str], list[str]],
                      min_chars: int) -> list[tuple[int, str]]:
        """(position, title) of the articles whose own title names that one section (住院救助, 起付标准),
        normalized once per snapshot. Not a title several sections share (each document's 申请条件),
        nor one made only of ways of asking (补助标准, 办理流程): those name an aspect, not a section."""
        if self._own_titles is None:
            normalized = [normalize_text(t) for t in titles]
            counts: dict[str, int] = {}
            for title in normalized:
                counts[title] = counts.get(title, 0) + 1
            self._own_titles = [
                (i, title) for i, title in enumerate(normalized)
                if len(title) >= min_chars and counts[title] == 1
                and not all(w in ASPECT_WORDS for w in words(title))]
        return self._own_titles

    def article_scores(self, query: Query) -> np.ndarray:
        passage_scores = self.passage_scores(query)
        scores = np.zeros(self.article_count, dtype=np.float32)
        if len(passage_scores):
            np.maximum.at(scores, self.passage_article, passage_scores)
        return scores

    def _present(self, position: int, term: str) -> bool:
        tid = self.index.term_id(term)
        if tid is None:
            # A phrase jieba cuts into several words (偿还旧债): does the text have it?
            return self.text is not None and len(term) >= 2 and position in self.text.articles_with(term)
        return position * self._vocab_size + tid in self._article_terms

    def _in_document(self, position: int, term: str) -> bool:
        """Another article of the same document has ``term`` (compilations only)."""
        tid = self.index.term_id(term)
        if tid is None or not len(self.article_document):
            return False
        documents = self._term_documents.get(tid)
        if documents is None:
            # Which documents use the term: asked for every candidate of every question, computed once.
            bounded(self._term_documents)
            articles = self.passage_article[self.index.postings(tid)]
            documents = self._term_documents[tid] = frozenset(np.unique(self.article_document[articles]).tolist())
        return int(self.article_document[position]) in documents

    def _same_sense(self, position: int, term: str, papers_asked: bool) -> bool:
        """The article uses ``term`` as the question does (see senses.py)."""
        return papers_asked or self.text is None or not self.text.only_as_paper(position, term)

    def _has(self, position: int, term: str, papers_asked: bool) -> bool:
        return self._present(position, term) and self._same_sense(position, term, papers_asked)

    def credit(self, position: int, concept: Concept, papers_asked: bool = True, documents: bool = True) -> float:
        """1 if the article has a whole word for the concept, PART_CREDIT if only a piece of one.

        Unless the question asks which papers to bring, a word the article only
        lists as a paper to bring (身份证 in "申请时带身份证") does not count.
        """
        papers_asked = papers_asked or concept.from_context
        # A lone character stands for the concept only when it is the whole of it: 学 of "网上学"
        # (a rule read 网上, the household added 学) is in every article on 学生 or 学手艺.
        if any(self._has(position, t, papers_asked) for t in concept.heads
               if len(t) >= 2 or len(concept.surface) <= 1):
            return 1.0
        # A lone character (分 of 分几回) is in every article: only pieces of two or more count.
        pieces = [t for t in concept.terms
                  if t not in concept.heads and len(t) >= 2 and self._has(position, t, papers_asked)]
        if not pieces:
            if (documents and self.compilation and concept.known
                    and any(self._in_document(position, t) for t in concept.heads)):
                return DOCUMENT_CREDIT
            return 0.0
        if concept.known:
            # 危房 where the question said 危房改造: the same thing, less precisely. A piece of what a
            # synonym rule added (保障 of 最低生活保障, for 低保) is much weaker: 劳动保障所 is not 低保.
            own = concept.heads - concept.expansions
            if any(piece in head for piece in pieces for head in own):
                return PART_CREDIT
            return EXPANSION_PIECE_CREDIT
        # A word the handbook lacks: as much credit as the pieces found cover of it. 证明 is
        # half of 出生证明 and says nothing of 出生; an article with both 特困 and 供养 has
        # all of 特困供养 (what "特困工养" sounds like), just not side by side.
        share = max(_covered_share(word, pieces) for word in {concept.surface} | concept.heads)
        return ALL_PIECES_CREDIT if share >= 1.0 else PART_CREDIT * share

    def is_paper(self, concept: Concept) -> bool:
        """Is the concept a paper the handbook only ever lists as one to bring (户口簿, 照片)?"""
        return concept.known and not self.known_sense(concept, papers_asked=False)

    def known_sense(self, concept: Concept, papers_asked: bool) -> bool:
        """Does the handbook use the concept's words in the question's sense anywhere?

        身份证 is in the handbook only as a paper to bring: for "办身份证要多久"
        the handbook has nothing, and a missing 身份证 costs as much as 驾照.
        """
        if not concept.known:
            return False
        if papers_asked or concept.from_context or self.text is None:
            return True
        for term in concept.heads:
            cached = self._known_sense.get(term)
            if cached is None:
                bounded(self._known_sense)
                tid = self.index.term_id(term)
                if tid is not None:
                    articles = {int(a) for a in np.unique(self.passage_article[self.index.postings(tid)])}
                else:
                    articles = set(self.text.articles_with(term)) if len(term) >= 2 else set()
                cached = self._known_sense[term] = any(not self.text.only_as_paper(a, term) for a in articles)
            if cached:
                return True
        return False

    def coverage(self, position: int, query: Query, documents: bool = True) -> tuple[float, list[Concept]]:
        """Share of the question's weight the article covers.

        A word the handbook uses elsewhere but this article lacks (老人, 时间) is
        usually the household's phrasing and costs little; a word the handbook
        never uses costs its full weight: that is the sign of a topic it lacks.
        """
        coverage, matched, _ = self.coverages(position, query, documents)
        return coverage, matched

    def coverages(self, position: int, query: Query, documents: bool = True) -> tuple[float, list[Concept], float]:
        """``coverage`` with and without the credit of the article's document, in one pass:
        (coverage, concepts matched, coverage by the article's own words)."""
        concepts = query.own_concepts
        if not query.has_topic:
            # "找哪个申请" after 雨露计划: the previous topic is what it is about; its own words
            # (找) only say how it is asked, and an article that happens to say 找 is no answer.
            concepts = concepts + [c for c in query.concepts if c.from_context]
        papers_asked = query.asks_papers
        asks_action = any(c.asked_action for c in concepts)
        got = total = own_got = own_total = 0.0
        matched = []
        for concept in concepts:
            own = self.credit(position, concept, papers_asked, documents=False)
            credit = own
            if not own and documents and self.compilation and concept.known and any(
                    self._in_document(position, t) for t in concept.heads):
                credit = DOCUMENT_CREDIT
            if credit:
                matched.append(concept)
            known = self.known_sense(concept, papers_asked)
            # A word the handbook has only in another sense weighs as a word it lacks.
            weight = concept.weight if known or not concept.known else max(concept.weight, concept.unknown_weight)
            cost = self._missing_cost(concept) if known else 1.0
            if (known and credit < 1.0 and asks_action and self.compilation
                    and self._other_documents_topic(position, concept)):
                # "小额信贷能不能在手机上申请", and the article is in another document than the one
                # whose title names 小额信贷: whether one may do a thing is asked of that topic,
                # and an article about another one's 小程序 says nothing of it.
                cost = 1.0
            got += weight * credit
            total += weight * credit + weight * (1 - credit) * cost
            own_got += weight * own
            own_total += weight * own + weight * (1 - own) * cost
        return (got / total if total > 0 else 0.0), matched, (own_got / own_total if own_total > 0 else 0.0)

    def _missing_cost(self, concept: Concept) -> float:
        """What a handbook word the article lacks costs, relative to its weight (see UNMATCHED_SPECIFIC);
        the action a question asks about costs all of it."""
        if concept.asked_action:
            return 1.0
        if concept.salience >= 1.0 and concept.weight >= SPECIFIC_SHARE * self.index.max_idf():
            return UNMATCHED_SPECIFIC
        return UNMATCHED_KNOWN

    def rank(self, query: Query, k: int = 3, boost: dict[int, float] | None = None,
             documents: bool = True) -> list[Candidate]:
        """Top ``k`` articles: BM25 shortlist, re-ordered by how much of the question each covers.

        BM25 rewards repeating one word; an article that mentions every part of the
        question (搬迁 *and* 补多少钱) should beat one that says 搬迁 five times.
        """
        if self.article_count == 0:
            return []
        scores = self.article_scores(query)
        if boost:
            for position, factor in boost.items():
                scores[position] *= factor
        shortlist = np.argsort(-scores, kind="stable")[:SHORTLIST]
        out: list[Candidate] = []
        asked = asked_facts(query.text)
        steps = (self.named_steps(query) or self.anchor(query)) if asked & STEP_FACTS else frozenset()
        best: list[float] = []  # the k highest rank scores so far
        for position in shortlist.tolist():
            score = float(scores[position])
            if score <= 0:
                break
            # The shortlist is in falling BM25 order and a rank score is at most the BM25 score
            # times (1 + FACT_FIT): once that bound is below the k-th best, no later candidate can
            # enter the top k. Explaining asks for the whole shortlist, so nothing is skipped there.
            if len(best) >= k and score * (1 + FACT_FIT) < best[-1]:
                break
            fit = len(asked & self.stated(position, steps)) / len(asked) if asked and self.facts else 0.0
            if len(best) >= k and score * (1 + FACT_FIT * fit) < best[-1]:
                continue  # this one cannot enter the top k (a later one still may)
            coverage, matched, own = self.coverages(position, query, documents)
            candidate = Candidate(position, score, coverage, matched, fit,
                                  own if documents and self.compilation else None)
            out.append(candidate)
            best = sorted(best + [candidate.rank_score], reverse=True)[:k]
        out.sort(key=lambda c: c.rank_score, reverse=True)
        return out[:k]

    @staticmethod
    def named_steps(query: Query) -> frozenset[str]:
        """The words of a procedure step the question names (报名 with its readings 申报, 申请)."""
        return frozenset(h for c in query.concepts if not c.from_context and c.heads & PROCEDURE_WORDS
                         for h in c.heads if len(h) >= 2)

    @staticmethod
    def anchor(query: Query) -> frozenset[str]:
        """Without a named step, what a time or place is asked of is the question's most specific
        topic: "贷款好久能放下来" asks when the loan is paid out (放款), not the loan's term."""
        topics = [c for c in query.topic_concepts if c.known and c.salience >= 0.7]
        if not topics:
            return frozenset()
        best = max(topics, key=lambda c: c.weight)
        return frozenset(h for h in best.heads if len(h) >= 2)

    def stated(self, position: int, steps: frozenset[str]) -> frozenset[str]:
        """The kinds of fact the article states; with named ``steps``, a time or place counts only
        in a sentence that names one of them: "产业奖补几月份报名" wants the sentence that says when
        to apply, not the one that says when the money is paid. An article whose title (its
        chapter's, its document's) names them states them in every sentence."""
        kinds = self.facts[position]
        if not steps or not kinds & STEP_FACTS or self.text is None:
            return kinds
        if any(w in self.text.titles[position] for w in steps):
            return kinds  # the article is about it as a whole (《…小额信贷实施方案》三、办理流程)
        key = (position, steps)
        found = self._step_facts.get(key)
        if found is None:
            bounded(self._step_facts)
            sentences = self._sentences.get(position)
            if sentences is None:
                sentences = self._sentences[position] = split_sentences(self.text.texts[position])
            step_kinds = {kind for sentence in sentences if any(w in sentence for w in steps)
                          for kind in fact_kinds(sentence) & STEP_FACTS}
            found = self._step_facts[key] = (kinds - STEP_FACTS) | frozenset(step_kinds)
        return found

    def best_passages(self, query: Query, positions: list[int]) -> dict[int, tuple[int, float]]:
        """For explaining only: each article's best passage (its id) and that passage's BM25 score."""
        scores = self.passage_scores(query)
        best = {}
        for position in positions:
            rows = self.article_passages[position]
            if len(rows):
                row = int(rows[int(np.argmax(scores[rows]))])
                best[position] = (int(self.index.passage_ids[row]), float(scores[row]))
        return best
