"""Reading a household's question into "concepts": the things it is about.

A concept is one idea in the question ("房子漏雨") with the index terms that
can stand for it: the words as segmented, a homophone fix (底保 -> 低保) and
what the synonym table says the handbook calls it (危房改造). Ranking sums the
terms; the confidence check asks how much of the question's concepts the best
article covers, which is what lets the bot say "I don't know" honestly when a
question is about something the handbook never mentions (驾照, 彩礼).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from knowledge.nlp.cues import ASPECT_WORDS, CUE_TERMS, asked_facts, asks_papers, only_asks, question_cues
from knowledge.nlp.homophones import Correction, HomophoneMap
from knowledge.nlp.synonyms import SynonymHit, SynonymTable
from knowledge.nlp.tokenizer import Segmenter, is_han, normalize_text
from knowledge.search.index import PassageIndex
from knowledge.search.senses import HandbookText, bounded

OWN_WEIGHT = 1.0  # the household's own words (and their homophone fixes)
SYNONYM_WEIGHT = 0.6  # what the synonym table adds
OWN_KNOWN_SYNONYM_SHARE = 0.75  # synonyms of a word the handbook already uses only back it up
PIECE_SHARE = 0.5  # pieces of a synonym's words (最低 in 最低生活保障) count half
CONTEXT_WEIGHT = 0.5  # the previous topic's words, for follow-ups
ASPECT_TERM_SHARE = 0.4  # a way of asking ("补多少") in the BM25 score, relative to its words' weight
CUE_WEIGHT = 0.7  # words that the kind of question suggests (申请/程序 for "咋个办")
# How much an unknown word (not in the handbook, no synonym) weighs against
# confidence, relative to the rarest handbook word, by how common the word is
# in general Chinese (jieba's dictionary counts).
UNKNOWN_RARE, RARE_BELOW = 0.9, 3000
UNKNOWN_COMMON, COMMON_BELOW = 0.45, 15000
UNKNOWN_EVERYDAY = 0.2
UNKNOWN_SINGLE = 0.1
# A rare noun the handbook never uses (房产证, 商业保险) is most likely the very thing asked about:
# it weighs this much more than other rare words, so a section sharing the rest of the question
# ("易地搬迁的房子能办房产证不") does not pass for an answer.
RARE_NOUN_FACTOR = 1.3
# Salience of a word by its kind, for both known and unknown words: single
# characters and function words (每个, 一次, 已经) say little about the topic.
SINGLE_CHAR = 0.3
FUNCTION_WORD = 0.3
VERB = 0.7
SINGLE_CHAR_QUERY_WEIGHT = 0.5  # in ranking too, a lone character is weak evidence
# The asked action: what "能不能…不", "可以…吗", "咋个…" asks to do ("能不能换医生", "高龄津贴要退不",
# "残疾证咋个换"). A verb there that the handbook never uses is the very thing asked about, and
# the handbook says nothing of it however well it covers the rest: it weighs this much of the
# rarest word's weight.
ASKED_ACTION = 1.5
# A bare 能 or 要 opens only as a word of its own: not inside 可能, 功能, 本能 or 需要, 只要, 主要, 重要,
# 必要, 要是, 要求, 要点, 要紧.
_ACTION_OPENS = re.compile(r"能不能|能否|可不可以|可以|(?<![可功本智技性])能(?![力源])|会不会|要不要|该不该|咋个|咋样|"
                           r"啷个|哪门|怎么|怎样|如何|咋|(?<![需只主重必])要(?![是求点紧])")
_ACTION_CLOSES = re.compile(r"(不|吗|嘛|没|没有|不了|呢|啊|行不行|可以不|得不)?[？?。！!~～\s]*$")
_CUE_WORDS = frozenset(w for words in CUE_TERMS.values() for w in words)  # 提供 for "要带啥"
SLIP_RARITY = 20  # a real word is read as a handbook word only if this many times rarer (query._plausible_slip)
# Ways of doing a thing that are the point of a "能不能…" question ("能不能在网上还款", "能不能让儿子代领"):
# a handbook that names the office but no online service or proxy does not answer it.
MANNER_WORDS = ("网上", "手机", "线上", "微信", "小程序", "代领", "代办", "代交", "代签", "托人")
PAPER_SUFFIXES = frozenset("证 卡".split())  # 老年证, 宅基地证, 慢性病卡: a paper or card of its own
DIRECTIONS = frozenset("来 去 上 下 进 出 回 过 起 到 给".split())
MODAL_PREFIXES = frozenset("才 再 可 还 又 都 就 也 不".split())
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
    expansions: set[str] = field(default_factory=set)  # heads a synonym rule added
    from_context: bool = False
    compound: bool = False  # a word and 证/卡 merged (老年证): rules for the word alone do not name it
    weight: float = 0.0  # importance for confidence, set by analyse()
    focus: float = 0.0  # importance for picking sentences: its rarest word's weight
    unknown_weight: float = 0.0  # its weight were the handbook not to use it (in the question's sense)
    salience: float = 1.0  # 1 for names of things, less for verbs, single characters, function words
    known: bool = False
    aspect: bool = False
    noun: bool = False  # jieba calls it a noun (狗, 牛 as well as 驾照)
    asked_action: bool = False  # the verb a "能不能…" question asks about (see _weigh_asked_action)

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
    heard: str = ""  # the question as meant, voice slips corrected ("倾协救助" → 倾斜救助)

    @property
    def asks_papers(self) -> bool:
        """Does the question ask which papers to bring ("要带啥", "要啥材料")?"""
        return asks_papers(self.text)

    @property
    def topic_concepts(self) -> list[Concept]:
        return [c for c in self.concepts if not c.aspect and not c.from_context]

    @property
    def own_concepts(self) -> list[Concept]:
        """What the question itself is about: its topic, or all its own words when it names none
        ("找哪个申请"); never the words a previous question lent it."""
        return self.topic_concepts or [c for c in self.concepts if not c.from_context]

    @property
    def unknown_topic(self) -> bool:
        """Does the question name something the handbook never mentions (驾照, or the 狗 of "狗咬了人")?"""
        return any(not c.known and (c.salience >= VERB or c.noun) for c in self.topic_concepts)

    @property
    def has_topic(self) -> bool:
        """Does the question name something of its own (not just 带/找/材料)?"""
        return any(c.known and c.salience >= VERB for c in self.topic_concepts)

    def term_weights(self, index: PassageIndex) -> dict[int, float]:
        weights: dict[int, float] = {}
        for concept in self.concepts:
            # "补多少", "要多久" say what kind of fact is wanted, not which article has it.
            share = ASPECT_TERM_SHARE if concept.aspect and concept.start >= 0 else 1.0
            for term, weight in concept.terms.items():
                tid = index.term_id(term)
                if tid is not None and weight * share > weights.get(tid, 0.0):
                    weights[tid] = weight * share
        return weights

    def concept_term_weights(self, index: PassageIndex) -> list[tuple[Concept, dict[int, float]]]:
        """``term_weights`` grouped by concept: a term several concepts share belongs to the one
        that weighs it most, so it still counts once and the sum of the groups is that score."""
        owner: dict[int, tuple[float, int]] = {}
        for number, concept in enumerate(self.concepts):
            share = ASPECT_TERM_SHARE if concept.aspect and concept.start >= 0 else 1.0
            for term, weight in concept.terms.items():
                tid = index.term_id(term)
                if tid is not None and weight * share > owner.get(tid, (0.0, -1))[0]:
                    owner[tid] = (weight * share, number)
        groups: dict[int, dict[int, float]] = {}
        for tid, (weight, number) in owner.items():
            groups.setdefault(number, {})[tid] = weight
        return [(self.concepts[number], weights) for number, weights in sorted(groups.items())]


class QueryAnalyzer:
    def __init__(self, segmenter: Segmenter, synonyms: SynonymTable, index: PassageIndex,
                 text: HandbookText | None = None) -> None:
        self.segmenter = segmenter
        self.synonyms = synonyms
        self.index = index
        self.text = text
        # The households' own phrases are heard wrong too ("公意岗" for 公益岗): the rules' phrases
        # of three characters or more are words a slip can be corrected to (shorter ones sound like
        # everyday words: 的钱 is not 得钱), and the corrected question is read with the rules.
        vocabulary = set(index.vocab) | set(_dictionary_words(segmenter)) | {p for p in synonyms.rules if len(p) >= 3}
        self.homophones = HomophoneMap(vocabulary)
        # Per snapshot: the same words weigh the same in every question.
        self._salience_memo: dict[tuple[str, bool, frozenset[str]], float] = {}
        self._idf_memo: dict[frozenset[int], float] = {}

    def _is_known(self, run: str) -> bool:
        # A way of asking ("咋个办", "要好久") is heard right: it is never a slip for a rule's
        # phrase that sounds like it (咋个办 is not 咋个帮).
        return (run in self.index.vocab or self.segmenter.is_dictionary_word(run) or run in self.synonyms.rules
                or only_asks(run, self._is_filler))

    def _terms_of(self, phrase: str) -> list[str]:
        return self.segmenter.words(phrase) or [normalize_text(phrase)]

    def analyse(self, question: str, context: str | None = None) -> Query:
        text = normalize_text(question).strip()
        concepts = self._word_concepts(text)
        boundaries = self.segmenter.boundaries(text)
        concepts, heard_right = self._apply_homophones(text, concepts, boundaries)
        concepts = self._apply_synonyms(heard_right, concepts, boundaries)
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
        self._weigh_asked_action(text, concepts)
        return Query(text, concepts, cues, heard_right)

    def _weigh_asked_action(self, text: str, concepts: list[Concept]) -> None:
        """Raise the weight of a verb the handbook never uses when it is what the question asks to do.

        The action is what stands between the last modal or "how" word and the closing
        particle: "签了家庭医生能不能|换医生|不" → 换; "残疾证过期了咋个|换" → 换. Only verbs
        count (the nouns there already weigh as things the handbook lacks), not light verbs
        (拿来, 进去), not when the span asks for a fact ("要干好久才有"), only those the
        handbook never uses in any form: a one-character verb counts when the handbook
        never writes that character at all (修 is in 修缮, so "房子能修不" stays answerable).
        A manner in the span ("能不能在网上还款", "能不能让儿子代领": MANNER_WORDS) is the point
        of the question whatever else it asks, and must be stated by the article that answers.
        """
        close = _ACTION_CLOSES.search(text)
        end = close.start() if close else len(text)
        opens = [m for m in _ACTION_OPENS.finditer(text, 0, end)]
        if not opens:
            return
        start = opens[-1].end()
        inside = [c for c in concepts if c.start >= start and c.end <= end and not c.from_context]
        floor = ASKED_ACTION * self.index.max_idf()
        for concept in inside:
            if concept.known and any(w in t for w in MANNER_WORDS for t in (concept.surface, *concept.heads)):
                # The manner is the point ("能不能网上办理": 办理 is a way of asking, 网上 is not):
                # an article without it says nothing of it, however everyday the word (网上) —
                # it weighs like an asked verb the handbook never uses.
                concept.asked_action = True
                concept.weight = max(concept.weight, floor)
        if any(c.aspect for c in inside) or asked_facts(text[start:end]):
            return  # "要干好久才有", "要种够几亩": it asks for a fact, not whether one may do something
        for concept in inside:
            if concept.asked_action:
                continue  # a manner, weighed above
            # Light verbs (拿来, 进去, 再补) say how, not what. jieba's tags for lone characters are
            # no guide (it calls 换 a noun): one the handbook never writes counts whatever its tag.
            if len(concept.surface) > 1 and not self._is_verb(concept):
                continue
            if concept.known:
                # A handbook word: an article that lacks it does not say whether one may do it
                # ("低保户能不能出去打工" is not answered by a list of who gets 危房改造).
                if len(concept.surface) > 1 and concept.salience >= VERB:
                    concept.asked_action = True
                continue
            if len(concept.surface) == 1:
                if self.text is None or concept.surface in self.text.characters:
                    continue
            elif concept.salience < VERB:
                continue
            concept.unknown_weight = max(concept.unknown_weight, floor)
            concept.weight = concept.focus = concept.unknown_weight

    def _is_verb(self, concept: Concept) -> bool:
        tag = self.segmenter.tag(concept.surface)
        if tag is not None:
            return tag.startswith("v")
        return any((self.segmenter.tag(w) or "").startswith("v") for w in self.segmenter.words(concept.surface))

    def rewrites(self, question: str) -> tuple[list[Correction], list[SynonymHit]]:
        """For explaining only: the homophone fixes and synonym rules ``analyse`` applies to the question."""
        text = normalize_text(question).strip()
        boundaries = self.segmenter.boundaries(text)
        fixes = self.homophones.corrections(text, self._is_known, boundaries)
        fixes = sorted(fixes + self._real_word_slips(self._word_concepts(text), fixes), key=lambda f: f.start)
        return fixes, self.synonyms.find(_corrected(text, fixes), boundaries)

    def _word_concepts(self, text: str) -> list[Concept]:
        tokens = self.segmenter.tokens(text)
        # Search mode yields "危房改造" and also "危房", "改造" inside it: one concept.
        tops = [t for t in tokens if not any(o is not t and o.start <= t.start and t.end <= o.end
                                             and (o.end - o.start) > (t.end - t.start) for o in tokens)]
        concepts: list[Concept] = []
        for top in tops:
            previous = concepts[-1] if concepts else None
            if (top.word in PAPER_SUFFIXES and previous is not None and previous.end == top.start
                    and len(previous.surface) >= 2 and not previous.from_context):
                # jieba cuts 宅基地证, 老年证, 慢性病卡 into a word and 证/卡: the paper or card
                # is another thing than the word, and the word is only a piece of it.
                compound = Concept(previous.surface + top.word, previous.start, top.end, compound=True)
                compound.add(compound.surface, OWN_WEIGHT, head=True)
                for term, weight in previous.terms.items():
                    compound.add(term, weight)
                compound.add(top.word, SINGLE_CHAR_QUERY_WEIGHT)
                concepts[-1] = compound
                continue
            concept = Concept(top.word, top.start, top.end)
            for token in tokens:
                if top.start <= token.start and token.end <= top.end:
                    weight = SINGLE_CHAR_QUERY_WEIGHT if len(token.word) == 1 else OWN_WEIGHT
                    concept.add(token.word, weight, head=token is top)
            concepts.append(concept)
        return concepts

    def _apply_homophones(self, text: str, concepts: list[Concept],
                          boundaries: set[int]) -> tuple[list[Concept], str]:
        """The concepts with each slip replaced by what was meant, and the question as meant
        (a fix sounds the same, so it has the same length and every offset stays)."""
        fixes = self.homophones.corrections(text, self._is_known, boundaries)
        fixes = sorted(fixes + self._real_word_slips(concepts, fixes), key=lambda f: f.start)
        for fix in fixes:
            concepts = [c for c in concepts if not (fix.start <= c.start and c.end <= fix.end)]
            concept = Concept(fix.heard, fix.start, fix.end)
            concept.add(fix.meant, OWN_WEIGHT, head=True)
            for term in self._terms_of(fix.meant):
                concept.add(term, OWN_WEIGHT)
            concepts.append(concept)
        return sorted(concepts, key=lambda c: c.start), _corrected(text, fixes)

    def _real_word_slips(self, concepts: list[Concept], fixes: list[Correction]) -> list[Correction]:
        """Real words the handbook never uses that sound exactly like one it does (检测户 -> 监测户)."""
        found = []
        for c in concepts:
            word = c.surface
            if (len(word) < 2 or word in self.index.vocab or word in self.synonyms.rules
                    or not self.segmenter.is_dictionary_word(word)
                    or any(f.start < c.end and c.start < f.end for f in fixes)):
                continue
            meant = self.homophones.handbook_word(word, self.index.vocab.__contains__)
            if meant is not None and self._plausible_slip(word, meant):
                found.append(Correction(c.start, c.end, word, meant))
        return found

    def _plausible_slip(self, heard: str, meant: str) -> bool:
        """Only a word a household would hardly have meant is read as another: everyday words say what
        they say (失业 is not 事业, 以外 not 意外, 一半 not 一般, 年纪 not 年级, 两位 not 两委), however
        alike they sound. Function words (conjunctions, adverbs, numerals, places, times) never are;
        otherwise the heard word must be at least SLIP_RARITY times rarer in jieba's counts (救主, 3,
        for 救助, 527)."""
        if self.segmenter.tag(heard) in FUNCTION_TAGS:
            return False
        return self.segmenter.frequency(heard) * SLIP_RARITY <= self.segmenter.frequency(meant)

    def _apply_synonyms(self, text: str, concepts: list[Concept], boundaries: set[int]) -> list[Concept]:
        for hit in self.synonyms.find(text, boundaries):
            inside = [c for c in concepts if c.start < hit.end and hit.start < c.end]
            if inside:
                # The concept spans the words and the rule's phrase: "搬到" (搬 + a stopword), not "搬".
                start = min([hit.start] + [c.start for c in inside])
                end = max([hit.end] + [c.end for c in inside])
                merged = Concept(text[start:end], start, end, compound=any(c.compound for c in inside))
                for c in inside:
                    for term, weight in c.terms.items():
                        merged.add(term, weight, head=term in c.heads)
                    merged.expansions |= c.expansions
                concepts = [c for c in concepts if c not in inside]
            else:
                merged = Concept(hit.phrase, hit.start, hit.end)
            if any(c.compound and not (hit.start <= c.start and c.end <= hit.end) for c in inside):
                whole = False  # 慢性病 in 慢性病卡: the card is not the illness
            else:
                whole = hit.whole or self._rest_is_handbook(text, merged, hit)
            # When the household already used a handbook word (低保), the rule's words
            # only back it up; when it did not (娃儿), they carry the concept.
            own_known = any(t in self.index.vocab for t in merged.heads)
            weight = SYNONYM_WEIGHT * (OWN_KNOWN_SYNONYM_SHARE if own_known else 1.0)
            for expansion in hit.expansions:
                merged.add(expansion, weight if whole else weight * PIECE_SHARE, head=whole)
                if whole:
                    merged.expansions.add(expansion)
                for term in self._terms_of(expansion):
                    merged.add(term, weight * PIECE_SHARE)
            concepts.append(merged)
        return sorted(concepts, key=lambda c: c.start)

    def _rest_is_handbook(self, text: str, concept: Concept, hit: SynonymHit) -> bool:
        """A phrase inside a longer word counts for the word when the rest of it is handbook
        words too (搬迁 in 易地搬迁, 车间 in 扶贫车间) or a verb taking it (盖新房); otherwise
        the word is something else (子女 in 独生子女, 养猪 in 养猪场) and the rule's words are
        only pieces of it."""
        before, after = text[concept.start:hit.start], text[hit.end:concept.end]
        if len(before) == 1 and not after and (self.segmenter.tag(before) or "").startswith("v"):
            return True  # a verb and its object: 盖 新房
        rest = before + " " + after
        words = self.segmenter.words(rest)
        covered = sum(len(w) for w in words if len(w) >= 2 and w in self.index.vocab)
        return covered >= sum(1 for ch in rest if not ch.isspace())

    def _only_asks(self, concept: Concept) -> bool:
        """"要多久", "补多少": a way of asking, unless the synonym table says it names something
        ("分几次" => 分期 拨付 is about instalments)."""
        return only_asks(concept.surface, self._is_filler) and all(
            self._is_filler(h) or h in _CUE_WORDS or only_asks(h, self._is_filler) for h in concept.heads)

    def _is_filler(self, text: str) -> bool:
        """Stopwords, aspect words and lone verbs: what is left of "要多久", "补多少", "几号发"."""
        if text in ASPECT_WORDS or text in self.segmenter.stopwords:
            return True
        if len(text) == 1:
            return text in self.segmenter.stopwords or (self.segmenter.tag(text) or "").startswith("v")
        return all(t in ASPECT_WORDS for t in self.segmenter.words(text))

    def _salience(self, concept: Concept) -> float:
        """How much the concept names a thing (1) rather than a way of saying (see SINGLE_CHAR...);
        the same words always get the same answer, so it is remembered per snapshot."""
        key = (concept.surface, bool(concept.expansions), frozenset(concept.terms))
        found = self._salience_memo.get(key)
        if found is None:
            bounded(self._salience_memo)
            found = self._salience_memo[key] = self._salience_of(concept)
        return found

    def _salience_of(self, concept: Concept) -> float:
        if sum(1 for ch in concept.surface if is_han(ch) or ch.isalnum()) < 2:
            return SINGLE_CHAR
        tag = self.segmenter.tag(concept.surface)
        if not concept.expansions and self._made_of_function_words(concept):
            return FUNCTION_WORD  # jieba's idiom 不能自己 in "能不能自己申报"
        if tag == "t" and concept.expansions and not concept.aspect:
            # A time a rule names (周末 => 节假日 非工作时间, 晚上 => 夜间): jieba calls it a time
            # word like 以后, but it is a condition the question is about ("家庭医生周末能上门不").
            return 1.0
        if tag is None:
            # A phrase a synonym rule merged: as salient as its most salient word
            # ("房子漏雨" names a thing; "丢了", "搬到" are verbs).
            kinds = [self._word_salience(t, self.segmenter.tag(t)) for t in self.segmenter.words(concept.surface)]
            return max([k for k in kinds if k is not None], default=1.0)
        return self._word_salience(concept.surface, tag)

    def _made_of_function_words(self, concept: Concept) -> bool:
        """A word the handbook lacks that is only stopwords and modal verbs run together:
        jieba's dictionary has idioms such as 不能自己 that swallow "能不能自己申报"."""
        surface, stopwords = concept.surface, self.segmenter.stopwords
        if len(surface) < 3 or surface in self.index.vocab:
            return False
        parts = [t for t in concept.terms if t != surface] + [w for w in stopwords if len(w) >= 2 and w in surface]
        covered: set[int] = set()
        for part in parts:
            if part in stopwords or self._word_salience(part, self.segmenter.tag(part)) == FUNCTION_WORD:
                start = surface.find(part)
                while start >= 0:
                    covered.update(range(start, start + len(part)))
                    start = surface.find(part, start + 1)
        return len(covered) == len(surface)

    def _word_salience(self, word: str, tag: str | None) -> float | None:
        if tag is None:
            return None
        if tag in FUNCTION_TAGS or self._light_verb(word, tag):
            return FUNCTION_WORD
        if tag in NOUN_TAGS:
            return 1.0  # names of things
        return VERB

    @staticmethod
    def _light_verb(word: str, tag: str) -> bool:
        """A one-character verb with a direction or a modal (拿来, 发给, 用到, 进去, 再补, 才能):
        how it is said, not what it is about, unlike 离婚, 欺负, 打猎."""
        return tag.startswith("v") and len(word) == 2 and (word[1] in DIRECTIONS or word[0] in MODAL_PREFIXES)

    def _idf(self, term: str) -> float:
        """idf of an index term, or of a phrase the handbook's text has (偿还旧债); 0 if neither."""
        if term in self.index.vocab:
            return self.index.term_idf(term)
        if self.text is not None and len(term) >= 2:
            return self.text.phrase_idf(term)
        return 0.0

    def _weigh(self, concept: Concept) -> None:
        known = [self._idf(t) for t in concept.heads]
        known = [idf for idf in known if idf > 0]
        concept.known = bool(known)
        concept.aspect = (concept.aspect or concept.surface in ASPECT_WORDS or self._only_asks(concept)
                          or all(t in ASPECT_WORDS for t in concept.terms))
        salience = concept.salience = self._salience(concept)
        concept.noun = (self.segmenter.tag(concept.surface) or "").startswith("n")
        concept.unknown_weight = self._unknown_weight(concept)
        concept.focus = max(known) * salience if known else concept.unknown_weight
        concept.weight = self._concept_idf(concept, max(known)) * salience if known else concept.unknown_weight

    def _concept_idf(self, concept: Concept, rarest: float) -> float:
        """How specific the concept is in the handbook: the idf of the passages that have any of
        its words. 娃儿 stands for 子女, 学生, 幼儿, 儿童: together they are in many passages, so a
        question's 娃儿 says less than its 疫苗, even though 儿童 alone is rare."""
        # What the concept stands for: the rule's words and the whole phrase, not its own
        # pieces (一年 in 干满一年 says nothing of 稳岗).
        words = concept.expansions | {concept.surface} if concept.expansions else concept.heads
        ids = frozenset(tid for tid in (self.index.term_id(t) for t in words) if tid is not None)
        if len(ids) < 2:
            return rarest
        found = self._idf_memo.get(ids)
        if found is None:
            bounded(self._idf_memo)
            passages = np.unique(np.concatenate([self.index.postings(tid) for tid in ids]))
            n, df = self.index.num_docs, len(passages)
            found = self._idf_memo[ids] = float(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))
        return found

    def _unknown_weight(self, concept: Concept) -> float:
        """The weight of a word the handbook never uses (in this sense) and no synonym explains.

        Rare words name things (驾照 31, 彩礼 45 in jieba's counts): most likely
        the topic the handbook lacks, and so do nouns however everyday (电脑). Everyday
        words of other kinds (知道, 突然) are mostly phrasing.
        A lone character counts little, unless it is a noun (猫 in "猫丢了咋办").
        """
        if concept.salience <= SINGLE_CHAR and not concept.noun:
            factor = UNKNOWN_SINGLE
        else:
            frequency = self.segmenter.frequency(concept.surface)
            if not frequency:
                # Not a word of its own ("停了", "换个"): as everyday as its most everyday part.
                frequency = max((self.segmenter.frequency(t) for t in concept.terms if len(t) < len(concept.surface)),
                                default=0)
            factor = UNKNOWN_RARE if frequency < RARE_BELOW else UNKNOWN_COMMON if frequency < COMMON_BELOW else UNKNOWN_EVERYDAY
            # Function words run together weigh half; a lone noun (狗, 猫) is not one of them,
            # although both have the same salience.
            if concept.salience == FUNCTION_WORD and not concept.noun:
                factor *= 0.5
        if factor == UNKNOWN_RARE and concept.salience >= 1.0 and (concept.noun or concept.surface[-1] in PAPER_SUFFIXES):
            factor *= RARE_NOUN_FACTOR  # a thing, or a paper of its own (房产证)
        if concept.expansions and concept.salience >= 1.0 and factor < UNKNOWN_RARE:
            # A rule says what it is (发电板 => 光伏, 羊棚子 => 圈舍): a policy thing of its own, and
            # this handbook has none of its words; however everyday the household's word, the
            # handbook lacks the thing.
            factor = UNKNOWN_RARE
        if self.segmenter.tag(concept.surface) == "ns" and not concept.expansions:
            # A place the household names ("去长沙住院", "在深圳打工") says where, not what: the
            # handbook's words for it are 县外, 市外, 省外, and its absence says nothing of the topic.
            return UNKNOWN_EVERYDAY * self.index.max_idf()
        if concept.noun and len(concept.surface) >= 2 and concept.salience >= 1.0 and factor < UNKNOWN_RARE:
            # A name of a thing the handbook never uses, however everyday (电脑, 考试, 飞机): it is
            # what the question is about; everyday verbs and adverbs (知道, 突然) stay phrasing.
            factor = UNKNOWN_RARE
        return factor * self.index.max_idf()


def _corrected(text: str, fixes: list[Correction]) -> str:
    """``text`` with every slip replaced by the word meant (same length: offsets stay valid)."""
    for fix in fixes:
        if len(fix.meant) == fix.end - fix.start:
            text = text[:fix.start] + fix.meant + text[fix.end:]
    return text


def _dictionary_words(segmenter: Segmenter) -> list[str]:
    lines = segmenter.dict_path.read_text(encoding="utf-8").splitlines()
    return [normalize_text(line.split(" ")[0]) for line in lines if line.strip()]
