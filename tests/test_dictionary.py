"""The compact word dictionary cuts exactly as jieba does (knowledge/nlp/dictionary.py).

The reference is jieba itself, set up the way the segmenter used it before: its own
``Tokenizer`` with our domain dictionary loaded by ``load_userdict`` and the lower-case forms
added, ``HMM=False``, and ``jieba.posseg``'s tag table. Every line of every handbook the
project ships, every question of every question set and the lexicon's phrases are cut by
both, in both modes; a single different cut fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jieba
import pytest

from knowledge.evaluation.handbooks import HANDBOOKS
from knowledge.nlp.dictionary import WordDictionary
from knowledge.nlp.tokenizer import DATA_DIR, DOMAIN_DICT, Segmenter, normalize_text

ROOT = Path(__file__).resolve().parent.parent

TRICKY = [
    "", " ", "\r\n", "危房", "D级危房改造补助1.5万元", "ＤＬ级 危房", "C级危房每户补助1.5万元。\n",
    "我家是dl级的房子 能补好多", "abc123 def", "a", "1", "A1b2 C3", "电话：0851-1234567，联系人张三",
    "《云溪县农村低收入群体住房安全保障实施方案》二、（一）", "会不会给我补助啊？？", "e.g. 3.5%的利息",
    "雨露计划中职每生每年3000元", "建档立卡户和监测户", "…——～！@#￥%", "x" * 300, "危" * 50,
]


def _texts() -> list[str]:
    texts = list(TRICKY)
    for handbook in HANDBOOKS:
        for path in handbook.files:
            texts.extend(path.read_text(encoding="utf-8").splitlines())
        for line in handbook.questions.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                texts.extend(filter(None, (item["question"], item.get("context"))))
    texts.extend((DATA_DIR / "synonyms.txt").read_text(encoding="utf-8").splitlines())
    return texts


@pytest.fixture(scope="module")
def reference() -> jieba.Tokenizer:
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    tokenizer.load_userdict(str(DOMAIN_DICT))
    for line in DOMAIN_DICT.read_text(encoding="utf-8").splitlines():
        word = line.split(" ")[0].strip()
        if word and word != word.lower():
            tokenizer.add_word(word.lower(), 20000)
    return tokenizer


@pytest.fixture(scope="module")
def ours() -> WordDictionary:
    return Segmenter().dictionary


def test_every_shipped_text_is_cut_exactly_as_jieba_cuts_it(reference: jieba.Tokenizer, ours: WordDictionary) -> None:
    texts = _texts()
    assert len(texts) > 2000  # the handbooks and the question sets were all read
    for text in texts:
        for variant in (text, normalize_text(text)):
            assert list(ours.tokenize(variant)) == list(reference.tokenize(variant, HMM=False)), variant
            assert list(ours.tokenize(variant, search=True)) == \
                list(reference.tokenize(variant, mode="search", HMM=False)), variant


def test_counts_total_and_tags_are_jiebas(reference: jieba.Tokenizer, ours: WordDictionary) -> None:
    import jieba.posseg

    assert ours.total == reference.total
    tags = jieba.posseg.POSTokenizer(reference).word_tag_tab
    words = [w for w in reference.FREQ if reference.FREQ[w]]
    assert len(words) > 340_000
    for word in words:
        assert ours.count(word) == reference.FREQ[word], word
        assert ours.tag(word) == tags.get(word), word
    # prefixes jieba keeps with count 0, and words it never heard of
    for word in ("危房改", "建档立", "一二三四五六七八", "qwertyuiop", "d级", "dl级", "\ud800", "危\udfff房"):
        assert ours.count(word) == (reference.FREQ.get(word) or 0), word
    assert ours.tag("\ud800") is None


def test_the_block_patterns_are_jiebas() -> None:
    from knowledge.nlp import dictionary

    for ours, theirs in ((dictionary._RE_HAN, jieba.re_han_default), (dictionary._RE_SKIP, jieba.re_skip_default),
                         (dictionary._RE_ENG, jieba.re_eng)):
        assert (ours.pattern, ours.flags) == (theirs.pattern, theirs.flags)


def test_a_worker_keeps_the_dictionary_small() -> None:
    """Building the dictionary leaves a process ~20 MB larger, not jieba's ~170 MB."""
    probe = (
        "import os\n"
        "def rss():\n"
        "    return int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]) // 1024\n"
        "from knowledge.nlp.tokenizer import Segmenter\n"
        "seg = Segmenter(); before = rss()\n"
        "assert seg.words('危房改造补助多少钱') and seg.tag('危房') == 'n' and seg.frequency('补助') > 0\n"
        "import sys; assert 'jieba' not in sys.modules  # nor its HMM tables\n"
        "print(rss() - before)\n"
    )
    grown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True, timeout=120)
    assert int(grown.stdout.strip()) < 40, grown.stdout


