"""A campaign's results as an XLSX workbook (``sisong survey export``, the console's 下载).

Sheets: 答卷 (a row per invited household: where, who (户主 masked), the helper,
the disposition, each answer as its option text and code, a multi-select as
one 0/1 column per option, the comment, when), 各村汇总 (the figures per village
with the rates), 走访 (the visit checks of those households). openpyxl writes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from openpyxl import Workbook
from openpyxl.styles import Font
from sqlalchemy.orm import Session

from bot.survey.campaigns import campaign_questionnaire
from storage import surveys
from storage.clock import local
from storage.models.surveys import CHECKS, DISPOSITION_LABELS
from storage.privacy import mask_name
from storage.scope import EVERYTHING, Scope
from storage.sheets import text_not_formulas

if TYPE_CHECKING:
    from bot.survey.questionnaire import Questionnaire


def answer_headers(questionnaire: "Questionnaire") -> list[str]:
    headers = []
    for n, question in enumerate(questionnaire.questions, 1):
        if question.kind == "single":
            headers += [f"{n}.{question.key}", f"{n}.{question.key}_code"]
        elif question.kind == "multi":
            headers += [f"{n}.{question.key}_{option.code}{option.label}" for option in question.options]
        else:
            headers.append(f"{n}.{question.key}")
    return headers


def answer_cells(questionnaire: "Questionnaire", answers: dict) -> list[object]:
    cells: list[object] = []
    for question in questionnaire.questions:
        value = answers.get(question.key)
        if question.kind == "single":
            if isinstance(value, tuple) and value:
                cells += [question.option(value[0]).label, value[0]]
            else:
                cells += ["", None]
        elif question.kind == "multi":
            chosen = set(value) if isinstance(value, tuple) else set()
            answered = isinstance(value, tuple)
            cells += [(1 if option.code in chosen else 0) if answered else None for option in question.options]
        else:
            cells.append(value if isinstance(value, str) else "")
    return cells


def export_campaign(session: Session, township_id: int, campaign_id: int, path: Path, *,
                    scope: Scope = EVERYTHING, zone: str = "Asia/Shanghai") -> int:
    """Write the workbook; returns the number of household rows."""
    camp = surveys.campaign(session, township_id, campaign_id)
    questionnaire = campaign_questionnaire(camp)
    rows = surveys.response_rows(session, campaign_id, scope=scope)
    book = Workbook()
    sheet = book.active
    sheet.title = "答卷"
    header = ["村", "组", "户编号", "户主", "帮扶责任人", "状态", *answer_headers(questionnaire), "答完时间"]
    sheet.append(header)
    for row in rows:
        sheet.append([row.village, row.hamlet, row.number, mask_name(row.head_name), row.helper,
                      DISPOSITION_LABELS.get(row.disposition, row.disposition),
                      *answer_cells(questionnaire, row.answers), local(row.completed_at, zone)])
    summary = book.create_sheet("各村汇总")
    keys = list(surveys.STATS_KEYS)
    summary.append(["村", *keys])
    groups = surveys.stats(session, campaign_id, "village", scope=scope)
    for name, figures in groups.items():
        summary.append([name, *[figures[k] for k in keys]])
    whole = surveys.total(groups)
    summary.append(["合计", *[whole[k] for k in keys]])
    visits_sheet = book.create_sheet("走访")
    visits_sheet.append(["户编号", "户主", "走访日期", "走访干部", *[label for _, label in CHECKS], "生产生活和思想状况"])
    numbers = {row.number for row in rows}
    for visit, household in surveys.visits(session, township_id, scope=scope):
        if household.number not in numbers:
            continue
        visits_sheet.append([household.number, mask_name(household.head_name), visit.visited_on.isoformat(),
                             visit.cadre_name, *["达标" if getattr(visit, key) else "不达标" for key, _ in CHECKS],
                             visit.notes])
    for ws in (sheet, summary, visits_sheet):
        for cell in ws[1]:
            cell.font = Font(bold=True)
        ws.freeze_panes = "A2"
    text_not_formulas(book)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return len(rows)
