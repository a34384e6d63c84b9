"""政策库: the handbook, its FAQ and synonyms, and 试一试 — console pages and /api/v1 routes.

Everyone may read the handbook and try questions; importing, undoing an import
and editing FAQ and synonyms change what every household is told, township-wide,
so only 镇管理员 may do them. Each operation is one service function in
knowledge/ (the CLI calls the same ones), which writes its audit row in its own
transaction and bumps the generation every worker reloads on.

Uploads are read here, not by FastAPI's form parsing: the request body is
counted while it streams and refused past ``MAX_UPLOAD_BYTES`` (413) before it
is spooled anywhere, and the files go to ``import_files`` as bytes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from bot.console.deps import ApiCsrf, CurrentUser, PageUser, ServicesDep, form_csrf, require_role
from bot.console.templating import render
from bot.console.uploads import read_multipart
from knowledge.explain import Explanation
from knowledge.ingest.importer import STATUS_LABELS, HandbookImportError, HandbookUpload, ImportReport, import_files
from knowledge.ingest.undo import PendingUndo, UndoError, UndoReport, pending_undo, undo_last_import
from knowledge.store import faq as faq_store
from knowledge.store.handbook import (
    ArticleDetail,
    DocumentDetail,
    DocumentSummary,
    article_detail,
    document_detail,
    list_documents,
)
from knowledge.store.synonyms import SynonymRecord, add_synonym, list_synonyms, remove_synonym
from storage.accounts import ADMIN, Principal
from storage.clock import local
from storage.db import Database
from storage.models.knowledge import KbFaq

pages = APIRouter(prefix="/console", include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["政策库"])

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # one request; a 200-page handbook as .docx is well under 1 MB
MAX_FILES = 20
MAX_QUESTION = 2000  # longer than any message WeChat delivers; past 300 characters the answer is a hand-over
TOO_BIG = "文件太大了：一次最多上传 20 MB。请分几次导入，或把文件里的图片去掉后再试。"
NOTHING_IMPORTED = "没有导入任何内容。请处理下面的文件后重新导入。"
ADMIN_ONLY = "政策库、常见问题和同义词全镇共用，只有镇管理员可以修改。"

Admin = Annotated[Principal, Depends(require_role(ADMIN))]


def _admin_only(user: Principal) -> None:
    if user.role != ADMIN:
        raise HTTPException(status.HTTP_403_FORBIDDEN, ADMIN_ONLY)


# -- reading an upload ------------------------------------------------------------------------------

@dataclass
class Upload:
    files: list[HandbookUpload]
    fields: dict[str, str]


async def read_upload(request: Request) -> Upload:
    """The multipart body's ``files`` and other fields, refusing more than MAX_UPLOAD_BYTES as it arrives."""
    form = await read_multipart(request, field_name="files", max_bytes=MAX_UPLOAD_BYTES, too_big=TOO_BIG,
                                max_files=MAX_FILES,
                                hint="请用 multipart/form-data 上传文件（字段名 files，可以有多个）。")
    return Upload([HandbookUpload(f.name or "未命名", f.data) for f in form.files], form.fields)


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "on", "yes")


async def import_upload(services: Any, upload: Upload, user: Principal) -> ImportReport:
    """``import_files`` on the uploaded files (off the event loop: parsing and indexing take a second or so)."""
    return await run_in_threadpool(import_files, services.db, upload.files,
                                   replace=_flag(upload.fields.get("replace")), actor=user)


# -- shared shapes -----------------------------------------------------------------------------------

def _when(moment: datetime, zone: str) -> str:
    """11月27日 15:02, on the township's clock."""
    month, day, clock = local(moment, zone, "%m|%d|%H:%M").split("|")
    return f"{int(month)}月{int(day)}日 {clock}"


def undo_label(pending: PendingUndo, zone: str) -> str:
    """What the undo button says it will undo: 撤销 11月27日 15:02 的导入（3 个文件）."""
    return f"撤销 {_when(pending.imported_at, zone)} 的导入（{len(pending.files)} 个文件）"


class FileReportOut(BaseModel):
    name: str
    title: str
    status: str = Field(description="imported | updated | unchanged")
    status_label: str = Field(description="新导入 / 已更新 / 未变化")
    chapters: int
    articles: int
    passages: int
    warnings: list[str]


