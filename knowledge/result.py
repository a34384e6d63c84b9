"""The answer objects handed to the WeChat handler and the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Source:
    document: str  # 青山县脱贫攻坚政策文件汇编; in a compilation the section's own document (…实施方案); 常见问题 for an FAQ
    chapter: str  # 第二章, as written (the chapter title when the handbook has no labels)
    article: str  # 第六条, as written; 三、（二） for a section of a compilation's document; 12． for a booklet's question
    title: str  # 危房改造补助标准
    score: float  # ranking score; higher is better, comparable within one answer only


@dataclass
class Answer:
    text: str  # ready to send, under 2048 UTF-8 bytes (except kind "detail": the whole article, paged by the caller)
    sources: list[Source] = field(default_factory=list)  # best first; empty when nothing was cited
    handover: bool = False  # True: a person should take over (record the question, tell a cadre)
    topic: str | None = None  # remember as the follower's last topic; pass back as last_topic
    confidence: float = 0.0  # share of the question the cited article covers (0..1)
    kind: str = "article"  # article | faq | detail | followup | unanswerable | clarify | smalltalk | handover

    def to_json(self, question: str) -> dict[str, object]:
        return {
            "question": question,
            "answer": self.text,
            "sources": [asdict(s) for s in self.sources],
            "handover": self.handover,
        }
