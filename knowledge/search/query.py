"""Reading a household's question into "concepts": the things it is about.

A concept is one idea in the question ("房子漏雨") with the index terms that
can stand for it: the words as segmented, a homophone fix (底保 -> 低保) and
what the synonym table says the handbook calls it (危房改造). Ranking sums the
terms; the confidence check asks how much of the question's concepts the best
article covers, which is what lets the bot say "I don't know" honestly when a
question is about something the handbook never mentions (驾照, 彩礼).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from knowledge.nlp.cues import ASPECT_WORDS, CUE_TERMS, question_cues
from knowledge.nlp.homophones import HomophoneMap
from knowledge.nlp.synonyms import SynonymTable
from knowledge.nlp.tokenizer import Segmenter, is_han, normalize_text
from knowledge.search.index import PassageIndex

OWN_WEIGHT = 1.0  # the household's own words (and their homophone fixes)
SYNONYM_WEIGHT = 0.6  # what the synonym table adds
OWN_KNOWN_SYNONYM_SHARE = 0.75  # synonyms of a word the handbook already uses only back it up
PIECE_SHARE = 0.5  # pieces of a synonym's words (最低 in 最低生活保障) count half
CONTEXT_WEIGHT = 0.5  # the previous topic's words, for follow-ups
CUE_WEIGHT = 0.7  # words that the kind of question suggests (申请/程序 for "咋个办")
# How much an unknown word (not in the handbook, no synonym) weighs against
# confidence, relative to the rarest handbook word, by how common the word is
# in general Chinese (jieba's dictionary counts).
UNKNOWN_RARE, RARE_BELOW = 0.9, 3000
UNKNOWN_COMMON, COMMON_BELOW = 0.45, 15000
UNKNOWN_EVERYDAY = 0.2
UNKNOWN_SINGLE = 0.1
# Salience of a word by its kind, for both known and unknown words: single
# characters and function words (每个, 一次, 已经) say little about the topic.
SINGLE_CHAR = 0.3
FUNCTION_WORD = 0.3
VERB = 0.7
SINGLE_CHAR_QUERY_WEIGHT = 0.5  # in ranking too, a lone character is weak evidence
NOUN_TAGS = frozenset("n nr nrt nrfg ns nt nz vn an ng l i j".split())
FUNCTION_TAGS = frozenset("r rr rz m mq q d p c u t tg f s y e o zg ad dg uj ul uz ud ug uv".split())


@dataclass
class Concept:
    surface: str
    start: int
    end: int
    terms: dict[str, float] = field(default_factory=dict)  # index term -> query weight
    # Whole words that stand for the concept (the word itself, its homophone fix, synonym
    # expansions); the other terms are pieces search mode found inside them (证明 in 出生证明).
    heads: set[str] = field(default_factory=set)
    from_context: bool = False
    weight: float = 0.0  # importance for confidence, set by analyse()
    salience: float = 1.0  # 1 for names of things, less for verbs, single characters, function words
    known: bool = False
    aspect: bool = False

    def add(self, term: str, weight: float, head: bool = False) -> None:
        if weight > self.terms.get(term, 0.0):
            self.terms[term] = weight
        if head:
            self.heads.add(term)


@dataclass
class Query:
    text: str
    concepts: list[Concept]
    cues: set[str]

    @property
    def topic_concepts(self) -> list[Concept]:
        return [c for c in self.concepts if not c.aspect and not c.from_context]

    @property
    def unknown_topic(self) -> bool:
        """Does the question name something the handbook never mentions (驾照)?"""
        return any(not c.known and c.salience >= VERB for c in self.topic_concepts)

    @property
    def has_topic(self) -> bool:
        """Does the question name something of its own (not just 带/找/材料)?"""
        return any(c.known and c.salience >= VERB for c in self.topic_concepts)

    def term_weights(self, index: PassageIndex) -> dict[int, float]:
        weights: dict[int, float] = {}
        for concept in self.concepts:
            for term, weight in concept.terms.items():
                tid = index.term_id(term)
                if tid is not None and weight > weights.get(tid, 0.0):
                    weights[tid] = weight
        return weights


class QueryAnalyzer:
    def __init__(self, segmenter: Segmenter, synonyms: SynonymTable, index: PassageIndex) -> None:
        self.segmenter = segmenter
        self.synonyms = synonyms
        self.index = index
        vocabulary = set(index.vocab) | set(_dictionary_words(segmenter))
        self.homophones = HomophoneMap(vocabulary)

    def _is_known(self, run: str) -> bool:
        return run in self.index.vocab or self.segmenter.is_dictionary_word(run) or run in self.synonyms.rules

    def _terms_of(self, phrase: str) -> list[str]:
        return self.segmenter.words(phrase) or [normalize_text(phrase)]

    def analyse(self, question: str, context: str | None = None) -> Query:
        text = normalize_text(question).strip()
        concepts = self._word_concepts(text)
        concepts = self._apply_homophones(text, concepts)
        concepts = self._apply_synonyms(text, concepts)
        cues = question_cues(text)
        for cue in sorted(cues):
            concept = Concept(cue, -1, -1, aspect=True)
            for term in CUE_TERMS.get(cue, ()):
                concept.add(term, CUE_WEIGHT)
            concepts.append(concept)
        if context:
            concept = Concept(context, -1, -1, from_context=True)
            for term in self._terms_of(context):
                if term not in ASPECT_WORDS:
                    concept.add(term, CONTEXT_WEIGHT)
            concepts.append(concept)
        for concept in concepts:
            self._weigh(concept)
        return Query(text, concepts, cues)

    def _word_concepts(self, text: str) -> list[Concept]:
        tokens = self.segmenter.tokens(text)
        # Search mode yields "危房改造" and also "危房", "改造" inside it: one concept.
        tops = [t for t in tokens if not any(o is not t and o.start <= t.start and t.end <= o.end
                                             and (o.end - o.start) > (t.end - t.start) for o in tokens)]
        concepts = []
        for top in tops:
            concept = Concept(top.word, top.start, top.end)
            for token in tokens:
                if top.start <= token.start and token.end <= top.end:
                    weight = SINGLE_CHAR_QUERY_WEIGHT if len(token.word) == 1 else OWN_WEIGHT
                    concept.add(token.word, weight, head=token is top)
            concepts.append(concept)
        return concepts

    def _apply_homophones(self, text: str, concepts: list[Concept]) -> list[Concept]:
        for fix in self.homophones.corrections(text, self._is_known, self.segmenter.boundaries(text)):
            concepts = [c for c in concepts if not (fix.start <= c.start and c.end <= fix.end)]
            concept = Concept(fix.heard, fix.start, fix.end)
            concept.add(fix.meant, OWN_WEIGHT, head=True)
            for term in self._terms_of(fix.meant):
                concept.add(term, OWN_WEIGHT)
            concepts.append(concept)
        return sorted(concepts, key=lambda c: c.start)

    def _apply_synonyms(self, text: str, concepts: list[Concept]) -> list[Concept]:
        for hit in self.synonyms.find(text, self.segmenter.boundaries(text)):
            inside = [c for c in concepts if c.start < hit.end and hit.start < c.end]
            if inside:
                merged = Concept(text[min(c.start for c in inside):max(c.end for c in inside)],
                                 min(c.start for c in inside), max(c.end for c in inside))
                for c in inside:
                    for term, weight in c.terms.items():
                        merged.add(term, weight, head=term in c.heads)
                concepts = [c for c in concepts if c not in inside]
            else:
                merged = Concept(hit.phrase, hit.start, hit.end)
            # When the household already used a handbook word (低保), the rule's words
            # only back it up; when it did not (娃儿), they carry the concept.
            own_known = any(t in self.index.vocab for t in merged.heads)
            weight = SYNONYM_WEIGHT * (OWN_KNOWN_SYNONYM_SHARE if own_known else 1.0)
            for expansion in hit.expansions:
                merged.add(expansion, weight, head=True)
                for term in self._terms_of(expansion):
                    merged.add(term, weight * PIECE_SHARE)
            concepts.append(merged)
        return sorted(concepts, key=lambda c: c.start)

    def _salience(self, concept: Concept) -> float:
        if sum(1 for ch in concept.surface if is_han(ch) or ch.isalnum()) < 2:
            return SINGLE_CHAR
        tag = self.segmenter.tag(concept.surface)
        if tag is None or tag in NOUN_TAGS:
            return 1.0  # phrases merged by a synonym rule, and names of things
        if tag in FUNCTION_TAGS:
            return FUNCTION_WORD
        return VERB

    def _weigh(self, concept: Concept) -> None:
        known = [self.index.term_idf(t) for t in concept.heads if t in self.index.vocab]
        concept.known = bool(known)
        concept.aspect = concept.aspect or concept.surface in ASPECT_WORDS or all(t in ASPECT_WORDS for t in concept.terms)
        salience = concept.salience = self._salience(concept)
        if known:
            concept.weight = max(known) * salience
            return
        # A word the handbook never uses and no synonym explains. Rare words name
        # things (驾照 31, 彩礼 45 in jieba's counts): most likely the topic the
        # handbook lacks. Everyday words (知道, 突然) are mostly phrasing.
        if salience <= SINGLE_CHAR:
            factor = UNKNOWN_SINGLE
        else:
            frequency = self.segmenter.frequency(concept.surface)
            factor = UNKNOWN_RARE if frequency < RARE_BELOW else UNKNOWN_COMMON if frequency < COMMON_BELOW else UNKNOWN_EVERYDAY
            if salience == FUNCTION_WORD:
                factor *= 0.5
        concept.weight = factor * self.index.max_idf()


def _dictionary_words(segmenter: Segmenter) -> list[str]:
    lines = segmenter.dict_path.read_text(encoding="utf-8").splitlines()
    return [normalize_text(line.split(" ")[0]) for line in lines if line.strip()]