def test_a_cached_dictionary_is_mapped_and_cuts_the_same(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The first process builds and keeps it; the next maps the files; inputs that change make new files."""
    segmenter = Segmenter()
    extra = segmenter._domain_words()
    built = WordDictionary(extra=extra)  # in memory, as without a cache
    first = WordDictionary.load(extra, tmp_path)  # builds, keeps, then maps what it kept
    files = sorted(p.name for p in tmp_path.iterdir())
    assert [name.rsplit(".", 1)[1] for name in files] == ["arrays", "json", "trie"]
    mapped = WordDictionary.load(extra, tmp_path)
    assert isinstance(first.counts, memoryview) and isinstance(mapped.counts, memoryview)
    assert not isinstance(built.counts, memoryview)
    assert (mapped.total, mapped.longest, len(mapped)) == (built.total, built.longest, len(built))
    for text in _texts()[::7]:
        assert list(mapped.tokenize(text, search=True)) == list(built.tokenize(text, search=True)), text
    for word in ("危房", "补助", "建档立卡户", "d级", "危房改", "的", "qwerty"):
        assert (mapped.count(word), mapped.tag(word)) == (built.count(word), built.tag(word)), word

    # Another word list (a changed domain dictionary) is another set of files, never the old one.
    WordDictionary.load([*extra, ("羊棚子", 20000)], tmp_path)
    assert len(list(tmp_path.glob("*.trie"))) == 2

    # A damaged cache is rebuilt (and written back whole), not trusted and not an error on every question.
    stem = tmp_path / files[0].rsplit(".", 1)[0]
    trie, arrays, header = (stem.with_name(stem.name + suffix) for suffix in (".trie", ".arrays", ".json"))
    good = header.read_text(encoding="utf-8")
    other_ids = good.replace('"checks": {"\\u7684": ', '"checks": {"\\u7684": 1')
    assert other_ids != good
    for damage in (
        lambda: arrays.write_bytes(arrays.read_bytes()[:1000]),
        lambda: trie.write_bytes(b""),  # marisa raises RuntimeError on these
        lambda: trie.write_bytes(trie.read_bytes()[:5000]),
        lambda: trie.write_bytes(b"not a trie" * 100),
        lambda: trie.unlink(),
        lambda: header.write_text("[1, 2]", encoding="utf-8"),
        # arrays of another build (key ids differ): the counts the header keeps no longer match
        lambda: header.write_text(other_ids, encoding="utf-8"),
    ):
        damage()
        with caplog.at_level("WARNING"):
            again = WordDictionary.load(extra, tmp_path)
        assert again.count("补助") == built.count("补助") and again.tag("危房") == "n"
        assert isinstance(WordDictionary.load(extra, tmp_path).counts, memoryview)
    assert "unreadable" in caplog.text

    # A directory others may write in is not used: its files could be anyone's.
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with caplog.at_level("WARNING"):
        own = WordDictionary.load(extra, shared)
    assert not isinstance(own.counts, memoryview) and not list(shared.iterdir())
    assert "not using it" in caplog.text

    # A cache that cannot be written costs each process its own copy, and a warning, not an error.
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("x")
    with caplog.at_level("WARNING"):
        alone = WordDictionary.load(extra, blocked)
    assert alone.count("补助") == built.count("补助")
    assert "cannot keep it" in caplog.text
