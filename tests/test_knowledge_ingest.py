"""Reading handbooks: formats, structure recognition, tables, long articles, bad files."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
from pathlib import Path

import docx
import pytest
from docx.enum.text import WD_BREAK
from pypdf import PdfReader, PdfWriter

from knowledge.ingest.errors import HandbookFileError
from knowledge.ingest.importer import parse_file, split_passages
from knowledge.ingest.readers import read_bytes, read_file
from knowledge.ingest.structure import parse_structure
from knowledge.service import SAMPLE_HANDBOOK

HANDBOOK_DIR = Path(__file__).resolve().parent.parent / "knowledge" / "data" / "handbooks"


# -- fixtures that build real files --------------------------------------------------------

def make_pdf(pages: list[list[str]]) -> bytes:
    """A text PDF (Type0 font, Identity-H, ToUnicode map) written by hand, Chinese included."""
    chars = sorted({ch for page in pages for line in page for ch in line})
    cmap_lines = ["/CIDInit /ProcSet findresource begin", "12 dict begin", "begincmap",
                  "/CMapName /Sisong-UCS def", "/CMapType 2 def",
                  "1 begincodespacerange <0000> <FFFF> endcodespacerange"]
    for start in range(0, len(chars), 100):
        chunk = chars[start:start + 100]
        cmap_lines.append(f"{len(chunk)} beginbfchar")
        cmap_lines += [f"<{ord(c):04X}> <{ord(c):04X}>" for c in chunk]
        cmap_lines.append("endbfchar")
    cmap_lines += ["endcmap", "CMapName currentdict /CMap defineresource pop", "end", "end"]
    cmap = "\n".join(cmap_lines).encode()

    objects: list[bytes] = []
    page_ids = [6 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type0 /BaseFont /SisongSong /Encoding /Identity-H "
                   b"/DescendantFonts [4 0 R] /ToUnicode 5 0 R >>")
    objects.append(b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /SisongSong /CIDToGIDMap /Identity "
                   b"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> /DW 1000 >>")
    objects.append(b"<< /Length %d >>\nstream\n" % len(cmap) + cmap + b"\nendstream")
    for lines in pages:
        ops = ["BT", "/F1 10 Tf", "40 800 Td"]
        for line in lines:
            ops.append("<" + "".join(f"{ord(c):04X}" for c in line) + "> Tj")
            ops.append("0 -16 Td")
        ops.append("ET")
        content = "\n".join(ops).encode()
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> "
                       f"/Contents {len(objects) + 2} 0 R >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b""))


def docx_bytes(build) -> bytes:  # type: ignore[no-untyped-def]
    document = docx.Document()
    build(document)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def add_table(d: docx.Document, rows: list[tuple[str, str]]) -> None:
    """A two-column Word table, header row first."""
    table = d.add_table(rows=len(rows), cols=2)
    for (left, right), row in zip(rows, table.rows):
        row.cells[0].text, row.cells[1].text = left, right


def parse(name: str, content: bytes):  # type: ignore[no-untyped-def]
    return parse_structure(read_bytes(name, content, Path(name).suffix))


# -- the shipped sample -------------------------------------------------------------------------

def test_sample_handbook_structure() -> None:
    doc = parse_structure(read_file(SAMPLE_HANDBOOK))
    assert doc.title == "青山县脱贫攻坚政策文件汇编"
    assert doc.chapters == 12
    numbered = [a for a in doc.articles if a.label.startswith("第") and a.label.endswith("条")]
    assert len(numbered) >= 30
    assert doc.warnings == []
    article = next(a for a in doc.articles if a.label == "第六条")
    assert (article.chapter_label, article.chapter_title, article.title) == ("第二章", "住房安全保障", "危房改造补助标准")
    assert "3.5万元" in article.text and not article.text.startswith("【")


# -- text formats --------------------------------------------------------------------------------

def test_plain_text_chapters_articles_and_wrapped_lines() -> None:
    text = (
        "某县帮扶政策汇编\n"
        "第一章 总则\n"
        "第一条 为了规范帮扶工作，根据有关规定，结合本县实际情况，\n"
        "制定本办法。\n"
        "第二条　帮扶对象\n"
        "本办法适用于全县脱贫户。\n"
        "第二章 住房\n"
        "第三条【危房改造】D级危房每户补助3.5万元。\n"
    )
    doc = parse("policy.txt", text.encode("gb18030"))  # Windows exports are often GBK
    assert doc.title == "某县帮扶政策汇编"
    assert [a.label for a in doc.articles] == ["第一条", "第二条", "第三条"]
    assert doc.articles[0].text == "为了规范帮扶工作，根据有关规定，结合本县实际情况，制定本办法。"
    assert doc.articles[1].title == "帮扶对象" and doc.articles[1].text == "本办法适用于全县脱贫户。"
    assert doc.articles[2].title == "危房改造" and doc.articles[2].chapter_label == "第二章"


def test_report_style_numbering_cn_and_parenthesised_items() -> None:
    text = (
        "xx镇党建扶贫工作报告\n"
        "一、工作情况\n"
        "（一）创新“党建扶贫双推进”。一是成立五支先锋队伍。二是发展壮大集体经济。\n"
        "1. 每支先锋队安排工作经费5000元。\n"
        "（二）提升基层服务水平。推进基层党组织标准化建设。\n"
        "二、存在问题\n"
        "个别党组织软弱涣散，党员教育管理“虚化”。\n"
    )
    doc = parse("report.txt", text.encode())
    labels = [(a.chapter_label, a.label, a.title) for a in doc.articles]
    assert labels == [
        ("一、", "（一）", "创新“党建扶贫双推进”"),
        ("一、", "（二）", "提升基层服务水平"),
        ("二、", "二、", "存在问题"),
    ]
    assert "5000元" in doc.articles[0].text  # 1. items stay inside their article
    assert doc.chapters == 2


def test_markdown_table_rows_carry_headers() -> None:
    text = (
        "# 教育资助汇编\n\n## 第一章 资助标准\n\n第一条【寄宿生生活补助】标准如下：\n\n"
        "| 学段 | 标准 |\n|---|---|\n| 小学 | 每生每年1000元 |\n| 初中 | 每生每年1250元 |\n"
    )
    doc = parse("edu.md", text.encode())
    article = doc.articles[0]
    assert "学段：初中；标准：每生每年1250元。" in article.text
    assert "学段：小学；标准：每生每年1000元。" in article.text


def test_numbering_gaps_and_duplicates_are_warned() -> None:
    text = "第一条 甲规定内容。\n第二条 乙规定内容。\n第二条 丙规定内容。\n第五条 丁规定内容。\n"
    doc = parse("gaps.txt", text.encode())
    assert "条文编号重复：第二条" in doc.warnings
    assert "条文编号不连续：第二条之后是第五条" in doc.warnings


def test_text_without_structure_is_imported_by_paragraph_with_a_warning() -> None:
    doc = parse("notes.txt", "低保每月发放一次。\n\n临时救助要及时申请。\n".encode())
    assert [a.text for a in doc.articles] == ["低保每月发放一次。", "临时救助要及时申请。"]
    assert [a.label for a in doc.articles] == ["", ""]  # no invented 第N段: labels are as written
    assert any("按段落导入" in w for w in doc.warnings)


def test_cn_item_chapters_above_articles_numbered_per_chapter() -> None:
    text = (
        "某县惠民政策汇编\n"
        "一、住房保障\n"
        "第一条 D级危房每户补助3.5万元。\n"
        "第二条 C级危房每户补助1.5万元。\n"
        "二、教育资助\n"
        "第一条 寄宿生每生每年补助1000元。\n"
        "第二条 雨露计划每生每学期补助1500元。\n"
    )
    doc = parse("huimin.txt", text.encode())
    assert doc.chapters == 2
    assert [(a.chapter_label, a.chapter_title, a.label) for a in doc.articles] == [
        ("一、", "住房保障", "第一条"), ("一、", "住房保障", "第二条"),
        ("二、", "教育资助", "第一条"), ("二、", "教育资助", "第二条"),
    ]
    assert "教育资助" not in doc.articles[1].text
    assert doc.warnings == []


def test_cn_items_inside_an_article_stay_its_text() -> None:
    text = "第一条 申请条件如下：\n一、年满十八岁；\n二、户籍在本县。\n第二条 由村委会受理。\n"
    doc = parse("list.txt", text.encode())
    assert [a.label for a in doc.articles] == ["第一条", "第二条"]
    assert "户籍在本县" in doc.articles[0].text and doc.chapters == 0


def test_chapters_over_plain_paragraphs_are_the_units() -> None:
    text = (
        "某县政策问答\n"
        "第一章 住房\n"
        "D级危房每户补助3.5万元。\n"
        "C级危房每户补助1.5万元。\n"
        "第二章 教育\n"
        "寄宿生每生每年补助1000元。\n"
    )
    doc = parse("qa.txt", text.encode())
    assert doc.chapters == 2
    assert [(a.chapter_label, a.label, a.title) for a in doc.articles] == [
        ("第一章", "第一章", "住房"), ("第二章", "第二章", "教育")]
    assert "1.5万元" in doc.articles[0].text
    assert not any("按段落导入" in w for w in doc.warnings)


def test_chapters_and_sections_over_plain_paragraphs() -> None:
    text = "第一章 住房\n第一节 危房改造\nD级危房每户补助3.5万元。\n第二节 搬迁\n搬迁户每人补助2万元。\n"
    doc = parse("sec.txt", text.encode())
    assert [(a.chapter_label, a.label, a.title) for a in doc.articles] == [
        ("第一章", "第一节", "危房改造"), ("第一章", "第二节", "搬迁")]


# -- chapters over 一、（一）1. with no 第X条 (a county 实施细则) ------------------------------------

XIZE = (
    "某县医疗救助实施细则\n"
    "第一章 总则\n"
    "一、目的\n"
    "为防止因病返贫，制定本细则。\n"
    "二、适用范围\n"
    "（一）对象。本县户籍的参保人员。\n"
    "（二）经办。县医保局负责实施。\n"
    "第二章 待遇\n"
    "本章规定报销和救助待遇。\n"
    "一、住院\n"
    "（一）起付线。乡镇卫生院200元。\n"
    "（二）报销比例。乡镇卫生院报销85%。\n"
    "1. 脱贫人口再提高5个百分点。\n"
    "2. 监测对象再提高3个百分点。\n"
    "二、大病保险\n"
    "超过1.2万元的部分按60%报销。\n"
)


def test_chapters_nest_cn_and_parenthesised_items_with_unambiguous_labels() -> None:
    doc = parse("xize.txt", XIZE.encode())
    rows = [(a.chapter_label, a.chapter_title, a.label, a.title) for a in doc.articles]
    assert rows == [
        ("第一章", "总则", "第一章 一、", "目的"),  # no sub-items: its own unit, not the chapter's text
        ("第一章", "总则 适用范围", "第一章 二、（一）", "对象"),
        ("第一章", "总则 适用范围", "第一章 二、（二）", "经办"),
        ("第二章", "待遇", "第二章", "待遇"),  # text under the chapter heading itself
        ("第二章", "待遇 住院", "第二章 一、（一）", "起付线"),
        ("第二章", "待遇 住院", "第二章 一、（二）", "报销比例"),  # its 1. 2. list stays its text
        ("第二章", "待遇", "第二章 二、", "大病保险"),
    ]
    assert len({(a.document, a.label) for a in doc.articles}) == len(doc.articles)
    texts = {a.label: a.text for a in doc.articles}
    assert texts["第一章 一、"] == "为防止因病返贫，制定本细则。"
    assert texts["第二章 二、"] == "超过1.2万元的部分按60%报销。"
    assert texts["第二章 一、（二）"] == "乡镇卫生院报销85%。\n1. 脱贫人口再提高5个百分点。\n2. 监测对象再提高3个百分点。"
    assert "适用范围" not in texts["第一章 一、"] and "大病保险" not in texts["第二章 一、（二）"]
    assert doc.chapters == 2 and doc.warnings == []


def test_a_nested_heading_with_its_own_text_stays_a_unit() -> None:
    text = "第一章 救助\n一、救助标准\n经医保报销后按比例救助。\n（一）住院。按80%救助。\n（二）门诊。按70%救助。\n"
    doc = parse("jiuzhu.txt", text.encode())
    assert [(a.label, a.text) for a in doc.articles] == [
        ("第一章 一、", "经医保报销后按比例救助。"),
        ("第一章 一、（一）", "按80%救助。"),
        ("第一章 一、（二）", "按70%救助。"),
    ]


def test_chapter_sections_are_part_of_a_nested_label() -> None:
    text = ("第一章 待遇\n第一节 门诊\n一、统筹\n报销55%。\n"
            "第二节 住院\n一、起付线\n乡镇卫生院200元。\n")
    doc = parse("jie.txt", text.encode())
    assert [(a.label, a.chapter_title) for a in doc.articles] == [
        ("第一章 第一节 一、", "待遇 第一节 门诊"), ("第一章 第二节 一、", "待遇 第二节 住院")]
    assert doc.warnings == []


def test_nested_numbering_is_checked_within_each_parent() -> None:
    text = ("第一章 待遇\n一、门诊\n（一）统筹。报销55%。\n（一）签约。免签约费。\n"
            "（三）体检。每年一次。\n二、住院\n（一）起付线。200元。\n")
    doc = parse("dup.txt", text.encode())
    assert doc.warnings == ["条文编号重复：第一章 一、（一）", "条文编号不连续：第一章 一、（一）之后是第一章 一、（三）"]


def test_chapters_over_cn_items_alone_are_labelled_with_their_chapter() -> None:
    text = "第一章 参保\n一、缴费\n每人每年400元。\n第二章 待遇\n一、门诊\n报销55%。\n"
    doc = parse("cn.txt", text.encode())
    assert [(a.chapter_label, a.label, a.title) for a in doc.articles] == [
        ("第一章", "第一章 一、", "缴费"), ("第二章", "第二章 一、", "门诊")]


def test_shipped_shimen_rules_cite_every_section_in_its_chapter() -> None:
    doc = parse_structure(read_file(HANDBOOK_DIR / "shimen_medical_rules.md"))
    assert doc.title == "石门县城乡居民医疗保障和医疗救助实施细则" and doc.chapters == 5 and doc.warnings == []
    labels = [a.label for a in doc.articles]
    assert len(labels) == len(set(labels)) == 27
    by_label = {a.label: a for a in doc.articles}
    assert "1.2万元" in by_label["第三章 四、"].text and "1.2万元" not in by_label["第三章 三、（三）"].text
    assert by_label["第三章 二、（二）"].chapter_title == "医疗保障待遇 门诊慢特病"
    assert [label for label in labels if label.startswith("第五章")] == [
        "第五章 一、", "第五章 二、", "第五章 三、", "第五章 四、"]


# The four handbooks shipped before the chapter shape was nested, fingerprinted on the code before
# that change (tests/data/… and bench figures rely on them): article count and a hash of every
# document, chapter, label, title, number and text, with the title, chapter count and warnings.
SHIPPED_STRUCTURE = {
    "qingshan_handbook.md": (56, "1f0fde122dde85b5"),
    "yunxi_compilation.md": (61, "ad92942b069527eb"),
    "shiqiao_qa_booklet.md": (31, "22af9c4bdca67ba7"),
    "baishui_compilation.md": (63, "d1a5d4fd9900ff1b"),
}


@pytest.mark.parametrize("name", list(SHIPPED_STRUCTURE))
def test_shipped_handbooks_import_to_exactly_the_same_articles(name: str) -> None:
    path = SAMPLE_HANDBOOK if name == SAMPLE_HANDBOOK.name else HANDBOOK_DIR / name
    doc = parse_file(path).document
    rows = [[a.document, a.chapter_label, a.chapter_title, a.label, a.title, a.number, a.text] for a in doc.articles]
    blob = json.dumps([doc.title, doc.chapters, rows, doc.warnings], ensure_ascii=False)
    assert (len(rows), hashlib.sha256(blob.encode()).hexdigest()[:16]) == SHIPPED_STRUCTURE[name]


def test_overlong_headings_are_cut_to_the_column_width() -> None:
    heading = "住房安全保障" * 60  # a 360-character Word/markdown heading
    doc = parse("long.md", f"# {heading}\n\n## {heading}\n\n### {heading}\n\n每户补助3.5万元。\n".encode())
    assert len(doc.title) == 255
    assert [(len(a.chapter_title), len(a.title)) for a in doc.articles] == [(255, 255)]
    long_name = parse("x" * 300 + ".txt", "第一条 内容。\n".encode())
    assert len(long_name.name) <= 255 and len(long_name.title) <= 255


def test_long_articles_split_at_sentence_ends() -> None:
    sentence = "符合条件的农户可以向村委会提出申请，由乡镇审核后报县里审批并按月发放补助资金。"
    text = sentence * 12
    passages = split_passages(text)
    assert len(passages) > 1
    assert all(p.endswith("。") for p in passages)
    assert all(len(p) <= 300 for p in passages)
    assert "".join(passages) == text


# -- Word ---------------------------------------------------------------------------------------

def test_docx_heading_styles_and_tables() -> None:
    def build(d: docx.Document) -> None:
        d.add_heading("健康扶贫政策问答", level=0)
        d.add_heading("看病报销", level=1)
        d.add_heading("住院押金", level=2)
        d.add_paragraph("在县域内定点医院住院不用交押金。")
        d.add_heading("报销比例", level=2)
        add_table(d, [("医院", "比例"), ("乡镇卫生院", "95%"), ("县医院", "90%")])
        d.add_heading("慢性病", level=1)
        d.add_heading("门诊报销", level=2)
        d.add_paragraph("高血压、糖尿病门诊费用按规定报销。")

    doc = parse("health.docx", docx_bytes(build))
    assert doc.title == "健康扶贫政策问答"
    assert [(a.chapter_title, a.title) for a in doc.articles] == [
        ("看病报销", "住院押金"), ("看病报销", "报销比例"), ("慢性病", "门诊报销")]
    assert "医院：县医院；比例：90%。" in doc.articles[1].text


def test_docx_with_article_markers_keeps_tables_in_their_article() -> None:
    def build(d: docx.Document) -> None:
        d.add_paragraph("第一章 教育")
        d.add_paragraph("第一条 寄宿生生活补助标准见下表。")
        add_table(d, [("学段", "标准"), ("初中", "1250元")])
        d.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
        d.add_paragraph("第二条 高中免学费。")

    doc = parse("edu.docx", docx_bytes(build))
    assert [a.label for a in doc.articles] == ["第一条", "第二条"]
    assert "学段：初中；标准：1250元。" in doc.articles[0].text


def test_docx_chapters_in_heading_styles_nest_their_sections() -> None:
    """A Word 实施细则: 第X章 in a heading style, 一、 and （一） as plain paragraphs, a table in a （一）."""
    def build(d: docx.Document) -> None:
        d.add_heading("某县医疗救助实施细则", level=0)
        d.add_heading("第一章 住院", level=1)
        d.add_paragraph("一、起付标准")
        d.add_paragraph("（一）一般人员。按医院等级确定，见下表。")
        add_table(d, [("医院", "起付线"), ("县医院", "500元")])
        d.add_paragraph("（二）脱贫人口。起付线降低50%。")
        d.add_heading("第二章 救助", level=1)
        d.add_paragraph("一、救助程序")
        d.add_paragraph("出院时直接结算，不用另外申请。")

    doc = parse("xize.docx", docx_bytes(build))
    assert doc.title == "某县医疗救助实施细则"
    assert [(a.label, a.title) for a in doc.articles] == [
        ("第一章 一、（一）", "一般人员"), ("第一章 一、（二）", "脱贫人口"), ("第二章 一、", "救助程序")]
    assert "医院：县医院；起付线：500元。" in doc.articles[0].text


# -- PDF ------------------------------------------------------------------------------------------

def test_pdf_text_is_read_and_page_numbers_dropped() -> None:
    pages = [
        ["某县兜底保障政策汇编", "第一章 低保", "第一条 农村低保标准为每人每年5400元，按月", "发放到一卡通。", "- 1 -"],
        ["第二条 特困人员基本生活标准为每人每月600元。", "- 2 -"],
    ]
    content = make_pdf(pages)
    assert "5400" in PdfReader(io.BytesIO(content)).pages[0].extract_text()
    doc = parse("dibao.pdf", content)
    assert [a.label for a in doc.articles] == ["第一条", "第二条"]
    assert doc.articles[0].text == "农村低保标准为每人每年5400元，按月发放到一卡通。"
    assert "- 2 -" not in doc.articles[1].text


# -- bad files --------------------------------------------------------------------------------------

def encrypted_pdf() -> bytes:
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(make_pdf([["第一条 保密内容。"]]))))
    writer.encrypt("secret", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def blank_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    writer.add_blank_page(595, 842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def picture_only_docx() -> bytes:
    return docx_bytes(lambda d: d.add_picture(io.BytesIO(tiny_png())))


BAD_FILES = [
    ("empty.txt", b"", "空的"),
    ("blank.md", b"  \n\n ", "空的"),
    ("locked.pdf", encrypted_pdf(), "加密"),
    ("scan.pdf", blank_pdf(), "扫描"),
    ("broken.pdf", b"%PDF-1.4\n1 0 obj <<>>\ngarbage", "损坏"),
    ("locked.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + "EncryptedPackage".encode("utf-16-le") + b"\x00" * 64, "加密"),
    ("old.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, ".doc"),
    ("scan.docx", picture_only_docx(), "扫描"),
    ("broken.docx", b"PK\x03\x04not really a zip", "损坏"),
    ("binary.txt", b"\x00\x01\x02\x03" * 10, "损坏"),
    ("table.xlsx", b"PK\x03\x04", "不支持"),
]


@pytest.mark.parametrize(("name", "content", "reason"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_get_a_clear_error_naming_the_file(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(HandbookFileError) as error:
        parse_file(path)
    assert str(error.value).startswith(f"{name}：")
    assert reason in str(error.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(HandbookFileError, match="nothere.md：找不到这个文件"):
        parse_file(tmp_path / "nothere.md")


def test_an_outline_heading_with_nothing_under_it_is_skipped_with_a_warning() -> None:
    """Its title alone would be cited as an answer ("目的。")."""
    text = "第一章 总则\n一、目的\n二、适用范围\n本细则适用于本县参保人员。\n"
    doc = parse("empty.txt", text.encode())
    assert [(a.label, a.text) for a in doc.articles] == [("第一章 二、", "本细则适用于本县参保人员。")]
    assert doc.warnings == ["第一章 一、目的只有标题，没有内容，已跳过"]


def test_a_repeated_nested_label_is_cited_once_with_its_chapter(tmp_path: Path) -> None:
    from knowledge import KnowledgeBase
    from knowledge.ingest.importer import import_files
    from knowledge.testing import sqlite_database

    path = tmp_path / "某县细则.txt"
    path.write_text("第一章 总则\n一、目的\n为防止返贫，制定本细则。\n一、依据\n根据上级规定。\n", encoding="utf-8")
    db = sqlite_database(tmp_path)
    import_files(db, [path])
    cites = [a.cite for a in KnowledgeBase.open(db)._fresh_snapshot().articles]
    assert cites and all(c is None or "第一章第一章" not in c for c in cites), cites