class HandbookImportOut(BaseModel):
    files: list[FileReportOut]
    removed: list[str] = Field(description="导入后移除的文件（--replace，或被取代的示例汇编）")
    sample_removed: bool
    changed: bool
    message: str


class ImportFailureOut(BaseModel):
    file: str
    reason: str


def import_report_out(report: ImportReport) -> HandbookImportOut:
    files = [FileReportOut(name=f.name, title=f.title, status=f.status,
                           status_label=STATUS_LABELS.get(f.status, f.status), chapters=f.chapters,
                           articles=f.articles, passages=f.passages, warnings=list(f.warnings))
             for f in report.files]
    message = (f"已导入 {report.documents} 个文件，共 {report.chapters} 章 {report.articles} 条。" if report.changed
               else "这些文件之前已经导入过，政策库没有变化。")
    return HandbookImportOut(files=files, removed=report.removed, sample_removed=report.sample_removed,
                           changed=report.changed, message=message)


def _failures(exc: HandbookImportError) -> list[ImportFailureOut]:
    return [ImportFailureOut(file=f.path.name, reason=f.reason) for f in exc.failures]


class UndoInfoOut(BaseModel):
    possible: bool
    description: str
    imported_at: datetime | None = None
    actor: str | None = None
    files: list[str] = []


class UndoReportOut(BaseModel):
    message: str
    files: list[str]
    removed: list[str]
    restored: list[str]
    sample_restored: bool


def undo_info(db: Database, zone: str) -> UndoInfoOut:
    pending = pending_undo(db)
    if pending is None:
        return UndoInfoOut(possible=False, description="没有可以撤销的导入。")
    if not pending.possible:
        return UndoInfoOut(possible=False, description="最近一次导入之后政策库又有了变化，不能再撤销。",
                           imported_at=pending.imported_at, actor=pending.actor, files=pending.files)
    return UndoInfoOut(possible=True, description=undo_label(pending, zone), imported_at=pending.imported_at,
                       actor=pending.actor, files=pending.files)


def undo_message(report: UndoReport, zone: str) -> str:
    parts = [f"已撤销 {_when(report.imported_at, zone)} 的导入"]
    if report.removed:
        parts.append(f"移除了 {'、'.join(report.removed)}")
    if report.restored:
        parts.append(f"恢复了 {'、'.join(report.restored)}")
    text = "，".join(parts) + "。"
    if report.sample_restored:
        text += "示例汇编（青山县，虚构）又回来了。"
    return text


def undo_report_out(report: UndoReport, zone: str) -> UndoReportOut:
    return UndoReportOut(message=undo_message(report, zone), files=report.files, removed=report.removed,
                         restored=report.restored, sample_restored=report.sample_restored)


def _question(q: str) -> str:
    q = q.strip()
    if not q:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "请输入要试的问题。")
    return q


# -- FAQ and synonyms: the service calls with the checks both pages and the API need ---------------

def _faq_exists(db: Database, faq_id: int) -> bool:
    with db.session() as session:
        return session.get(KbFaq, faq_id) is not None


def _faq_missing(faq_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"没有编号为 {faq_id} 的常见问题，可能已经删除了。")


def add_faq(db: Database, question: str, answer: str, user: Principal) -> int:
    try:
        return faq_store.add_faq(db, question, answer, actor=user)
    except faq_store.FaqError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None


def update_faq(db: Database, faq_id: int, question: str, answer: str, user: Principal) -> None:
    if not _faq_exists(db, faq_id):
        raise _faq_missing(faq_id)
    try:
        result = faq_store.update_faq(db, faq_id, question, answer, actor=user)
    except faq_store.FaqError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    if result is False:
        raise _faq_missing(faq_id)


def remove_faq(db: Database, faq_id: int, user: Principal) -> None:
    if not faq_store.remove_faq(db, faq_id, actor=user):
        raise _faq_missing(faq_id)


