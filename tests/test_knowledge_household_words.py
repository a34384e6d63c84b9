"""General rules for how households ask, on questions written for these tests (some also stand in
tuning splits; none in a held-out split, which a test below keeps so).

Voice input writes real words that sound right (检测户 for 监测户, 救主 for 救助) and slips
of the households' own phrases (公意岗); dialects ask in their own words (啷个, 哪切, 八十五了);
a question for a list names what is listed; a follow-up keeps its topic; a time or place is
asked of the step named; and a question whose action or sum the handbook never states is
handed over rather than answered with a neighbouring article.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge import KnowledgeBase, ensure_sample_loaded
from knowledge.ingest.importer import import_files
from knowledge.nlp.cues import asked_facts, asks_money
from knowledge.nlp.homophones import HomophoneMap
from knowledge.nlp.synonyms import SynonymTable
from knowledge.settings import KnowledgeSettings
from knowledge.testing import sqlite_database

HANDBOOKS = Path(__file__).resolve().parent.parent / "knowledge" / "data" / "handbooks"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    db = sqlite_database(tmp_path_factory.mktemp("sample"))
    ensure_sample_loaded(db)
    return KnowledgeBase.open(db, KnowledgeSettings(kb_answer_cache=0))


def _opened(tmp_path_factory: pytest.TempPathFactory, name: str) -> KnowledgeBase:
    db = sqlite_database(tmp_path_factory.mktemp(name))
    import_files(db, [HANDBOOKS / name])
    return KnowledgeBase.open(db, KnowledgeSettings(kb_answer_cache=0))


@pytest.fixture(scope="module")
def compilation(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    return _opened(tmp_path_factory, "yunxi_compilation.md")


@pytest.fixture(scope="module")
def booklet(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    return _opened(tmp_path_factory, "shiqiao_qa_booklet.md")


def cited(kb: KnowledgeBase, question: str, last_topic: str | None = None) -> str | None:
    answer = kb.answer(question, last_topic=last_topic)
    return None if answer.handover or not answer.sources else answer.sources[0].article


# -- the pieces ----------------------------------------------------------------


def test_a_real_word_that_sounds_like_a_handbook_word_is_read_as_it() -> None:
    words = HomophoneMap(["监测", "公示", "补助"])
    handbook = {"监测", "公示", "补助"}.__contains__
    assert words.handbook_word("检测", handbook) == "监测"
    assert words.handbook_word("公式", handbook) == "公示"
    assert words.handbook_word("不住", handbook) is None  # sounds alike with folding, shares nothing


def test_ages_in_chinese_numerals_and_old_age() -> None:
    table = SynonymTable()
    hits = table.find("我妈八十五了，一个月补好多")
    assert [h.expansions for h in hits] == [("年龄", "周岁", "高龄")]
    assert table.find("六十多岁了还能贷款不")[0].expansions == ("年龄", "周岁")
    assert "age" in asked_facts("家里老人八十五了补好多")


def test_dialect_ways_of_asking() -> None:
    assert "how" in asked_facts("低保啷个申请")
    assert "where" in asked_facts("残疾证去哪切办")
    assert "amount" in asked_facts("营养餐一天几块钱")
    assert asks_money("水费一方要好多钱") and not asks_money("村委会电话是好多")


# -- on the shipped handbooks ---------------------------------------------------


def test_voice_slips_are_answered_as_meant(sample: KnowledgeBase, compilation: KnowledgeBase) -> None:
    assert cited(sample, "检测户住院押金要交不") == cited(sample, "监测户住院押金要交不") == "第三十四条"
    assert cited(compilation, "医疗救主一年最多好多") == cited(compilation, "医疗救助一年最多好多") == "二、（三）"


def test_everyday_words_are_not_read_as_handbook_words(sample: KnowledgeBase, compilation: KnowledgeBase) -> None:
    """失业, 以外, 一半 sound like 事业, 意外, 一般, but a household who says them means them."""
    assert sample.answer("我失业了有啥补助").handover
    assert compilation.answer("我失业了有啥补助").handover
    assert sample.answer("除了低保以外还有啥帮扶").handover
    assert cited(sample, "看病的钱能报一半不") == cited(sample, "看病的钱能报好多") == "第三十六条"
    assert cited(compilation, "公意岗一个月好多钱") == "二、（三）"


def test_an_age_of_eighty_or_more_asks_about_the_old_age_allowance(sample: KnowledgeBase) -> None:
    assert cited(sample, "家里老人八十五了一个月补好多") == "第四十八条"


def test_a_follow_up_keeps_its_topic(sample: KnowledgeBase) -> None:
    topic = sample.answer("雨露计划补好多").topic
    assert cited(sample, "找哪个申请", topic) == "第三十条"
    topic = sample.answer("危房改造补好多").topic
    assert "1.5万元" in sample.answer("那C级的呢", last_topic=topic).text


def test_how_and_when_are_asked_of_the_step_named(compilation: KnowledgeBase) -> None:
    assert cited(compilation, "低保要咋个申请") == "三、（一）"
    assert cited(compilation, "产业奖补几月份报名") == "三、"
    assert cited(compilation, "扶贫贷款要等好久才放下来") == "三、"


def test_a_question_for_a_list_gets_the_article_titled_for_it(compilation: KnowledgeBase) -> None:
    answer = compilation.answer("监测户有啥子帮扶")
    assert answer.sources[0].article == "三、" and "①" in answer.text


def test_what_the_handbook_never_states_is_handed_over(booklet: KnowledgeBase, compilation: KnowledgeBase) -> None:
    # The asked action is a verb the booklet never uses, though it covers the rest.
    assert booklet.answer("签了家庭医生能不能换医生").handover
    assert booklet.answer("残疾证过期了咋个换").handover
    # A sum asked of an article that states none.
    assert booklet.answer("土地流转费一亩好多").handover
    # A thing a rule names (发电板 => 光伏) that the handbook lacks.
    assert compilation.answer("屋顶那个发电板有补助不").handover
    # The asked action is missing from the only article sharing the rest.
    assert compilation.answer("低保户能不能出去打工").handover
    # Still answered: the same kinds of question where the handbook does say.
    assert cited(booklet, "家庭医生签约要钱不") == "25．"
    assert cited(compilation, "贷款拿来修房子行不行") == "二、（四）"


def test_these_questions_are_not_held_out_questions() -> None:
    import re

    from knowledge.evaluation.dataset import load_items
    from knowledge.evaluation.handbooks import HANDBOOKS, HELD_OUT, question_key

    held_out = {question_key(i.question) for h in HANDBOOKS for i in load_items(h.questions) if i.split in HELD_OUT}
    asked = re.findall(r'"([^"]*[\u4e00-\u9fff][^"]*)"', Path(__file__).read_text(encoding="utf-8"))
    assert len(asked) > 20
    assert [q for q in asked if question_key(q) in held_out] == []


def test_a_compilation_section_is_about_its_documents_topic(compilation: KnowledgeBase) -> None:
    # 三、（一）农户申请 never says 危房; its document's title (…住房安全保障实施方案) names the topic,
    # so the section on applying wins over the ones that repeat 危房 (住房条件, 农房抗震改造).
    assert cited(compilation, "危房改造咋个申请") == "三、（一）"
    assert cited(compilation, "住房保障咋个报名") == "三、（一）"
    # A chapter heading shared by two sections (三、申请和审批) is no such topic: only the
    # document's title is, so the section on applying still answers how to apply for 低保.
    assert cited(compilation, "低保要咋个申请") == "三、（一）"


def test_a_manner_asked_about_must_be_stated(booklet: KnowledgeBase, compilation: KnowledgeBase) -> None:
    # "能不能在手机上…", "让别人代领": the manner is the point; an article naming only the office
    # does not answer it, one naming the 小程序 does.
    assert compilation.answer("临时救助能不能让别人代领").handover
    assert compilation.answer("小额信贷能不能网上办理").handover
    assert cited(compilation, "防返贫能不能在手机上申报") == "二、（一）"
    assert cited(booklet, "养老保险能不能在手机上交") == "2．"


def test_household_phrasings_of_the_third_round(compilation: KnowledgeBase, booklet: KnowledgeBase) -> None:
    # 贷好多钱 (jieba: 贷|好多钱), 钟头, 电用不完, 退出来, 手机上缴: lexicon part 7.
    assert "5万元" in compilation.answer("小额信贷最多能贷好多钱").text
    assert cited(booklet, "保洁员一天干几个钟头") == "15．"
    assert cited(booklet, "自家屋顶发的电用不完咋个办") == "13．"
    assert cited(compilation, "监测户好久能退出来") == "四、"
    # A thing a rule names that the handbook lacks is handed over (被偷).
    assert compilation.answer("养的羊被偷了有补助没").handover
    # A time said in passing is no condition (周末生病住院 is a question about 住院): the rule that
    # made 晚上/周末 conditions handed such questions over and was taken out after review.
    assert cited(compilation, "周末生病住院能报销不") == cited(compilation, "生病住院能报销不")
    assert cited(booklet, "家庭医生一年上门几次") == "25．"


def test_a_bare_can_or_must_opens_a_question_only_as_a_word_of_its_own() -> None:
    from knowledge.search.query import _ACTION_OPENS

    assert [m.group() for m in _ACTION_OPENS.finditer("需要啥子材料，只要是低保户主要看可能性")] == []
    assert [m.group() for m in _ACTION_OPENS.finditer("我要申请低保，能不能自己去，能报销不")] == ["要", "能不能", "能"]
    assert [m.group() for m in _ACTION_OPENS.finditer("交了材料才能领不")] == ["能"]  # 才能: only then can


@pytest.fixture(scope="module")
def chapters(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    return _opened(tmp_path_factory, "shimen_medical_rules.md")


def test_sections_of_one_chapter_are_told_apart(chapters: KnowledgeBase) -> None:
    # The sections of 第四章 医疗救助 all say 住院 and 救助: the one the question names by its own
    # title (门诊救助) is the answer, not the 门诊慢特病 rates that share its other words.
    assert cited(chapters, "门诊救助一年最多救好多") == "第四章 二、（二）"
    # A share asked (百分之几) is answered by the rates (报销比例), not by the thresholds (起付标准).
    assert cited(chapters, "在乡镇卫生院住院报百分之几") == "第三章 三、（二）"
    # Whether a thing is among those covered: the section that lists them (病种).
    assert cited(chapters, "冠心病属不属于慢特病") == "第三章 二、（一）"
    # A city the household names says where it went, not what it asks about.
    assert cited(chapters, "去成都住院没转诊报销少好多") == "第三章 三、（三）"


def test_a_way_of_asking_is_never_heard_as_a_rule_phrase(chapters: KnowledgeBase) -> None:
    analyzer = chapters._fresh_snapshot().analyzer
    # 咋个办 sounds like the rule phrase 咋个帮 (=> 帮扶); it is how the question is asked.
    assert "咋个帮" not in analyzer.analyse("出院了钱还是不够咋个办").heard
    assert not chapters.answer("出院了钱还是不够咋个办").handover


def test_a_share_and_a_number_of_times_are_kinds_of_fact() -> None:
    assert "share" in asked_facts("住院报几成")
    assert "share" in asked_facts("门诊报百分之几")
    assert "share" not in asked_facts("住院一年最多报好多钱")
    assert "times" in asked_facts("医保能资助两回不")
