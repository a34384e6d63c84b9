"""Recognising a handbook's structure: document title, chapters and articles.

Policy compilations number their units in a handful of ways (第X章/第X条 for
regulations; 一、/（一）/1. for reports and notices; Word heading styles for
everything else). We pick the finest marker kind that occurs as the article
level and the next coarser one as chapters; finer markers inside an article
stay part of its text. Each article keeps its label as written (第十二条),
because that is what a household or cadre will quote back.

A county 实施细则 often has 第X章 chapters with 一、（一）1. inside them and no 第X条.
There the levels nest (第X章 > 一、 > （一）, and 1. lists stay in their （一）'s text as
everywhere else) and each unit is labelled with its whole path, "第三章 二、（一）":
"二、（一）" alone recurs in every chapter, and a label must name one place in its
document. A 一、 without sub-items is a unit of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from knowledge.ingest.blocks import Block, RawDocument
from knowledge.ingest.markers import DOCUMENT_NUMBER, Marker, find_marker, looks_like_document_title

TITLE_MAX = 30  # a "heading" longer than this is a sentence, not a title
# Column widths in storage/models/knowledge.py: longer values are cut here, at parse time.
NAME_MAX = 255
LABEL_MAX = 64

# Which marker kind is the article, and which may be the chapter above it.
_LEVELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # 一、 above 第X条 only when it heads them (see _choose_levels); otherwise 一、 lines are a list inside an article.
    ("article", ("chapter", "cn_item")),
    ("paren_item", ("chapter", "cn_item")),
    ("cn_item", ("chapter",)),
    ("num_item", ("chapter", "paren_item", "cn_item")),
)
_BRACKET_TITLE = re.compile(r"^[【\[]([^】\]]{1,40})[】\]]\s*(.*)$", re.S)
_FIRST_CLAUSE = re.compile(r"^(.{1,30}?)[。：:]\s*(.*)$", re.S)
# A question-and-answer booklet: "12．问：危房改造补多少？答：……" (the answer often on the next line).
_QUESTION = re.compile(r"^(?:问\s*[:：]\s*)?(.{2,80}[？?])\s*$", re.S)
_ANSWER = re.compile(r"^答\s*[:：]\s*")
QA_SHARE = 0.6  # numbered items that are mostly questions are the units of a 问答 booklet
# The levels that nest under a 第X章 when there is no 第X条, coarsest first.
NESTED_KINDS = ("cn_item", "paren_item", "num_item")
# The last marker of a nested label ("第三章 二、（一）" -> "（一）"): what precedes it is its scope.
_LAST_MARKER = re.compile(r"(?:[（(][一二三四五六七八九十百]+[）)]|[一二三四五六七八九十百]+[、．.]|\d{1,3}[.．、])$")


@dataclass
class ParsedArticle:
    chapter_label: str
    chapter_title: str
    label: str
    title: str
    text: str
    number: int | None = None
    document: str = ""  # the policy document it belongs to, in a compilation of several ("" = the file's title)


@dataclass
class ParsedDocument:
    name: str
    title: str
    articles: list[ParsedArticle]
    chapters: int
    warnings: list[str] = field(default_factory=list)


def clean_title(text: str) -> str:
    return text.strip().strip("《》").strip()


def split_heading(kind: str, rest: str) -> tuple[str, str]:
    """Split the text after a label into (title, body)."""
    rest = rest.strip()
    bracket = _BRACKET_TITLE.match(rest)
    if bracket:
        return bracket.group(1).strip(), bracket.group(2).strip()
    if is_question(rest):
        pieces = re.split(r"答\s*[:：]", rest, maxsplit=1)
        asked, answer = pieces[0], (pieces[1] if len(pieces) > 1 else "")
        question = _QUESTION.match(asked.strip())
        if question:
            return question.group(1).strip(), answer.strip()
    if len(rest) <= TITLE_MAX and not re.search(r"[。；;，,]", rest):
        return rest.rstrip("：:"), ""
    if kind != "article":
        # 一、/（一） headings are usually "short title。body" on one line.
        clause = _FIRST_CLAUSE.match(rest)
        if clause and not re.search(r"[，,；;]", clause.group(1)):
            return clause.group(1).strip(), clause.group(2).strip()
    return "", rest


def is_question(rest: str) -> bool:
    """A heading that asks ("问：低保咋个申请？"): the unit of a 问答 booklet."""
    rest = rest.strip()
    return rest.startswith(("问：", "问:")) or bool(re.match(r"^[^。；;]{2,80}?[？?]", rest))


@dataclass
class _Classified:
    block: Block
    marker: Marker | None


def _is_booklet(markers: list[Marker]) -> bool:
    """Numbered items that mostly ask a question, and no 第X条: a 问答 booklet."""
    numbered = [m for m in markers if m.kind == "num_item"]
    return (bool(numbered) and all(m.kind != "article" for m in markers)
            and sum(is_question(m.rest) for m in numbered) >= QA_SHARE * len(numbered))


def _choose_levels(items: list[_Classified]) -> tuple[str | None, str | None]:
    markers = [i.marker for i in items if i.marker is not None]
    kinds = {m.kind for m in markers}
    if _is_booklet(markers):
        # A 问答 booklet: each numbered question with its answer is a unit, under 一、 headings if any.
        return "num_item", next((k for k in ("chapter", "cn_item") if k in kinds), None)
    for article_kind, chapter_kinds in _LEVELS:
        if article_kind in kinds:
            candidates = [k for k in chapter_kinds if k in kinds]
            if article_kind == "article" and "cn_item" in candidates and not _heads_articles(markers, "cn_item"):
                candidates.remove("cn_item")
            return article_kind, next(iter(candidates), None)
    if "chapter" in kinds:
        # Only 第X章 (and maybe 第X节) headings over plain paragraphs: the section, or else the
        # chapter itself (its text becomes one unit labelled 第X章), is the unit answers cite.
        return ("section", "chapter") if "section" in kinds else (None, "chapter")
    return None, None


def _nested_levels(items: list[_Classified], article_kind: str | None, chapter_kind: str | None) -> tuple[str, ...]:
    """The levels that nest under 第X章 chapters when the document has no 第X条 (a 实施细则
    with 一、（一）1. inside its chapters); () for every other shape, which stays as it was."""
    if chapter_kind != "chapter" or article_kind not in NESTED_KINDS:
        return ()
    markers = [i.marker for i in items if i.marker is not None]
    if _is_booklet(markers):
        return ()
    kinds = {m.kind for m in markers}
    # Down to the article kind: finer markers (1. under （一）) stay in their unit's text.
    return tuple(k for k in NESTED_KINDS[:NESTED_KINDS.index(article_kind) + 1] if k in kinds)


class _Nesting:
    """Where the walk is inside a chapter: the 一、/（一）/1. headings above the current unit."""

    def __init__(self, levels: tuple[str, ...]) -> None:
        self.levels = levels
        self.prefix = ""  # 第三章 (and its 第X节, if any)
        self.path: list[tuple[int, str, str]] = []  # (depth, label, title) from the coarsest level down

    def reset(self, prefix: str) -> None:
        self.prefix, self.path = prefix, []

    def enter(self, kind: str, label: str, title: str) -> tuple[str, str, bool]:
        """The unit's full label, the titles of the headings above it, and whether it sits
        under the previous unit (so that one, if it had no text, was only their heading)."""
        depth = self.levels.index(kind)
        nested = bool(self.path) and self.path[-1][0] < depth
        self.path = [p for p in self.path if p[0] < depth] + [(depth, label, title)]
        full = "".join(p[1] for p in self.path)
        context = " ".join(p[2] for p in self.path[:-1] if p[2])
        return (f"{self.prefix} {full}" if self.prefix else full), context, nested


def _heads_articles(markers: list[Marker], kind: str) -> bool:
    """True when ``kind`` lines come before the first 第X条 (so they are headings, not a list)."""
    for marker in markers:
        if marker.kind == "article":
            return False
        if marker.kind == kind:
            return True
    return False


class _Builder:
    """Accumulates articles while walking the blocks in order."""

    def __init__(self) -> None:
        self.articles: list[ParsedArticle] = []
        self.warnings: list[str] = []
        self.chapter_label = ""
        self.chapter_title = ""
        self.chapters = 0
        self.section = ""
        self.current: ParsedArticle | None = None
        self.lines: list[str] = []
        self.chapter_lines: list[str] = []
        self.preamble: list[str] = []

    @property
    def full_chapter_title(self) -> str:
        return f"{self.chapter_title} {self.section}".strip()

    def close_article(self) -> None:
        if self.current is None:
            return
        article, self.current = self.current, None
        if not "".join(self.lines).strip() and article.label.endswith(("、", "）", ")")):
            # An outline heading (一、目的, （三）其他) with nothing under it: its title alone would be
            # cited as an answer ("目的。"). A 第X条 or a booklet's question stays (its title is its text).
            self.lines = []
            self.warnings.append(f"{article.label}{article.title}只有标题，没有内容，已跳过")
            return
        article.text = "\n".join(self.lines).strip() or article.title
        if article.title.endswith(("？", "?")):
            article.text = _ANSWER.sub("", article.text)  # a booklet's "答：" says nothing
        self.lines = []
        if not article.text:
            self.warnings.append(f"{article.label or '一个条目'}没有内容，已跳过")
            return
        self.articles.append(article)

    def close_chapter(self) -> None:
        self.close_article()
        self.flush_chapter_text()

    def start_chapter(self, label: str, title: str) -> None:
        self.close_chapter()
        self.chapter_label, self.chapter_title, self.section = label, title, ""
        self.chapters += 1

    def start_article(self, label: str, title: str, body: str, number: int | None, context: str = "") -> None:
        """``context``: the titles of the 一、 headings above a nested unit, searched with its chapter's."""
        self.close_article()
        self.flush_chapter_text()
        chapter_title = f"{self.full_chapter_title} {context}".strip()
        self.current = ParsedArticle(self.chapter_label, chapter_title, label, title, "", number)
        self.lines = [body] if body else []

    def drop_bare_heading(self) -> None:
        """The current unit had no text before its sub-items: it was only their heading (its
        title is already in theirs), not a unit a household's answer could cite."""
        if self.current is not None and not self.lines:
            self.current = None

    def flush_chapter_text(self) -> None:
        """Text directly under a chapter heading, outside any article, becomes a unit of its own."""
        if not self.chapter_lines:
            return
        lines, self.chapter_lines = self.chapter_lines, []
        self.articles.append(
            ParsedArticle(self.chapter_label, self.full_chapter_title, self.chapter_label,
                          self.chapter_title, "\n".join(lines))
        )

    def add_text(self, text: str) -> None:
        if self.current is not None:
            self.lines.append(text)
        elif self.chapter_label or self.chapter_title:
            self.chapter_lines.append(text)
        else:
            self.preamble.append(text)