@dataclass(frozen=True)
class SynonymAdded:
    id: int
    phrase: str
    expansion: str
    missing: list[str]  # expansion words the handbook never uses: the rule cannot find them

    @property
    def warning(self) -> str | None:
        if not self.missing:
            return None
        words = "".join(f"“{w}”" for w in self.missing)
        return (f"汇编里没有用过{words}，按{'它' if len(self.missing) == 1 else '这些词'}找不到条文。"
                "请写汇编原文里的用语（可以先在政策库的“试一试”里看一个问题搜到了哪些词）。")


def add_synonym_rule(services: Any, phrase: str, expansion: str, user: Principal) -> SynonymAdded:
    try:
        synonym_id = add_synonym(services.db, phrase, expansion, actor=user)
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"{exc}。") from None
    rule = next((r for r in list_synonyms(services.db) if r.id == synonym_id), None)
    phrase, expansion = (rule.phrase, rule.expansion) if rule else (phrase, expansion)
    return SynonymAdded(synonym_id, phrase, expansion, services.knowledge.missing_words(expansion.split()))


def remove_synonym_rule(db: Database, synonym_id: int, user: Principal) -> None:
    if not remove_synonym(db, synonym_id, actor=user):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"没有编号为 {synonym_id} 的同义词，可能已经删除了。")


# -- API -------------------------------------------------------------------------------------------

class FaqIn(BaseModel):
    question: str = Field(min_length=1, max_length=500, description="群众会怎么问")
    answer: str = Field(min_length=1, max_length=2000, description="答案（约 600 个汉字以内）")


class FaqOut(BaseModel):
    id: int
    question: str
    answer: str
    from_unanswered_id: int | None = None


class SynonymIn(BaseModel):
    phrase: str = Field(min_length=1, max_length=64, description="群众的说法，如“娃儿”")
    expansion: str = Field(min_length=1, max_length=255, description="汇编里的用语，多个用空格隔开，如“子女 学生”")


class SynonymOut(BaseModel):
    id: int
    phrase: str
    expansion: str


class SynonymAddedOut(SynonymOut):
    missing_words: list[str] = Field(description="汇编里没有出现的政策用语（按它们找不到条文）")
    warning: str | None = None


class Done(BaseModel):
    message: str


IdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="编号")]


@api.get("/handbook/documents", response_model=list[DocumentSummary])
def api_documents(services: ServicesDep, user: CurrentUser) -> list[DocumentSummary]:
    """已导入的政策汇编文件（`sample` 为 true 的是内置的虚构示例）。"""
    return list_documents(services.db)


@api.get("/handbook/documents/{document_id}", response_model=DocumentDetail,
         responses={404: {"description": "没有这个文件"}})
def api_document(document_id: IdPath, services: ServicesDep, user: CurrentUser) -> DocumentDetail:
    """一个文件的章和条（按原文顺序）。"""
    detail = document_detail(services.db, document_id)
    if detail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"没有编号为 {document_id} 的政策文件。")
    return detail


@api.get("/handbook/articles/{article_id}", response_model=ArticleDetail,
         responses={404: {"description": "没有这一条"}})
def api_article(article_id: IdPath, services: ServicesDep, user: CurrentUser) -> ArticleDetail:
    """一条的全文，带它的条号（第X条）和所在的章。"""
    detail = article_detail(services.db, article_id)
    if detail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"没有编号为 {article_id} 的条文。")
    return detail


@api.get("/handbook/try", response_model=Explanation, responses={400: {"description": "问题是空的"}})
def api_try(services: ServicesDep, user: CurrentUser,
            q: Annotated[str, Query(min_length=1, max_length=MAX_QUESTION, description="像群众一样问")]) -> Explanation:
    """试一试：群众这样问会收到什么回复（`reply`），以及为什么：候选条文和分数、引用了哪一条、
    用上的同义词和同音纠错、会不会转人工和原因。不会记入待答问题。"""
    return services.knowledge.explain(_question(q))


@api.get("/handbook/undo", response_model=UndoInfoOut)
def api_undo_info(services: ServicesDep, user: CurrentUser) -> UndoInfoOut:
    """最近一次导入能不能撤销、撤销的是哪次导入。"""
    return undo_info(services.db, services.settings.timezone)


