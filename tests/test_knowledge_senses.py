"""Telling a question the handbook answers from one that only shares its words.

The honest "答不上来" rests on a few general rules, each tested here on its own
and then on the sample handbook with questions that are not in the evaluation
set: a paper the handbook only lists as something to bring (身份证) is not a
topic it covers; a synonym inside a longer word (子女 in 独生子女) is not that
word; a word and 证/卡 (老年证) is another thing than the word; question words
("要多久", "补多少") are not topics; a noun the handbook never uses is a topic it
lacks even when it is one character (猫).
"""

from __future__ import annotations

import pytest

from knowledge import KnowledgeBase, ensure_sample_loaded
from knowledge.reply_text import mentions
from knowledge.nlp.cues import asks_papers, question_cues
from knowledge.nlp.synonyms import SynonymTable
from knowledge.search.senses import HandbookText, paper_spans
from knowledge.settings import KnowledgeSettings
from knowledge.testing import sqlite_database

# -- the pieces ----------------------------------------------------------------


def test_papers_are_what_follows_bring_or_provide_up_to_where_to_go() -> None:
    text = "申请时带身份证、户口簿和结婚证，到乡镇办理。学校直接提供营养餐，每带动一人奖补2000元。"
    listed = "".join(text[s:e] for s, e in paper_spans(text))
    assert "身份证" in listed and "结婚证" in listed
    assert "乡镇" not in listed and "营养餐" not in listed and "一人" not in listed
    card = "卡片丢失的，带户口簿到乡镇卫生院免费补办。"
    assert "".join(card[s:e] for s, e in paper_spans(card)) == "户口簿"


def test_a_word_only_listed_as_a_paper_is_known_to_be_so() -> None:
    text = HandbookText(
        ["申请需带身份证、户口簿。", "残疾人证由县残联发放，办理时带身份证。", "看病时出示健康扶贫卡，可以优先挂号。"],
        ["小额信贷申请办理", "残疾人证办理", "健康扶贫卡"],
    )
    assert text.only_as_paper(0, "身份证") and text.only_as_paper(1, "身份证")
    assert not text.only_as_paper(1, "残疾人证")  # the subject of the article
    assert not text.only_as_paper(2, "健康扶贫卡")  # named by the title
    assert text.articles_with("县残联") == frozenset({1})


def test_synonym_hits_prefer_word_boundaries_and_flag_hits_inside_words() -> None:
    table = SynonymTable()
    table.add_lines(["要交 => 缴纳", "交钱 => 费用 收取", "子女 => 子女 学生", "房子 => 住房", "房子漏雨 => 危房改造"])
    hits = {h.phrase: h.whole for h in table.find("要不要交钱", {0, 1, 3, 5})}
    assert hits["交钱"] is True and hits.get("要交") is False  # 交钱 is kept even though 要交 comes first
    assert [(h.phrase, h.whole) for h in table.find("独生子女", {0, 4})] == [("子女", False)]
    assert [h.phrase for h in table.find("房子漏雨", {0, 2, 4})] == ["房子漏雨"]  # not also 房子


@pytest.mark.parametrize(("question", "asks"), [
    ("信用社贷款要带结婚证吗", True), ("打工交通补助要啥证明", True), ("要几张照片", True),
    ("雨露计划要带啥材料", True), ("孩子的出生证明丢了去哪补", False), ("办身份证要多久", False),
])
def test_asking_which_papers_to_bring_is_not_naming_a_paper(question: str, asks: bool) -> None:
    assert asks_papers(question) is asks


def test_whether_one_may_apply_is_not_how_to_apply() -> None:
    assert "how" not in question_cues("低保户能不能申请危房改造")
    assert {"how", "eligibility"} <= question_cues("能不能告诉我咋个申请")
    assert "how" in question_cues("低保咋个申请")


# -- on the sample handbook ----------------------------------------------------------


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    db = sqlite_database(tmp_path_factory.mktemp("senses"))
    ensure_sample_loaded(db)
    return KnowledgeBase.open(db, KnowledgeSettings(kb_reload_seconds=0))


@pytest.mark.parametrize("question", [
    "办个身份证要好久",  # 身份证 is only ever a paper to bring
    "身份证丢了咋个补办",
    "户口簿在哪里办",
    "结婚证丢了咋办",
    "独生子女奖励有没得",  # 子女 inside 独生子女
    "养猪场要办啥手续",  # 养猪 inside 养猪场
    "老年证咋个办",  # 老年 + 证
    "社保卡丢了咋办",
    "猫丢了咋办",  # a one-character noun the handbook never uses
])
def test_words_shared_in_another_sense_are_handed_over(kb: KnowledgeBase, question: str) -> None:
    answer = kb.answer(question)
    assert answer.handover and answer.kind == "unanswerable", (question, answer.sources)


@pytest.mark.parametrize(("question", "label", "fact"), [
    ("贷款要带结婚证不", "第二十条", "结婚证"),  # the paper sense, asked for
    ("健康卡丢了咋办", "第三十八条", "补办"),  # the card the synonym table names
    ("低保去哪里申请", "第四十条", "乡镇"),  # the application article, not the eligibility one
    ("危房改造咋个申请", "第七条", "村委会"),
    ("五保户能不能申请危房改造", "第五条", "特困"),  # whether one may: the eligibility article
    ("贷款的钱能不能拿去还账", "第十九条", "偿还旧债"),  # a synonym the index cuts into two words
])
def test_the_same_words_in_the_handbook_sense_are_answered(
        kb: KnowledgeBase, question: str, label: str, fact: str) -> None:
    answer = kb.answer(question)
    assert not answer.handover and answer.sources[0].article == label and fact in answer.text, answer.text


def test_question_words_alone_still_ask_which_policy(kb: KnowledgeBase) -> None:
    for question in ("要什么材料", "那要带啥", "要多久"):
        assert kb.answer(question).kind == "clarify", question


def test_the_amount_quoted_is_the_one_for_the_case_asked_about(kb: KnowledgeBase) -> None:
    leak = kb.answer("屋顶漏雨 能补好多钱")
    assert "1.5万元" in leak.text and "C级" in leak.text  # 漏雨 is the C级 (repair) case
    assert "1.5万元" in kb.answer("房子鉴定是C级 修一下补多少").text


def test_a_how_question_quotes_where_to_go_and_what_to_bring(kb: KnowledgeBase) -> None:
    answer = kb.answer("高血压慢性病待遇咋个办")
    assert answer.sources[0].article == "第三十七条"
    assert "诊断证明" in answer.text and "乡镇卫生院" in answer.text


def test_a_number_in_the_question_matches_whole_numbers_only(kb: KnowledgeBase) -> None:
    assert mentions("年龄在18周岁至65周岁之间", "65") and not mentions("每人每月补贴600元", "60")
    assert "65周岁" in kb.answer("我60多岁了 还能当保洁员不").text