def _numbering_warnings(articles: list[ParsedArticle], scope_of: Callable[[ParsedArticle], str]) -> list[str]:
    """Repeated or skipped numbers within a scope (the file, a chapter, or a nested unit's parent)."""
    warnings: list[str] = []
    previous: ParsedArticle | None = None
    seen: set[tuple[str, int]] = set()
    for article in articles:
        if article.number is None or article.label == article.chapter_label:
            continue
        scope = scope_of(article)
        # A nested label already names its scope (第三章 二、（一）).
        shown = "" if article.label.startswith(scope) else scope
        if (scope, article.number) in seen:
            warnings.append(f"条文编号重复：{shown}{article.label}")
        seen.add((scope, article.number))
        if previous is not None and previous.number is not None and scope_of(previous) == scope:
            if article.number > previous.number + 1:
                warnings.append(f"条文编号不连续：{shown}{previous.label}之后是{article.label}")
        previous = article
    return warnings


def _nested_scope(article: ParsedArticle) -> str:
    """A nested unit's parent: "第三章 二、（一）" -> "第三章 二、" (numbers restart under each)."""
    last = _LAST_MARKER.search(article.label)
    return article.label[:last.start()] if last else article.chapter_label


def _parse_one(raw: RawDocument) -> ParsedDocument:
    items = [
        _Classified(b, None if b.table_row else find_marker(b.text))
        for b in raw.blocks
    ]
    article_kind, chapter_kind = _choose_levels(items)
    nesting = _Nesting(_nested_levels(items, article_kind, chapter_kind))
    heading_levels = sorted({i.block.heading for i in items if i.block.heading and i.marker is None})
    builder = _Builder()
    title = ""

    # Without any text markers, Word/markdown heading levels give the structure.
    style_article = style_chapter = None
    if article_kind is None and heading_levels:
        if len(heading_levels) >= 2 and chapter_kind is None:
            style_chapter, style_article = heading_levels[0], heading_levels[1]
        else:
            style_article = heading_levels[0]

    for index, item in enumerate(items):
        block, marker = item.block, item.marker
        text = block.text.strip()
        if block.heading == 0 and not title and not builder.articles and builder.current is None:
            title = clean_title(text)
            continue
        if marker is not None and marker.kind == chapter_kind:
            chapter_title, chapter_body = split_heading(marker.kind, marker.rest)
            builder.start_chapter(marker.label, chapter_title)
            nesting.reset(marker.label)
            if chapter_body:
                builder.add_text(chapter_body)
            continue
        if marker is not None and marker.kind == "section" and article_kind == "article":
            builder.close_article()
            section_title, _ = split_heading("section", marker.rest)
            builder.section = f"{marker.label} {section_title}".strip()
            continue
        if marker is not None and marker.kind == "section" and nesting.levels:
            builder.close_article()
            section_title, _ = split_heading("section", marker.rest)
            builder.section = f"{marker.label} {section_title}".strip()
            nesting.reset(f"{builder.chapter_label} {marker.label}".strip())
            continue
        if marker is not None and marker.kind in nesting.levels:
            unit_title, body = split_heading(marker.kind, marker.rest)
            label, context, nested = nesting.enter(marker.kind, marker.label, unit_title)
            if nested:
                builder.drop_bare_heading()
            builder.start_article(label, unit_title, body, marker.number, context)
            continue
        if marker is not None and marker.kind == article_kind:
            article_title, body = split_heading(marker.kind, marker.rest)
            builder.start_article(marker.label, article_title, body, marker.number)
            continue
        if block.heading is not None and marker is None:
            if style_chapter is not None and block.heading == style_chapter:
                builder.start_chapter("", clean_title(text))
                continue
            if style_article is not None and block.heading == style_article:
                builder.start_article("", clean_title(text), "", None)
                continue
            if article_kind is not None and chapter_kind is None and block.heading >= 1:
                builder.start_chapter("", clean_title(text))
                continue
        if not title and index == 0 and _looks_like_title(text, marker):
            title = clean_title(text)
            continue
        builder.add_text(text)
    builder.close_chapter()

    warnings = list(raw.warnings)
    articles = builder.articles
    if article_kind is None and chapter_kind is None and style_article is None and style_chapter is None:
        # No structure at all: every paragraph is its own unit. No label is invented: the
        # citation names the document, and an article label must be one the handbook has.
        paragraphs = [line for a in articles for line in a.text.splitlines()] + builder.preamble
        articles = [ParsedArticle("", "", "", "", text) for text in paragraphs if text.strip()]
        builder.preamble = []
        warnings.append("没有识别出“第X章/第X条”或“一、（一）”等结构，已按段落导入")
    elif builder.preamble:
        preamble = "\n".join(builder.preamble).strip()
        if len(preamble) >= 20:
            articles.insert(0, ParsedArticle("", "", "", "说明", preamble))

    warnings.extend(builder.warnings)
    if nesting.levels:
        warnings.extend(_numbering_warnings(articles, _nested_scope))
    elif article_kind is not None:
        per_chapter = article_kind != "article" or _restarts_per_chapter(articles)
        warnings.extend(_numbering_warnings(articles, (lambda a: a.chapter_label) if per_chapter else (lambda a: "")))

    if not title:
        title = clean_title(raw.title_hint or "") or re.sub(r"\.[A-Za-z]+$", "", raw.name)
    for article in articles:
        article.chapter_label = article.chapter_label[:LABEL_MAX]
        article.label = article.label[:LABEL_MAX]
        article.chapter_title = article.chapter_title[:NAME_MAX]
        article.title = article.title[:NAME_MAX]
    return ParsedDocument(raw.name[:NAME_MAX], title[:NAME_MAX], articles, builder.chapters, warnings)