@api.post("/handbook/import", response_model=HandbookImportOut,
          responses={400: {"description": "有文件不能导入，什么都没有导入（`failures` 列出每个文件的原因）"},
                     403: {"description": "不是镇管理员"}, 413: {"description": "超过 20 MB"},
                     415: {"description": "不是 multipart/form-data"}},
          openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
              "type": "object", "required": ["files"], "properties": {
                  "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                            "description": ".docx / .pdf / .md / .txt，可以多个"},
                  "replace": {"type": "boolean", "description": "导入后只保留这些文件"}}}}}}})
async def api_import(request: Request, services: ServicesDep, _: Admin, user: ApiCsrf) -> Response:
    """导入政策汇编（和 `sisong handbook import` 一样）：一个文件出错，整批都不导入。只有镇管理员可以导入。"""
    upload = await read_upload(request)
    if not upload.files:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "请选择要导入的文件（字段名 files）。")
    try:
        report = await import_upload(services, upload, user)
    except HandbookImportError as exc:
        return JSONResponse({"detail": NOTHING_IMPORTED, "failures": [f.model_dump() for f in _failures(exc)]},
                            status_code=status.HTTP_400_BAD_REQUEST)
    return JSONResponse(import_report_out(report).model_dump())


@api.post("/handbook/undo", response_model=UndoReportOut,
          responses={409: {"description": "没有可以撤销的导入"}, 403: {"description": "不是镇管理员"}})
def api_undo(services: ServicesDep, _: Admin, user: ApiCsrf) -> UndoReportOut:
    """撤销最近一次导入：文件、条文、检索索引和示例汇编都回到导入之前。只能撤销一次。"""
    try:
        report = undo_last_import(services.db, actor=user)
    except UndoError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return undo_report_out(report, services.settings.timezone)


@api.get("/handbook/faqs", response_model=list[FaqOut])
def api_faqs(services: ServicesDep, user: CurrentUser) -> list[FaqOut]:
    """常见问题（在查汇编之前先匹配）。"""
    return [FaqOut(**asdict(f)) for f in faq_store.list_faqs(services.db)]


@api.post("/handbook/faqs", response_model=FaqOut, status_code=status.HTTP_201_CREATED)
def api_faq_add(body: FaqIn, services: ServicesDep, _: Admin, user: ApiCsrf) -> FaqOut:
    """添加一条常见问题。只有镇管理员可以。"""
    faq_id = add_faq(services.db, body.question, body.answer, user)
    return next(FaqOut(**asdict(f)) for f in faq_store.list_faqs(services.db) if f.id == faq_id)


@api.put("/handbook/faqs/{faq_id}", response_model=FaqOut, responses={404: {"description": "没有这条常见问题"}})
def api_faq_update(faq_id: IdPath, body: FaqIn, services: ServicesDep, _: Admin, user: ApiCsrf) -> FaqOut:
    """修改一条常见问题。只有镇管理员可以。"""
    update_faq(services.db, faq_id, body.question, body.answer, user)
    return next(FaqOut(**asdict(f)) for f in faq_store.list_faqs(services.db) if f.id == faq_id)


@api.delete("/handbook/faqs/{faq_id}", response_model=Done, responses={404: {"description": "没有这条常见问题"}})
def api_faq_remove(faq_id: IdPath, services: ServicesDep, _: Admin, user: ApiCsrf) -> Done:
    """删除一条常见问题。只有镇管理员可以。"""
    remove_faq(services.db, faq_id, user)
    return Done(message=f"已删除常见问题 {faq_id}。")


@api.get("/handbook/synonyms", response_model=list[SynonymOut])
def api_synonyms(services: ServicesDep, user: CurrentUser) -> list[SynonymOut]:
    """干部添加的同义词（内置的在 knowledge/data/synonyms.txt）。"""
    return [SynonymOut(**asdict(r)) for r in list_synonyms(services.db)]


@api.post("/handbook/synonyms", response_model=SynonymAddedOut, status_code=status.HTTP_201_CREATED)
def api_synonym_add(body: SynonymIn, services: ServicesDep, _: Admin, user: ApiCsrf) -> SynonymAddedOut:
    """添加同义词：群众说 `phrase` 时按 `expansion` 去找。`missing_words` 是汇编里没有的词。只有镇管理员可以。"""
    added = add_synonym_rule(services, body.phrase, body.expansion, user)
    return SynonymAddedOut(id=added.id, phrase=added.phrase, expansion=added.expansion, missing_words=added.missing,
                           warning=added.warning)


