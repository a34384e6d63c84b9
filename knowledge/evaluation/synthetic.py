"""Synthetic handbooks for speed measurements: a 500-article markdown file and a 200-page .docx.

Made from the shipped sample plus generated articles in the same style, so
the tokenizer and index see realistic text at a realistic size.
"""

from __future__ import annotations

import random
from pathlib import Path

import docx
from docx.enum.text import WD_BREAK

from knowledge.nlp.cn_numbers import parse_cn_number

TOWNS = ["青石镇", "柳河乡", "白岩镇", "龙潭乡", "松林镇", "双河乡", "石门镇", "桃源乡", "高坪镇", "清水乡"]
PROGRAMS = ["茶叶种植", "肉牛养殖", "中药材基地", "乡村公路养护", "饮水工程管护", "光伏电站运维", "竹编加工",
            "电商服务站", "冷链仓储", "劳务合作社", "蜂蜜加工", "林下养鸡", "烤烟种植", "蔬菜大棚", "农机合作社"]
GROUPS = ["脱贫户", "监测户", "低保户", "残疾人家庭", "易地搬迁户", "留守老人家庭", "返乡创业人员"]
MATERIALS = ["身份证", "户口簿", "一卡通", "申请表", "收入证明", "合作协议", "项目照片"]
PLACES = ["村委会", "乡镇为民服务中心", "县农业农村局", "县人社局", "乡镇财政所"]


def cn_number(n: int) -> str:
    digits = "零一二三四五六七八九"
    if n < 10:
        return digits[n]
    if n < 20:
        return "十" + (digits[n % 10] if n % 10 else "")
    if n < 100:
        return digits[n // 10] + "十" + (digits[n % 10] if n % 10 else "")
    hundreds, rest = divmod(n, 100)
    text = digits[hundreds] + "百"
    if rest == 0:
        return text
    if rest < 10:
        return text + "零" + digits[rest]
    return text + (digits[rest // 10] + "十" + (digits[rest % 10] if rest % 10 else ""))


def _article_body(rng: random.Random, town: str, program: str) -> str:
    group = rng.choice(GROUPS)
    amount = rng.choice([300, 500, 800, 1000, 1500, 2000, 3000, 5000])
    materials = "、".join(rng.sample(MATERIALS, 3))
    place = rng.choice(PLACES)
    return (f"{town}对参与{program}项目的{group}给予扶持，每户每年补助{amount}元，连续扶持不超过3年。"
            f"申请时带{materials}到{place}办理，经村级评议、公示5天后发放到“一卡通”。"
            f"项目由{town}人民政府负责验收，发现虚报冒领的，追回资金并取消资格。")


def synthetic_markdown(sample: Path, articles: int, seed: int = 7) -> str:
    """The sample handbook followed by generated chapters, ``articles`` articles in all."""
    rng = random.Random(seed)
    text = sample.read_text(encoding="utf-8").rstrip() + "\n"
    existing = sum(1 for line in text.splitlines() if line.startswith("第") and "条【" in line)
    number, chapter = existing, 12
    while number < articles:
        chapter += 1
        town = TOWNS[(chapter - 13) % len(TOWNS)]
        text += f"\n## 第{cn_number(chapter)}章 {town}特色产业扶持\n\n"
        for program in rng.sample(PROGRAMS, min(len(PROGRAMS), articles - number)):
            number += 1
            text += f"第{cn_number(number)}条【{town}{program}扶持】{_article_body(rng, town, program)}\n\n"
    return text


def synthetic_docx(path: Path, pages: int = 200, articles_per_page: int = 3, seed: int = 11) -> int:
    """Write a ``pages``-page handbook (explicit page breaks) with tables; returns the article count."""
    rng = random.Random(seed)
    document = docx.Document()
    document.add_heading("青山县产业扶持政策汇编（合订本）", level=0)
    number = 0
    for page in range(pages):
        if page % 10 == 0:
            town = TOWNS[(page // 10) % len(TOWNS)]
            document.add_heading(f"第{cn_number(page // 10 + 1)}章 {town}扶持政策", level=1)
            table = document.add_table(rows=1, cols=3)
            for cell, header in zip(table.rows[0].cells, ("项目", "对象", "标准")):
                cell.text = header
            for program in rng.sample(PROGRAMS, 4):
                row = table.add_row().cells
                row[0].text, row[1].text = program, rng.choice(GROUPS)
                row[2].text = f"每户每年{rng.choice([500, 800, 1000, 2000])}元"
        for _ in range(articles_per_page):
            number += 1
            program = rng.choice(PROGRAMS)
            document.add_paragraph(f"第{cn_number(number)}条【{town}{program}】{_article_body(rng, town, program)}"
                                   + _article_body(rng, town, rng.choice(PROGRAMS)))
        document.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
    document.save(str(path))
    assert parse_cn_number(cn_number(number)) == number
    return number
