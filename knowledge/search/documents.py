"""How a passage becomes the token list the index is built from.

Titles count more than body text (a question about "高龄津贴" belongs to the
article titled so, not to every article mentioning old people), done the way
BM25 understands: by repeating the title's tokens.
"""

from __future__ import annotations

from knowledge.nlp.tokenizer import Segmenter

TITLE_REPEAT = 3
CHAPTER_REPEAT = 1
DOCUMENT_REPEAT = 1


def passage_tokens(segmenter: Segmenter, text: str, title: str, chapter_title: str,
                   document_title: str = "") -> list[str]:
    """A compilation's sections are short ("（一）申请。由户主……"): what they are about is often
    only in the document's title (《…低保和临时救助工作规程》), so that counts once too. In a
    single-document handbook its title is in every passage and weighs nothing."""
    tokens = segmenter.words(text)
    if title:
        tokens += segmenter.words(title) * TITLE_REPEAT
    if chapter_title:
        tokens += segmenter.words(chapter_title) * CHAPTER_REPEAT
    if document_title:
        tokens += segmenter.words(document_title) * DOCUMENT_REPEAT
    return tokens