@api.delete("/handbook/synonyms/{synonym_id}", response_model=Done, responses={404: {"description": "没有这条同义词"}})
def api_synonym_remove(synonym_id: IdPath, services: ServicesDep, _: Admin, user: ApiCsrf) -> Done:
    """删除一条同义词。只有镇管理员可以。"""
    remove_synonym_rule(services.db, synonym_id, user)
    return Done(message=f"已删除同义词 {synonym_id}。")


# -- pages -------------------------------------------------------------------------------------------

def _main_page(request: Request, services: Any, user: Principal, status_code: int = 200, **context: Any) -> Response:
    zone = services.settings.timezone
    return render(request, "handbook.html", user, status_code, documents=list_documents(services.db),
                  undo=undo_info(services.db, zone) if user.role == ADMIN else None, admin=user.role == ADMIN,
                  max_mb=MAX_UPLOAD_BYTES // (1024 * 1024), **context)


@pages.get("/handbook", response_class=HTMLResponse)
def page_handbook(request: Request, services: ServicesDep, user: PageUser) -> Response:
    return _main_page(request, services, user)


@pages.get("/handbook/try", response_class=HTMLResponse)
def page_try(request: Request, services: ServicesDep, user: PageUser,
             q: Annotated[str, Query(max_length=MAX_QUESTION)] = "") -> Response:
    if not q.strip():
        return _main_page(request, services, user, status.HTTP_400_BAD_REQUEST, q=q,
                          flashes=[("error", "请输入要试的问题。")])
    return _main_page(request, services, user, q=q, explanation=services.knowledge.explain(q.strip()))


@pages.post("/handbook/import", response_class=HTMLResponse)
async def page_import(request: Request, services: ServicesDep, user: PageUser) -> Response:
    _admin_only(user)
    upload = await read_upload(request)
    form_csrf(user, upload.fields.get("csrf", ""))
    if not upload.files:
        return _main_page(request, services, user, status.HTTP_400_BAD_REQUEST,
                          flashes=[("error", "请先选择要导入的文件。")])
    try:
        report = await import_upload(services, upload, user)
    except HandbookImportError as exc:
        return _main_page(request, services, user, status.HTTP_400_BAD_REQUEST,
                          flashes=[("error", NOTHING_IMPORTED)], failures=_failures(exc))
    out = import_report_out(report)
    flashes = [("ok" if report.changed else "warn", out.message)]
    if report.sample_removed:
        flashes.append(("warn", "内置的示例汇编（青山县，虚构）已移除，现在只按导入的政策汇编回答。"))
    return _main_page(request, services, user, flashes=flashes, report=out)


@pages.post("/handbook/undo", response_class=HTMLResponse)
def page_undo(request: Request, services: ServicesDep, user: PageUser,
              csrf: Annotated[str, Form()] = "") -> Response:
    _admin_only(user)
    form_csrf(user, csrf)
    try:
        report = undo_last_import(services.db, actor=user)
    except UndoError as exc:
        return _main_page(request, services, user, status.HTTP_409_CONFLICT, flashes=[("warn", str(exc))])
    return _main_page(request, services, user,
                      flashes=[("ok", undo_message(report, services.settings.timezone))])


@pages.get("/handbook/documents/{document_id}", response_class=HTMLResponse)
def page_document(request: Request, document_id: IdPath, services: ServicesDep, user: PageUser) -> Response:
    detail = document_detail(services.db, document_id)
    if detail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "没有这个政策文件，可能已经被新导入的文件取代了。")
    return render(request, "handbook_document.html", user, detail=detail)


@pages.get("/handbook/articles/{article_id}", response_class=HTMLResponse)
def page_article(request: Request, article_id: IdPath, services: ServicesDep, user: PageUser) -> Response:
    detail = article_detail(services.db, article_id)
    if detail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "没有这一条，可能已经被新导入的文件取代了。")
    return render(request, "handbook_article.html", user, article=detail)


