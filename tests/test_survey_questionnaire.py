"""The survey's questionnaire: the shipped default, the flow between questions, and every check a
cadre's edited file goes through (each refusal in Chinese, naming the line and the question)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bot.survey import questionnaire as qn
from bot.survey.questionnaire import Option, QuestionnaireError, load, loads


def test_default_is_the_seed_in_order_with_exact_wording() -> None:
    q = qn.default()
    assert [x.key for x in q.questions] == ["know_team", "know_helper", "measures", "satisfaction", "comment"]
    assert [(x.text, x.kind) for x in q.questions] == [
        ("您认识驻村工作队吗？", "single"),
        ("您的帮扶责任人是{helper}，您认识吗？", "single"),
        ("您家接受过哪些帮扶措施？（可多选）", "multi"),
        ("您对帮扶成效满意吗？", "single"),
        ("请说说哪里不满意", "text"),
    ]
    labels = {x.key: [(o.code, o.label) for o in x.options] for x in q.questions}
    assert labels["know_team"] == [(1, "认识"), (2, "不认识")]
    assert labels["know_helper"] == [(1, "认识"), (2, "不认识")]
    assert labels["measures"] == [(1, "产业"), (2, "就业"), (3, "教育"), (4, "健康"), (5, "住房"),
                                  (6, "兜底保障"), (7, "其他")]
    assert labels["satisfaction"] == [(1, "满意"), (2, "基本满意"), (3, "不满意")]
    assert labels["comment"] == []
    comment = q.question("comment")
    assert comment.optional and comment.ask_if == ("satisfaction", (3,))
    assert not any(x.optional or x.ask_if for x in q.questions[:4])
    assert "低保" in q.question("measures").option(6).words
    assert q.version == 1 and q.title == "四问满意度调查"
    assert qn.default() is q  # read once


def test_prompts_are_short_numbered_and_fill_the_helper() -> None:
    q = qn.default()
    assert q.question("know_helper").prompt(helper="张三") == (
        "您的帮扶责任人是张三，您认识吗？\n1 认识\n2 不认识\n请回复数字。")
    assert q.question("measures").prompt().splitlines() == [
        "您家接受过哪些帮扶措施？（可多选）", "1 产业", "2 就业", "3 教育", "4 健康", "5 住房", "6 兜底保障",
        "7 其他", "可以选几个，比如回复：1 3"]
    assert q.question("comment").prompt() == "请说说哪里不满意\n不想说请回复“跳过”。"
    with pytest.raises(KeyError):
        q.question("know_helper").prompt()  # never "{helper}" sent to a household


def test_next_after_applies_ask_if() -> None:
    q = qn.default()
    assert q.next_after(None, {}).key == "know_team"
    answers: dict = {"know_team": (1,), "know_helper": (2,), "measures": (1, 3)}
    assert q.next_after("know_team", answers).key == "know_helper"
    assert q.next_after("measures", answers).key == "satisfaction"
    assert q.next_after("satisfaction", {**answers, "satisfaction": (3,)}).key == "comment"
    assert q.next_after("satisfaction", {**answers, "satisfaction": (2,)}) is None
    assert q.next_after("satisfaction", {**answers, "satisfaction": None}) is None  # not answered
    assert q.next_after("satisfaction", answers) is None
    # codes read back from JSON storage are lists; a lone code may be stored as an int
    assert q.next_after("satisfaction", {"satisfaction": [3]}).key == "comment"
    assert q.next_after("satisfaction", {"satisfaction": 3}).key == "comment"
    assert q.next_after("satisfaction", {"satisfaction": [1, 2]}) is None
    assert q.next_after("satisfaction", {"satisfaction": "不满意"}) is None  # text is not a code
    assert q.next_after("comment", {**answers, "satisfaction": (3,), "comment": "路不好"}) is None
    with pytest.raises(KeyError):
        q.next_after("nope", answers)
    with pytest.raises(KeyError):
        q.question("nope")


def test_fingerprint_follows_content_not_layout(tmp_path: Path) -> None:
    q = qn.default()
    text = qn.DEFAULT_PATH.read_text(encoding="utf-8")
    assert len(q.fingerprint()) == 64
    relaid = "# 另一段说明\n" + text.replace("options: [满意, 基本满意, 不满意]",
                                           "options:\n      - 满意\n      - 基本满意\n      - 不满意")
    assert loads(relaid).fingerprint() == q.fingerprint()
    assert loads(text.replace("基本满意, 不满意", "比较满意, 不满意")).fingerprint() != q.fingerprint()
    assert loads(text.replace("version: 1", "version: 2")).fingerprint() != q.fingerprint()
    assert loads(text.replace("[上学, 读书", "[上学, 念书")).fingerprint() != q.fingerprint()


def test_option_mappings_with_codes_and_words(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text(textwrap.dedent("""\
        key: test
        version: 3
        title: 测试
        questions:
          - key: has_land
            text: 您家有耕地吗？
            kind: single
            options:
              - {code: 1, label: 有, words: [有的, 有地]}
              - {code: 2, label: 没有}
          - key: why
            text: 为什么？
            kind: text
            ask_if: {has_land: 2}
    """), encoding="utf-8")
    q = load(path)
    assert q.question("has_land").options == (Option(1, "有", ("有的", "有地")), Option(2, "没有", ()))
    assert q.question("why").ask_if == ("has_land", (2,))
    assert q.question("why").optional is False
    assert q.next_after("has_land", {"has_land": (2,)}).key == "why"


BASE = """\
key: test
version: 1
title: 测试
questions:
  - key: a
    text: 第一题？
    kind: single
    options: [是, 否]
