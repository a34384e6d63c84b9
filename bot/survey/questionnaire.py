"""The survey's questionnaire is data: a YAML file the township can edit, checked before it is used.

Cadres edit the file by hand, so `load` checks everything a campaign relies on (unique stable keys,
option codes 1..n, conditions that refer to an earlier question, known kinds and fields) and refuses a
bad file with one Chinese sentence naming the line and the question, rather than failing mid-survey.
A response records `Questionnaire.fingerprint()`, so an edited file never silently changes the meaning
of answers already given.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KINDS = ("single", "multi", "text")
KIND_NAMES = {"single": "单选", "multi": "多选", "text": "文字"}
# Placeholders the conversation layer fills in a question's text.
PLACEHOLDERS = frozenset({"helper"})
DEFAULT_PATH = Path(__file__).with_name("default_questionnaire.yaml")

_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_TOP_FIELDS = {"key", "version", "title", "questions"}
_QUESTION_FIELDS = {"key", "text", "kind", "options", "ask_if", "optional"}
_OPTION_FIELDS = {"code", "label", "words"}

Answer = tuple[int, ...] | str | None


class QuestionnaireError(ValueError):
    """A questionnaire file that cannot be used; the message is for the cadre who edited it."""


@dataclass(frozen=True)
class Option:
    code: int  # 1-based, as the household types it
    label: str  # 认识 / 基本满意 / 产业 ...
    words: tuple[str, ...] = ()  # extra ways people say it (understanding adds its general lexicon)


@dataclass(frozen=True)
class Question:
    key: str
    text: str  # may contain {helper}
    kind: str  # "single" | "multi" | "text"
    options: tuple[Option, ...] = ()
    ask_if: tuple[str, tuple[int, ...]] | None = None  # asked only if that answer is one of these codes
    optional: bool = False  # "跳过" skips it

    def option(self, code: int) -> Option:
        for option in self.options:
            if option.code == code:
                return option
        raise KeyError(f"question {self.key} has no option {code}")

    def prompt(self, **values: str) -> str:
        """The text to send: the question, then one numbered option a line and a short hint.

        Short lines and plain numbers because many readers are elderly and answer on a small phone.
        A placeholder without a value is a caller's bug, so it raises KeyError instead of sending "{helper}".
        """
        text = self.text.format_map(values)
        lines = [text]
        lines.extend(f"{o.code} {o.label}" for o in self.options)
        if self.kind == "single":
            lines.append("请回复数字。")
        elif self.kind == "multi":
            lines.append("可以选几个，比如回复：1 3")
        if self.optional:
            lines.append("不想说请回复“跳过”。")
        return "\n".join(lines)


@dataclass(frozen=True)
class Questionnaire:
    key: str
    version: int
    title: str
    questions: tuple[Question, ...]

    def question(self, key: str) -> Question:
        for question in self.questions:
            if question.key == key:
                return question
        raise KeyError(f"questionnaire {self.key} has no question {key!r}")

    def next_after(self, key: str | None, answers: dict[str, Answer]) -> Question | None:
        """The next question to ask after `key` (None: from the start), skipping those whose
        condition the answers so far do not meet; None when the questionnaire is finished."""
        start = 0
        if key is not None:
            start = [q.key for q in self.questions].index(self.question(key).key) + 1
        for question in self.questions[start:]:
            if question.ask_if is None:
                return question
            on, codes = question.ask_if
            given = answers.get(on)
            if isinstance(given, int) and not isinstance(given, bool):
                given = (given,)
            # a list is what the codes become after a round trip through JSON storage
            if isinstance(given, (tuple, list, set, frozenset)) and set(given) & set(codes):
                return question
        return None

    def canonical(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "version": self.version,
            "title": self.title,
            "questions": [
                {
                    "key": q.key,
                    "text": q.text,
                    "kind": q.kind,
                    "options": [{"code": o.code, "label": o.label, "words": list(o.words)} for o in q.options],
                    "ask_if": None if q.ask_if is None else [q.ask_if[0], list(q.ask_if[1])],
                    "optional": q.optional,
                }
                for q in self.questions
            ],
        }

    def fingerprint(self) -> str:
        """sha256 of the canonical content (not the file's bytes: comments and layout do not count)."""
        blob = json.dumps(self.canonical(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# --- loading -------------------------------------------------------------------------------------


def _where(node: yaml.Node) -> str:
    return f"第{node.start_mark.line + 1}行"


def _fail(node: yaml.Node, message: str) -> QuestionnaireError:
    return QuestionnaireError(f"问卷文件{_where(node)}：{message}")


class _Reader:
    """Walks the YAML node tree so every complaint can name the line it is about."""

    def __init__(self, text: str) -> None:
        self.loader = yaml.SafeLoader(text)

    def root(self) -> yaml.Node | None:
        try:
            return self.loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = f"第{mark.line + 1}行" if mark is not None else ""
            raise QuestionnaireError(f"问卷文件{line}格式有误（常见原因：用了Tab缩进，或括号、引号没配对）："
                                     f"{exc.problem or exc}") from None
        except yaml.YAMLError as exc:
            raise QuestionnaireError(f"问卷文件格式有误（YAML）：{exc}") from None

    def scalar(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return node
        return self.loader.construct_object(node, deep=True)

    def mapping(self, node: yaml.Node, what: str, allowed: set[str]) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise _fail(node, f"{what}应当是“名称: 内容”的形式")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            name = self.scalar(key_node)
            if not isinstance(name, str) or name not in allowed:
                known = "、".join(sorted(allowed))
                raise _fail(key_node, f"{what}里不认识“{name}”这一项（可用的有：{known}）")
            if name in out:
                raise _fail(key_node, f"{what}里“{name}”写了两次")
            out[name] = (key_node, value_node)
        return out

    def text(self, node: yaml.Node, what: str) -> str:
        value = self.scalar(node)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise _fail(node, f"{what}应当是一段文字")
        value = str(value).strip()
        if not value:
            raise _fail(node, f"{what}不能是空的")
        return value


def _placeholders(node: yaml.Node, text: str, where: str) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError:
        raise _fail(node, f"{where}的题目里花括号不成对（要填姓名请写 {{helper}}）") from None
    unknown = sorted(n for n in names if n not in PLACEHOLDERS)
    if unknown:
        raise _fail(node, f"{where}的题目里有不认识的占位“{{{unknown[0]}}}”（只能用 {{helper}}）")


def _option(r: _Reader, node: yaml.Node, position: int, where: str) -> Option:
    if isinstance(node, yaml.ScalarNode):
        return Option(code=position, label=r.text(node, f"{where}的第{position}个选项"), words=())
    fields = r.mapping(node, f"{where}的第{position}个选项", _OPTION_FIELDS)
    if "label" not in fields:
        raise _fail(node, f"{where}的第{position}个选项缺少 label（选项名）")
    label = r.text(fields["label"][1], f"{where}的第{position}个选项名")
    if "code" in fields:
        code_node = fields["code"][1]
        code = r.scalar(code_node)
        if isinstance(code, bool) or code != position:
            raise _fail(code_node, f"{where}的选项编号应当按顺序从1排起，这里应是 {position}，写的是 {code}")
    words: list[str] = []
    if "words" in fields:
        words_node = fields["words"][1]
        if not isinstance(words_node, yaml.SequenceNode):
            raise _fail(words_node, f"{where}的选项“{label}”的 words 应当是一串说法，如 [养猪, 种茶]")
        for word_node in words_node.value:
            words.append(r.text(word_node, f"{where}的选项“{label}”的说法"))
    return Option(code=position, label=label, words=tuple(dict.fromkeys(words)))


def _question(r: _Reader, node: yaml.Node, index: int, earlier: dict[str, Question]) -> Question:
    what = f"第{index}题"
    if isinstance(node, yaml.MappingNode):  # name the question by its key when it has one
        for key_node, value_node in node.value:
            if r.scalar(key_node) == "key" and isinstance(r.scalar(value_node), str):
                what = f"第{index}题（{r.scalar(value_node)}）"
    fields = r.mapping(node, what, _QUESTION_FIELDS)
    for required in ("key", "text", "kind"):
        if required not in fields:
            raise _fail(node, f"{what}缺少 {required}")
    key_node = fields["key"][1]
    key = r.scalar(key_node)
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise _fail(key_node, f"第{index}题的 key “{key}”只能用小写字母开头，由小写字母、数字和下划线组成")
    if key in earlier:
        raise _fail(key_node, f"题目 key “{key}”重复了，每道题的 key 必须不同")
    where = f"题目 {key}"
    text_node = fields["text"][1]
    text = r.text(text_node, f"{where}的题目")
    _placeholders(text_node, text, where)
    kind_node = fields["kind"][1]
    kind = r.scalar(kind_node)
    if kind not in KINDS:
        raise _fail(kind_node, f"{where}的 kind “{kind}”不认识，只能是 single（单选）、multi（多选）或 text（文字）")

    options: list[Option] = []
    if "options" in fields:
        options_node = fields["options"][1]
        if kind == "text":
            raise _fail(options_node, f"{where}是文字题，不能有选项")
        if not isinstance(options_node, yaml.SequenceNode):
            raise _fail(options_node, f"{where}的 options 应当是一串选项")
        for position, option_node in enumerate(options_node.value, start=1):
            options.append(_option(r, option_node, position, where))
        seen: dict[str, str] = {}
        for option_node, option in zip(options_node.value, options):
            if option.label in [o.label for o in options[: option.code - 1]]:
                raise _fail(option_node, f"{where}的选项“{option.label}”重复了")
            for say in (option.label, *option.words):
                if say in seen and seen[say] != option.label:
                    raise _fail(option_node, f"{where}里“{say}”同时写在选项“{seen[say]}”和“{option.label}”下")
                seen[say] = option.label
    if kind != "text" and len(options) < 2:
        hint = ""
        if options and any(mark in options[0].label for mark in "，、；"):
            hint = "（选项之间要用英文逗号“,”隔开，或者一行写一个）"
        raise _fail(node, f"{where}是{KIND_NAMES[kind]}题，至少要有两个选项{hint}")

    ask_if = None
    if "ask_if" in fields:
        ask_node = fields["ask_if"][1]
        if not isinstance(ask_node, yaml.MappingNode) or len(ask_node.value) != 1:
            raise _fail(ask_node, f"{where}的 ask_if 应当写成 {{前面题目的key: [编号]}}，如 {{satisfaction: [3]}}")
        on_node, codes_node = ask_node.value[0]
        on = r.scalar(on_node)
        if on not in earlier:
            raise _fail(on_node, f"{where}的 ask_if 要看“{on}”的答案，但它不是前面的题目（只能看前面的题）")
        target = earlier[on]
        if target.kind == "text":
            raise _fail(on_node, f"{where}的 ask_if 看的是文字题 {on}，只能看单选或多选题")
        raw = r.scalar(codes_node)
        items = [raw] if isinstance(raw, int) else None
        if isinstance(codes_node, yaml.SequenceNode):
            items = [r.scalar(n) for n in codes_node.value]
        valid = {o.code for o in target.options}
        if not items or any(isinstance(c, bool) or not isinstance(c, int) or c not in valid for c in items):
            raise _fail(codes_node, f"{where}的 ask_if 里的编号必须是题目 {on} 的选项编号（1到{len(valid)}）")
        ask_if = (on, tuple(sorted(set(items))))

    optional = False
    if "optional" in fields:
        optional_node = fields["optional"][1]
        optional = r.scalar(optional_node)
        if not isinstance(optional, bool):
            raise _fail(optional_node, f"{where}的 optional 只能写 true 或 false")
    return Question(key=key, text=text, kind=kind, options=tuple(options), ask_if=ask_if, optional=optional)


def loads(text: str) -> Questionnaire:
    """Parse and check a questionnaire given as YAML text (see `load`)."""
    r = _Reader(text)
    root = r.root()
    if root is None:
        raise QuestionnaireError("问卷文件是空的")
    fields = r.mapping(root, "问卷", _TOP_FIELDS)
    for required in ("key", "version", "title", "questions"):
        if required not in fields:
            raise _fail(root, f"问卷缺少 {required}")
    key = r.scalar(fields["key"][1])
    if not isinstance(key, str) or not re.match(r"^[a-z0-9][a-z0-9_-]{0,63}$", key):
        raise _fail(fields["key"][1], "问卷的 key 只能由小写字母、数字、-和_组成")
    version_node = fields["version"][1]
    version = r.scalar(version_node)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _fail(version_node, f"问卷的 version 应当是正整数，写的是“{version}”")
    title = r.text(fields["title"][1], "问卷的 title")
    questions_node = fields["questions"][1]
    if not isinstance(questions_node, yaml.SequenceNode) or not questions_node.value:
        raise _fail(questions_node, "问卷的 questions 应当是一串题目，至少一题")
    earlier: dict[str, Question] = {}
    for index, question_node in enumerate(questions_node.value, start=1):
        question = _question(r, question_node, index, earlier)
        earlier[question.key] = question
    return Questionnaire(key=key, version=version, title=title, questions=tuple(earlier.values()))


def load(path: str | Path) -> Questionnaire:
    """Read and check a questionnaire file; a bad file raises QuestionnaireError in Chinese."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QuestionnaireError(f"找不到问卷文件：{path}") from None
    except UnicodeDecodeError:
        raise QuestionnaireError(f"问卷文件 {path} 不是 UTF-8 编码，请用 UTF-8 保存") from None
    except OSError as exc:
        raise QuestionnaireError(f"读不了问卷文件 {path}：{exc.strerror}") from None
    return loads(text)


_default: Questionnaire | None = None


def default() -> Questionnaire:
    """The shipped questionnaire (bot/survey/default_questionnaire.yaml), read once."""
    global _default
    if _default is None:
        _default = load(DEFAULT_PATH)
    return _default