def _faq_page(request: Request, services: Any, user: Principal, status_code: int = 200, **context: Any) -> Response:
    return render(request, "handbook_faqs.html", user, status_code, faqs=faq_store.list_faqs(services.db),
                  admin=user.role == ADMIN, **context)


@pages.get("/handbook/faqs", response_class=HTMLResponse)
def page_faqs(request: Request, services: ServicesDep, user: PageUser) -> Response:
    return _faq_page(request, services, user)


def _page_write(request: Request, services: Any, user: Principal, csrf: str, page: Any, action: Any,
                done: str, **context: Any) -> Response:
    """A page's POST: admin only, this session's form, then the action; its refusal shown on the same page."""
    _admin_only(user)
    form_csrf(user, csrf)
    try:
        extra = action() or {}
    except HTTPException as exc:
        return page(request, services, user, exc.status_code, flashes=[("error", exc.detail)], **context)
    return page(request, services, user, flashes=[("ok", done)] + extra.pop("flashes", []), **extra)


@pages.post("/handbook/faqs", response_class=HTMLResponse)
def page_faq_add(request: Request, services: ServicesDep, user: PageUser, csrf: Annotated[str, Form()] = "",
                 question: Annotated[str, Form(max_length=500)] = "",
                 answer: Annotated[str, Form(max_length=2000)] = "") -> Response:
    def add() -> None:
        add_faq(services.db, question, answer, user)

    return _page_write(request, services, user, csrf, _faq_page, add, "已添加常见问题。",
                       question=question, answer=answer)


@pages.post("/handbook/faqs/{faq_id}", response_class=HTMLResponse)
def page_faq_update(request: Request, faq_id: IdPath, services: ServicesDep, user: PageUser,
                    csrf: Annotated[str, Form()] = "", question: Annotated[str, Form(max_length=500)] = "",
                    answer: Annotated[str, Form(max_length=2000)] = "") -> Response:
    return _page_write(request, services, user, csrf, _faq_page,
                       lambda: update_faq(services.db, faq_id, question, answer, user), f"已修改常见问题 {faq_id}。")


@pages.post("/handbook/faqs/{faq_id}/remove", response_class=HTMLResponse)
def page_faq_remove(request: Request, faq_id: IdPath, services: ServicesDep, user: PageUser,
                    csrf: Annotated[str, Form()] = "") -> Response:
    return _page_write(request, services, user, csrf, _faq_page, lambda: remove_faq(services.db, faq_id, user),
                       f"已删除常见问题 {faq_id}。")


def _synonym_page(request: Request, services: Any, user: Principal, status_code: int = 200,
                  **context: Any) -> Response:
    rules: list[SynonymRecord] = list_synonyms(services.db)
    return render(request, "handbook_synonyms.html", user, status_code, rules=rules, admin=user.role == ADMIN,
                  **context)


@pages.get("/handbook/synonyms", response_class=HTMLResponse)
def page_synonyms(request: Request, services: ServicesDep, user: PageUser) -> Response:
    return _synonym_page(request, services, user)


@pages.post("/handbook/synonyms", response_class=HTMLResponse)
def page_synonym_add(request: Request, services: ServicesDep, user: PageUser, csrf: Annotated[str, Form()] = "",
                     phrase: Annotated[str, Form(max_length=64)] = "",
                     expansion: Annotated[str, Form(max_length=255)] = "") -> Response:
    def add() -> dict[str, Any]:
        added = add_synonym_rule(services, phrase, expansion, user)
        return {"added": added, "flashes": [("warn", added.warning)] if added.warning else []}

    done = f"已添加同义词：{phrase.strip()} → {expansion.strip()}。"
    return _page_write(request, services, user, csrf, _synonym_page, add, done, phrase=phrase, expansion=expansion)


@pages.post("/handbook/synonyms/{synonym_id}/remove", response_class=HTMLResponse)
def page_synonym_remove(request: Request, synonym_id: IdPath, services: ServicesDep, user: PageUser,
                        csrf: Annotated[str, Form()] = "") -> Response:
    return _page_write(request, services, user, csrf, _synonym_page,
                       lambda: remove_synonym_rule(services.db, synonym_id, user), f"已删除同义词 {synonym_id}。")