"""


def _fail(text: str) -> str:
    with pytest.raises(QuestionnaireError) as caught:
        loads(text)
    return str(caught.value)


@pytest.mark.parametrize(("extra", "expected"), [
    ("  - key: a\n    text: 又一题\n    kind: single\n    options: [是, 否]\n",
     ["第9行", "key “a”重复了"]),
    ("  - key: B-2\n    text: 又一题\n    kind: text\n", ["第9行", "key “B-2”只能用小写字母开头"]),
    ("  - key: b\n    text: 又一题\n    kind: choice\n", ["第11行", "题目 b", "kind “choice”不认识"]),
    ("  - key: b\n    text: 又一题\n    kind: text\n    optinal: true\n", ["第12行", "第2题（b）里不认识“optinal”"]),
    ("  - key: b\n    text: 又一题\n    kind: single\n    options:\n      - {code: 1, label: 甲}\n"
     "      - {code: 3, label: 乙}\n", ["第14行", "题目 b", "应是 2，写的是 3"]),
    ("  - key: b\n    text: 又一题\n    kind: text\n    ask_if: {c: [1]}\n"
     "  - key: c\n    text: 后一题\n    kind: single\n    options: [是, 否]\n",
     ["第12行", "题目 b", "“c”", "不是前面的题目"]),
    ("  - key: b\n    text: 又一题\n    kind: text\n    ask_if: {a: [3]}\n",
     ["第12行", "题目 b", "题目 a 的选项编号（1到2）"]),
    ("  - key: b\n    text: 又一题\n    kind: text\n  - key: c\n    text: 再一题\n    kind: text\n"
     "    ask_if: {b: [1]}\n", ["第15行", "题目 c", "文字题 b"]),
    ("  - key: b\n    text: 又一题\n    kind: text\n    ask_if: a\n", ["第12行", "ask_if 应当写成"]),
    ("  - key: b\n    text: 又一题\n    kind: single\n    options: [只有一个]\n", ["第9行", "至少要有两个选项"]),
    ("  - key: b\n    text: 又一题\n    kind: single\n    options: [认识，不认识]\n",
     ["第9行", "至少要有两个选项（选项之间要用英文逗号"]),
    ("  - key: b\n    text: 又一题\n    kind: text\n    options: [甲, 乙]\n", ["第12行", "文字题，不能有选项"]),
    ("  - key: b\n    text: '  '\n    kind: text\n", ["第10行", "题目 b的题目不能是空的"]),
    ("  - key: b\n    text: 您认识{name}吗？\n    kind: text\n", ["第10行", "{name}"]),
    ("  - key: b\n    text: 您认识{helper吗？\n    kind: text\n", ["第10行", "花括号不成对"]),
    ("  - key: b\n    text: 又一题\n    kind: text\n    optional: 是\n", ["第12行", "true 或 false"]),
    ("  - key: b\n    text: 又一题\n    kind: multi\n    options:\n      - {label: 甲, words: [乙]}\n"
     "      - 乙\n", ["第14行", "“乙”同时写在选项“甲”和“乙”下"]),
    ("  - key: b\n    text: 又一题\n    kind: multi\n    options: [甲, 甲]\n", ["第12行", "选项“甲”重复了"]),
    ("  - key: b\n    text: 又一题\n    kind: multi\n    options:\n      - {label: 甲, words: 乙}\n"
     "      - 丙\n", ["第13行", "words 应当是一串说法"]),
    ("  - key: b\n    text: 又一题\n    kind: multi\n    options:\n      - {words: [乙]}\n      - 丙\n",
     ["第13行", "缺少 label"]),
    ("  - key: b\n    kind: text\n", ["第9行", "第2题（b）缺少 text"]),
    ("  - key: b\n    text: 又一题\n    kind: text\n    kind: single\n", ["第12行", "“kind”写了两次"]),
    ("  - key: b\n    text: [又, 一题]\n    kind: text\n", ["第10行", "题目应当是一段文字"]),
    ("  - key: b\n    text: 又一题\n    kind: single\n    options: 甲\n", ["第12行", "options 应当是一串选项"]),
    ("  - key: b\n    text: 又一题\n    kind: text\n    ask_if: {a: [1, 是]}\n", ["第12行", "选项编号（1到2）"]),
    ("  - [b, c]\n", ["第9行", "第2题应当是“名称: 内容”的形式"]),
])
def test_every_check_names_the_line(extra: str, expected: list[str]) -> None:
    message = _fail(BASE + extra)
    assert message.startswith("问卷文件")
    for part in expected:
        assert part in message, message


@pytest.mark.parametrize(("text", "expected"), [
    ("", "问卷文件是空的"),
    ("- a\n- b\n", "问卷应当是"),
    ("key: test\nversion: 1\ntitle: 测试\n", "问卷缺少 questions"),
    (BASE.replace("version: 1", "version: 一"), "version 应当是正整数"),
    (BASE.replace("version: 1", "version: 0"), "version 应当是正整数"),
    (BASE.replace("key: test", "key: 测试"), "问卷的 key"),
    (BASE.replace("questions:\n", "questions: []\n").split("  - key")[0], "至少一题"),
    (BASE.replace("title: 测试", "title: 测试\ntitel: x"), "不认识“titel”"),
    (BASE.replace("title: 测试", "title: ''"), "问卷的 title不能是空的"),
    (BASE.replace("options: [是, 否]", "options: [是, 否"), "第9行格式有误"),
    (BASE + "  - key: b\n\ttext: x\n", "用了Tab缩进"),
])
def test_top_level_checks(text: str, expected: str) -> None:
    assert expected in _fail(text)


def test_ask_if_takes_one_code_or_a_list() -> None:
    q = loads(BASE + "  - key: b\n    text: 为什么？\n    kind: text\n    ask_if: {a: 2}\n"
                     "  - key: c\n    text: 再说说\n    kind: text\n    ask_if: {a: [2, 1, 2]}\n")
    assert q.question("b").ask_if == ("a", (2,))
    assert q.question("c").ask_if == ("a", (1, 2))


def test_file_problems_are_sentences(tmp_path: Path) -> None:
    with pytest.raises(QuestionnaireError, match="找不到问卷文件"):
        load(tmp_path / "missing.yaml")
    gbk = tmp_path / "gbk.yaml"
    gbk.write_bytes(BASE.encode("gbk"))
    with pytest.raises(QuestionnaireError, match="不是 UTF-8 编码"):
        load(gbk)
    with pytest.raises(QuestionnaireError, match="读不了问卷文件"):
        load(tmp_path)  # a directory


def test_the_default_file_loads_from_its_path() -> None:
    assert load(qn.DEFAULT_PATH) == qn.default()