def _restarts_per_chapter(articles: list[ParsedArticle]) -> bool:
    """True when some later chapter numbers its articles from 1 again (第一条 in every chapter)."""
    first_chapter = articles[0].chapter_label if articles else ""
    return any(
        a.number == 1 and a.chapter_label and a.chapter_label != first_chapter for a in articles
    )


def _looks_like_title(text: str, marker: Marker | None) -> bool:
    return marker is None and len(text) <= 40 and not re.search(r"[。；;！？]$|[，,]", text)


def _document_starts(blocks: list[Block]) -> list[int]:
    """Where each policy document of a compilation begins: its title line (two at least)."""
    starts = [i for i, b in enumerate(blocks)
              if not b.table_row and b.heading != 0 and looks_like_document_title(b.text)]
    # A title must head some text of its own (not a line in a list of titles, such as a 目录).
    starts = [i for n, i in enumerate(starts) if (starts[n + 1] if n + 1 < len(starts) else len(blocks)) - i >= 2]
    return starts if len(starts) >= 2 else []


def parse_structure(raw: RawDocument) -> ParsedDocument:
    """The file's structure; a compilation of several documents (通知, 实施方案, 办法 one after
    another, each numbered 一、（一） afresh) is parsed document by document, and every article
    keeps the title of the document it belongs to, which is what an answer cites."""
    blocks = [b for b in raw.blocks if not DOCUMENT_NUMBER.match(b.text.strip())]
    starts = _document_starts(blocks)
    if not starts:
        return _parse_one(RawDocument(raw.name, raw.content, blocks, raw.title_hint, list(raw.warnings)))
    head = blocks[:starts[0]]
    title = next((clean_title(b.text) for b in head if b.heading == 0), "") or clean_title(raw.title_hint or "")
    if not title and head and _looks_like_title(head[0].text, find_marker(head[0].text)):
        title = clean_title(head[0].text)
    articles: list[ParsedArticle] = []
    warnings = list(raw.warnings)
    chapters = 0
    preamble = "\n".join(b.text.strip() for b in head if b.heading != 0 and clean_title(b.text) != title).strip()
    if len(preamble) >= 20:
        articles.append(ParsedArticle("", "", "", "说明", preamble))
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(blocks)
        name = clean_title(blocks[start].text)[:NAME_MAX]
        part = _parse_one(RawDocument(raw.name, b"", [Block(name, heading=0)] + blocks[start + 1:end]))
        chapters += part.chapters
        for article in part.articles:
            article.document = name
            articles.append(article)
        warnings.extend(f"《{name}》{w}" for w in part.warnings)
    if not title:
        title = re.sub(r"\.[A-Za-z]+$", "", raw.name)
    return ParsedDocument(raw.name[:NAME_MAX], title[:NAME_MAX], articles, chapters, warnings)
