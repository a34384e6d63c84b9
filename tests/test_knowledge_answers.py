"""Replies to households: excerpt and citation, follow-ups, "详细", odd messages, FAQ first, hand-over."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge import KnowledgeBase, ensure_sample_loaded, promote_unanswered
from knowledge.settings import KnowledgeSettings
from knowledge.store.faq import FaqError, add_faq, list_faqs, remove_faq
from knowledge.store.synonyms import add_synonym
from knowledge.store.unanswered import list_unanswered
from knowledge.testing import sqlite_database
from storage.db import Database

FOOTER = "回复“详细”看全文 / 回复“0”转人工"


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    db = sqlite_database(tmp_path_factory.mktemp("kb"))
    ensure_sample_loaded(db)
    return db


@pytest.fixture
def kb(sample_db: Database) -> KnowledgeBase:
    return KnowledgeBase.open(sample_db, KnowledgeSettings(kb_reload_seconds=0))


@pytest.fixture
def fresh(tmp_path: Path) -> tuple[Database, KnowledgeBase]:
    db = sqlite_database(tmp_path)
    ensure_sample_loaded(db)
    return db, KnowledgeBase.open(db, KnowledgeSettings(kb_reload_seconds=0))


def utf8(text: str) -> int:
    return len(text.encode("utf-8"))


def test_answer_is_an_excerpt_with_citation_and_footer(kb: KnowledgeBase) -> None:
    answer = kb.answer("我家房子漏雨能补钱不")
    body, citation, footer = answer.text.rsplit("\n", 2)
    assert "万元" in body and "漏雨" in body and len(body) <= 300
    assert citation == "——摘自《青山县脱贫攻坚政策文件汇编》第二章 第六条 危房改造补助标准"
    assert footer == FOOTER
    assert not answer.handover and answer.topic is not None
    source = answer.sources[0]
    assert (source.document, source.chapter, source.article, source.title) == (
        "青山县脱贫攻坚政策文件汇编", "第二章", "第六条", "危房改造补助标准")
    assert utf8(answer.text) < 2048


def test_excerpt_picks_the_sentences_the_question_asks_for(kb: KnowledgeBase) -> None:
    money = kb.answer("易地搬迁每个人补多少钱")
    assert "2.5万元" in money.text and "抽签" not in money.text  # the amount, not the whole article
    papers = kb.answer("雨露计划要带啥材料")
    assert "学籍证明" in papers.text
    how = kb.answer("重度残疾护理补贴咋个领")
    assert "乡镇为民服务中心" in how.text


@pytest.mark.parametrize(("question", "label"), [
    ("底保咋个申请", "第四十条"),  # 底保 -> 低保
    ("雨路计划一年补多少", "第三十条"),  # 雨路 -> 雨露
    ("先诊了后付费在哪些医院可以", "第三十四条"),
    ("一站是结算是啥意思", "第三十五条"),
])
def test_voice_input_homophones(kb: KnowledgeBase, question: str, label: str) -> None:
    assert kb.answer(question).sources[0].article == label


def test_short_follow_up_is_read_in_the_context_of_the_last_topic(kb: KnowledgeBase) -> None:
    first = kb.answer("危房改造补多少钱")
    assert first.sources[0].article == "第六条"
    follow = kb.answer("那要什么材料", last_topic=first.topic)
    assert follow.sources[0].article == "第七条" and "户口簿" in follow.text
    # The same words without a topic are not guessed at: the household is asked which policy.
    alone = kb.answer("那要什么材料")
    assert not alone.handover and "哪一项政策" in alone.text


def test_a_follow_up_naming_a_new_topic_switches_topic(kb: KnowledgeBase) -> None:
    first = kb.answer("公益岗位一个月多少钱")
    other = kb.answer("那低保呢", last_topic=first.topic)
    assert other.sources[0].article in {"第三十九条", "第四十条", "第四十一条"}


def test_detail_pages_the_whole_article_under_2048_bytes(kb: KnowledgeBase) -> None:
    first = kb.answer("娃儿考上大学了有补助没")
    pages = kb.article_pages(first.topic)
    assert pages and all(utf8(p) < 2048 for p in pages)
    assert "第三十一条" in pages[0] and "20000元" in "".join(pages)
    detail = kb.answer("详细", last_topic=first.topic)
    assert detail.kind == "detail" and "20000元" in detail.text
    assert "请先问" in kb.answer("详细").text
    assert kb.article_pages("a:999999") == [] and kb.article_pages("nonsense") == []


def test_long_articles_are_paged_at_sentence_ends(fresh: tuple[Database, KnowledgeBase], tmp_path: Path) -> None:
    db, kb = fresh
    from knowledge.ingest.importer import import_files

    sentence = "申请人应当如实提供家庭人口、收入和财产情况，村委会组织民主评议并张榜公示七天。"
    path = tmp_path / "long.md"
    path.write_text(f"# 长条文汇编\n\n第一条【长条文】{sentence * 60}\n", encoding="utf-8")
    import_files(db, [path])
    answer = kb.answer("长条文第一条讲的啥")  # two documents have a 第一条: the words decide
    assert answer.sources[0].title == "长条文"
    pages = kb.article_pages(answer.topic)
    assert len(pages) >= 3
    assert pages[0].startswith("（1/") and all(utf8(p) < 2048 for p in pages)
    assert all(p.rstrip().endswith("。") for p in pages)


@pytest.mark.parametrize("message", ["🙏🙏🙏", "👍", "   ", "？？？"])
def test_messages_without_words_get_a_prompt(kb: KnowledgeBase, message: str) -> None:
    answer = kb.answer(message, last_topic="a:1")
    assert not answer.handover and "请用文字" in answer.text and answer.topic == "a:1"


def test_a_2000_character_message_is_handed_over_kindly(kb: KnowledgeBase) -> None:
    answer = kb.answer("我家的情况是这样的，" + "房子漏雨娃儿读书老人生病" * 170)
    assert answer.handover and "工作人员" in answer.text and utf8(answer.text) < 2048


def test_greetings_thanks_and_asking_for_a_person(kb: KnowledgeBase) -> None:
    assert "四送助手" in kb.answer("你好").text
    assert "不客气" in kb.answer("谢谢").text
    human = kb.answer("0")
    assert human.handover and human.kind == "handover"


def test_unanswerable_question_is_handed_over_and_queued(fresh: tuple[Database, KnowledgeBase]) -> None:
    db, kb = fresh
    answer = kb.ask("oUser1", "考驾照有补贴吗")
    assert answer.handover and "这个问题我还答不上来" in answer.text and answer.sources == []
    kb.ask("oUser1", "考驾照有补贴吗？")  # the same follower asking again keeps one entry
    queued = list_unanswered(db)
    assert [(u.openid, u.question) for u in queued] == [("oUser1", "考驾照有补贴吗")]
    assert kb.record_unanswered(None, "彩礼太高了政府管不管") > queued[0].id


def test_faq_is_matched_before_the_handbook(fresh: tuple[Database, KnowledgeBase]) -> None:
    db, kb = fresh
    assert kb.answer("低保一个月多少钱").sources[0].article != ""
    faq_id = add_faq(db, "低保一个月多少钱", "本县低保每人每月450元，按差额发放。")
    answer = kb.answer("请问低保一个月多少钱？")
    assert answer.kind == "faq" and answer.text.startswith("本县低保每人每月450元")
    assert answer.sources[0].document == "常见问题"
    assert kb.article_pages(answer.topic)[0].endswith("按差额发放。")
    assert remove_faq(db, faq_id) and kb.answer("低保一个月多少钱").kind == "article"


def test_promoting_an_unanswered_question_answers_everyone_who_asked(fresh: tuple[Database, KnowledgeBase]) -> None:
    db, kb = fresh
    first = kb.record_unanswered("oA", "考驾照有补贴吗")
    kb.record_unanswered("oB", "考驾照有补贴吗？")
    kb.record_unanswered("oC", "电费太贵了能减免不")
    openids = promote_unanswered(db, first, "驾照培训不在帮扶政策里，可以问县人社局的技能培训。")
    assert sorted(openids) == ["oA", "oB"]
    assert [u.question for u in list_unanswered(db)] == ["电费太贵了能减免不"]
    faq = list_faqs(db)[0]
    assert faq.from_unanswered_id == first
    assert kb.answer("考驾照有补贴吗").kind == "faq"
    with pytest.raises(FaqError):
        promote_unanswered(db, 999, "答案")
    with pytest.raises(FaqError):
        add_faq(db, "问题", "  ")


def test_cadre_synonyms_in_the_database_take_effect(fresh: tuple[Database, KnowledgeBase]) -> None:
    db, kb = fresh
    assert kb.answer("钩钩车补贴").handover
    add_synonym(db, "钩钩车", "挖掘机 培训")
    assert kb.answer("学开钩钩车有补贴没").sources[0].article == "第二十五条"


def test_asking_by_article_number(kb: KnowledgeBase) -> None:
    answer = kb.answer("第四十条说的啥")
    assert answer.sources[0].article == "第四十条"


def test_an_article_number_in_digits_finds_the_article_written_in_chinese(kb: KnowledgeBase) -> None:
    for question in ("第6条说的啥", "第六条说的啥", "第０６条说的啥"):
        answer = kb.answer(question)
        assert answer.sources[0].article == "第六条", question


def test_detail_is_the_whole_article_as_written_in_one_piece(tmp_path: Path) -> None:
    from knowledge.responder import topic_article
    from knowledge.reply_text import citation
    from knowledge.ingest.importer import import_files

    sentence = "符合条件的农户可以向村委会提出申请，由乡镇审核后报县里审批并按月发放补助资金。"
    lines = [f"第{n}类情况：" + sentence * 20 for n in range(1, 4)]  # pages break inside these lines
    handbook = tmp_path / "long.md"
    handbook.write_text("# 长条文汇编\n\n第一条【补助发放】\n" + "\n".join(lines) + "\n", encoding="utf-8")
    db = sqlite_database(tmp_path)
    import_files(db, [handbook])
    kb = KnowledgeBase.open(db, KnowledgeSettings(kb_reload_seconds=0))
    first = kb.answer("第一条讲的什么")
    assert len(kb.article_pages(first.topic)) > 1
    article = topic_article(kb._snapshot, first.topic)
    detail = kb.answer("详细", last_topic=first.topic)
    assert detail.kind == "detail"
    assert detail.text == citation(article) + "\n" + "\n".join(lines)  # no page markers, lines as written
