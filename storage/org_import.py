"""Importing the organisation and the households: resolve names against the database, then write.

The last of three steps (read: ``storage.sheets``; validate: ``storage.import_rows``).
The command line calls these functions and the web console will call them
with an uploaded file, so both show the same counts and the same reasons.

An import is all or nothing: every row is checked — its cells, then the
villages, 组, cadres and teams it names — before anything is written, and one
bad row means nothing is imported, with every bad row reported. Cadres fix the
file in Excel and import it again; a half-imported roster would leave them
guessing which rows made it.

Re-importing is safe: households are matched by 户编号, villages and groups by
name, cadres by name and phone. A column missing from the file leaves that
field as it is; a blank cell in a column the file has clears it (the file is
the cadres' record of those households). Nothing is ever deleted: a household
or cadre missing from the file stays, because bindings and notices refer to it.

Scope: an import runs for an account (``storage.scope``). The CLI passes
``EVERYTHING``; a village cadre's rows for villages they do not cover, or for
a 户编号 registered in such a village, are row errors like any other, and a
read-only account is refused before anything is read. Every import that
writes leaves an audit row (``households.import``: file name and counts).

The console checks an upload and keeps what it checked
(:func:`check_households_upload`) until the cadre confirms
(:func:`apply_households_upload`); the confirmation checks again and refuses
if the plan is no longer the one the cadre read.

Logs carry counts only, never names or phones.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage import uploads
from storage.db import Database
from storage.households import ensure_township
from storage.import_rows import (
    CadreRecord,
    GroupRecord,
    HouseholdRecord,
    OrgRecords,
    RowError,
    validate_households,
    validate_org,
    without_unkept_columns,
)
from storage.models.base import utcnow
from storage.models.org import Area, Cadre, Hamlet, Household, MessagingGroup, Team, Village
from storage.privacy import mask_text
from storage.scope import EVERYTHING, OutOfScope, Scope
from storage.sheets import Row, Sheet, SheetError, read_table

if TYPE_CHECKING:
    from storage.accounts import Principal

log = logging.getLogger(__name__)

# Household fields an import compares, in the order changes are listed; JSON uses the keys.
FIELD_LABELS = {
    "head_name": "户主姓名",
    "village": "村",
    "hamlet": "组",
    "population": "人口数",
    "labourers": "劳动力人数",
    "work_intent": "务工意向",
    "helper": "帮扶责任人",
    "team": "先锋队",
    "phone": "联系电话",
    "monitored": "监测对象",
    "lifted": "脱贫状态",
}
MISSING_HINT = ("表里有系统里还没有的村、片区、组或干部：先导入组织表（sisong org import）登记村和干部，"
                "或导入户时选“自动新建”（命令行加 --create-missing）。")
# For accounts limited to some villages, who may not create villages or cadres (see import_households).
MISSING_HINT_SCOPED = "表里有系统里还没有的村、组或干部：请镇管理员先登记（导入组织表），再导入这份文件。"
NO_CREATE = "自动新建村、组和帮扶责任人只有镇管理员能用。请镇管理员先登记，或请镇管理员导入这份文件。"
CONFLICT = "导入时数据正被别人修改（可能有人同时在导入），没有导入任何内容。请稍后重新导入。"
CHANGED = "核对之后系统里的户信息有了变化（可能有人刚导入过），这次没有导入任何内容。请重新上传文件，再核对一遍。"
EXPIRED = "这份文件已经过期或已经导入过了，请重新上传。"
UNREADABLE = "这个文件打不开。请导入 .csv 或 .xlsx 文件（在 Excel 里“另存为”即可）。"
EMPTY = "文件是空的。请导入有户信息的 .csv 或 .xlsx 文件。"
NOT_A_SHEET = "这不是 CSV 或 Excel 文件（像是照片或 PDF）。请导入 .csv 或 .xlsx 文件。"
# What people pick by mistake on a phone: a photo of the roster, a PDF of it. Said plainly, not as "bad encoding".
_NOT_SHEETS = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"%PDF", b"RIFF", b"\x00\x00\x00")
# An uploaded roster of a few thousand households is well under 1 MB; 5 MB leaves room for formatting.
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
TOO_LARGE = f"文件太大了（最多 {MAX_UPLOAD_BYTES // (1024 * 1024)} MB）。请只保留户信息这一张表，另存为 .xlsx 或 CSV 后再导入。"
# An XLSX is a zip: refuse one that would unpack to more than this (a "zip bomb" or a giant sheet).
MAX_UNPACKED_BYTES = 100 * 1024 * 1024
UPLOAD_KIND = "households"


# -- reports -------------------------------------------------------------------------------

@dataclass
class HouseholdChange:
    number: str
    fields: list[str]  # keys of FIELD_LABELS

    def to_json(self) -> dict[str, object]:
        return {"number": self.number, "fields": self.fields}


@dataclass
class ImportReport:
    """What a household import did (or, with ``dry_run``, would do). Counts are 0 when ``errors``."""

    dry_run: bool = False
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    changes: list[HouseholdChange] = field(default_factory=list)  # updated households only
    created_areas: list[str] = field(default_factory=list)
    created_villages: list[str] = field(default_factory=list)
    created_hamlets: list[tuple[str, str]] = field(default_factory=list)  # (village, hamlet)
    created_cadres: list[tuple[str, str]] = field(default_factory=list)  # (name, phone)
    created_numbers: list[str] = field(default_factory=list)  # 户编号 of new households, in file order
    digest: str = ""  # fingerprint of the plan, to tell at 确认导入 whether it is still the one checked

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def error_rows(self) -> int:
        """How many rows (or header/file problems) are at fault: what the cadre has to fix."""
        return len({(e.sheet, e.line) for e in self.errors})

    def to_json(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "errors": [e.to_json() for e in self.errors],
            "warnings": self.warnings,
            "changes": [c.to_json() for c in self.changes],
            "created_numbers": self.created_numbers,
            "created_areas": self.created_areas,
            "created_villages": self.created_villages,
            "created_hamlets": [{"village": v, "hamlet": h} for v, h in self.created_hamlets],
            "created_cadres": [{"name": n, "phone": p} for n, p in self.created_cadres],
        }


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def to_json(self) -> dict[str, int]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}


@dataclass
class OrgImportReport:
    """What an organisation import did (or would do). Top-level counts add villages, cadres and groups."""

    dry_run: bool = False
    areas: Counts = field(default_factory=Counts)
    villages: Counts = field(default_factory=Counts)
    hamlets: Counts = field(default_factory=Counts)
    cadres: Counts = field(default_factory=Counts)
    groups: Counts = field(default_factory=Counts)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def total(self, what: str) -> int:
        return sum(getattr(getattr(self, kind), what) for kind in ("villages", "cadres", "groups"))

    def to_json(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "created": self.total("created"),
            "updated": self.total("updated"),
            "unchanged": self.total("unchanged"),
            "areas": self.areas.to_json(),
            "villages": self.villages.to_json(),
            "hamlets": self.hamlets.to_json(),
            "cadres": self.cadres.to_json(),
            "groups": self.groups.to_json(),
            "errors": [e.to_json() for e in self.errors],
            "warnings": self.warnings,
        }


def _sort_errors(errors: list[RowError], sheets: Sequence[Sheet]) -> list[RowError]:
    order = {sheet.name: i for i, sheet in enumerate(sheets)}
    return sorted(errors, key=lambda e: (e.line is not None, order.get(e.sheet, 0), e.line or 0))


def read_file(source: Path | str | bytes | BinaryIO, filename: str | None = None) -> list[Sheet] | RowError:
    """The file's tables, or the one error saying why it cannot be read.

    Uploads come from anyone with an account and may be anything: a Word
    file (a zip, like an XLSX), a photo, an XLSX that unpacks to gigabytes.
    Whatever the reader raises becomes the same kind word, never a 500.
    """
    if isinstance(source, bytes) and not source.strip():
        return RowError(None, EMPTY)
    if isinstance(source, bytes) and len(source) > MAX_UPLOAD_BYTES:
        return RowError(None, TOO_LARGE)
    if isinstance(source, bytes) and source.startswith(_NOT_SHEETS):
        return RowError(None, NOT_A_SHEET)
    if isinstance(source, bytes) and source.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(source)) as archive:
                unpacked = sum(info.file_size for info in archive.infolist())
        except (zipfile.BadZipFile, ValueError, OSError):
            unpacked = 0  # read_table says the file is damaged
        if unpacked > MAX_UNPACKED_BYTES:
            return RowError(None, "这个 Excel 文件解开后太大了。请只保留户信息这一张表，另存为 .xlsx 或 CSV 后再导入。")
    try:
        return read_table(source, filename)
    except SheetError as exc:
        return RowError(None, str(exc))
    except Exception as exc:  # noqa: BLE001 - an unreadable upload is the cadre's file, not our bug
        log.warning("unreadable import file: %s", type(exc).__name__)
        return RowError(None, UNREADABLE)


# -- the township as loaded --------------------------------------------------------------

@dataclass
class _Org:
    """The township's organisation keyed by names, grown as an import adds to it."""

    areas: dict[str, Area]
    villages: dict[str, Village]
    hamlets: dict[tuple[str, str], Hamlet]  # (village name, hamlet name)
    teams: dict[str, Team]
    cadres: dict[str, list[Cadre]]  # by name; several people may share one


def _load_org(session: Session, township_id: int) -> _Org:
    areas = {a.name: a for a in session.scalars(select(Area).where(Area.township_id == township_id))}
    villages = {v.name: v for v in session.scalars(select(Village).where(Village.township_id == township_id))}
    names = {v.id: v.name for v in villages.values()}
    hamlets = {
        (names[h.village_id], h.name): h
        for h in session.scalars(select(Hamlet).join(Village, Hamlet.village_id == Village.id)
                                 .where(Village.township_id == township_id))
    }
    teams = {t.name: t for t in session.scalars(select(Team))}
    cadres: dict[str, list[Cadre]] = {}
    for cadre in session.scalars(select(Cadre).where(Cadre.township_id == township_id).order_by(Cadre.id)):
        cadres.setdefault(cadre.name, []).append(cadre)
    return _Org(areas, villages, hamlets, teams, cadres)


# -- households ------------------------------------------------------------------------------

def import_households(
    db: Database,
    township: str,
    sheets: Sequence[Sheet],
    *,
    dry_run: bool = False,
    create_missing: bool = False,
    scope: Scope = EVERYTHING,
    actor: "Principal | None" = None,
    filename: str | None = None,
    expected: str | None = None,
) -> ImportReport:
    """Import households from the tables of a file (``storage.sheets.read_table``).

    Validates every row, resolves villages, 组, helpers and teams, and writes
    only if nothing is wrong and ``dry_run`` is false. With ``create_missing``,
    villages, 片区, 组 and helpers the file names but the database lacks are
    created (a helper is a cadre with role 帮扶责任人, linked to the villages of
    their households); without it they are errors.

    ``scope`` limits the rows to villages the account covers (ReadOnly is
    raised for a read-only account); ``actor`` and ``filename`` go into the
    audit row of an import that writes. With ``expected`` (the ``digest`` of
    an earlier dry run) nothing is written unless the plan is still that one.

    ``create_missing`` is for accounts that see the whole township only
    (OutOfScope otherwise): new villages, 片区 and cadres change the
    organisation every account's scope is made of, and a misspelt name from a
    village cadre's roster would quietly become a new helper.
    """
    from storage.accounts import audit

    scope.check_writable()
    if create_missing and not scope.everything:
        raise OutOfScope(NO_CREATE)
    records, errors, warnings = validate_households(sheets)
    report = ImportReport(dry_run=dry_run, errors=errors, warnings=warnings)
    with db.sessions() as session:
        try:
            township_id = ensure_township(session, township).id
            org = _load_org(session, township_id)
            plan = plan_households(session, township_id, org, records, create_missing, scope)
            report.errors = _sort_errors(report.errors + plan.errors, sheets)
            if report.errors:
                session.rollback()
                if plan.missing and not create_missing:
                    report.warnings.append(MISSING_HINT if scope.everything else MISSING_HINT_SCOPED)
                return report
            plan.fill(report)
            if expected is not None and report.digest != expected:
                session.rollback()
                log.info("households import refused: the plan changed since it was checked")
                return ImportReport(dry_run=dry_run, errors=[RowError(None, CHANGED)], warnings=warnings)
            if dry_run:
                session.rollback()
            else:
                apply_households(session, township_id, org, plan)
                audit(session, actor, "households.import", mask_text(filename or "")[:128], _audit_detail(report))
                session.commit()
        except IntegrityError:
            session.rollback()
            log.warning("households import: conflicting write, nothing imported")
            return ImportReport(dry_run=dry_run, errors=[RowError(None, CONFLICT)], warnings=warnings)
    log.info("households import%s: %d created, %d updated, %d unchanged, %d villages and %d cadres created",
             " (dry run)" if dry_run else "", report.created, report.updated, report.unchanged,
             len(report.created_villages), len(report.created_cadres))
    return report


def _audit_detail(report: ImportReport) -> str:
    """Counts only: the audit log is read by people who need not see the households' names."""
    parts = [f"新增 {report.created} 户，更新 {report.updated} 户，未变化 {report.unchanged} 户"]
    for label, items in (("片区", report.created_areas), ("村", report.created_villages),
                         ("组", report.created_hamlets), ("干部", report.created_cadres)):
        if items:
            parts.append(f"新建{label} {len(items)} 个")
    return "；".join(parts)


def import_households_file(
    db: Database, township: str, source: Path | str | bytes | BinaryIO, filename: str | None = None,
    **options: object,
) -> ImportReport:
    """:func:`import_households` on a path or an uploaded file's bytes (with its name).

    The file name goes into the audit row; ``options`` are those of :func:`import_households`.
    """
    scope = options.get("scope", EVERYTHING)
    assert isinstance(scope, Scope)
    scope.check_writable()
    if filename is None and isinstance(source, (str, Path)):
        filename = Path(source).name
    sheets = read_file(source, filename)
    if isinstance(sheets, RowError):
        return ImportReport(dry_run=bool(options.get("dry_run")), errors=[sheets])
    return import_households(db, township, sheets, filename=filename, **options)  # type: ignore[arg-type]


# -- the console's two steps: check an upload, then import exactly what was checked -------------

@dataclass
class CheckedUpload:
    """A checked upload: its report, and the key to confirm it with when it is clean."""

    report: ImportReport
    key: str | None = None
    filename: str = ""


def check_households_upload(
    db: Database, township: str, data: bytes, filename: str, *, scope: Scope, user_id: int,
    create_missing: bool = False,
) -> CheckedUpload:
    """Check an uploaded roster (a dry run) and, if it is clean, keep it for :func:`apply_households_upload`.

    What is kept is the rows as read, without the columns the import skips
    (``without_unkept_columns``: no 身份证号 is stored), and the plan's digest.
    A file with problems is not kept: nothing can be imported from it.
    """
    scope.check_writable()
    sheets = read_file(data, filename)
    if isinstance(sheets, RowError):
        return CheckedUpload(ImportReport(dry_run=True, errors=[sheets]), None, filename)
    report = import_households(db, township, sheets, dry_run=True, create_missing=create_missing, scope=scope)
    if not report.ok:
        return CheckedUpload(report, None, filename)
    key = uploads.keep(db, user_id, UPLOAD_KIND, filename, encode_sheets(without_unkept_columns(sheets)),
                       size=len(data), meta={"digest": report.digest, "create_missing": create_missing})
    return CheckedUpload(report, key, filename)


def apply_households_upload(db: Database, township: str, key: str, *, scope: Scope,
                            actor: "Principal") -> CheckedUpload:
    """Import the upload kept under ``key`` (only its uploader's), checking every row again.

    The kept upload is used up either way: if anything changed since the
    check (another import, a village moved), nothing is written and the
    cadre uploads the file again to read a fresh report.
    """
    scope.check_writable()
    upload = uploads.take(db, key, actor.id, UPLOAD_KIND)
    if upload is None:
        return CheckedUpload(ImportReport(errors=[RowError(None, EXPIRED)]))
    report = import_households(
        db, township, decode_sheets(upload.payload), create_missing=bool(upload.meta.get("create_missing")),
        scope=scope, actor=actor, filename=upload.filename, expected=str(upload.meta.get("digest", "")),
    )
    return CheckedUpload(report, None, upload.filename)


def encode_sheets(sheets: Sequence[Sheet]) -> bytes:
    """Sheets as JSON bytes (line numbers, cells, merges), for keeping between two requests."""
    return json.dumps([
        {"name": sheet.name, "rows": [[row.line, row.cells, sorted(row.merged)] for row in sheet.rows],
         "merged_ranges": [list(m) for m in sheet.merged_ranges]}
        for sheet in sheets
    ], ensure_ascii=False, separators=(",", ":")).encode()


def decode_sheets(data: bytes) -> list[Sheet]:
    return [
        Sheet(item["name"], [Row(line, list(cells), frozenset(merged)) for line, cells, merged in item["rows"]],
              [(first, last, ref) for first, last, ref in item["merged_ranges"]])
        for item in json.loads(data)
    ]


@dataclass
class _NewCadre:
    villages: list[str] = field(default_factory=list)
    teams: list[str] = field(default_factory=list)


Helper = Cadre | tuple[str, str]  # an existing cadre, or (name, phone) of one this import creates


@dataclass
class _Op:
    record: HouseholdRecord
    household: Household | None
    helper: Helper
    fields: list[str]


@dataclass
class HouseholdPlan:
    """Everything an import would write, decided before writing any of it."""

    errors: list[RowError] = field(default_factory=list)
    ops: list[_Op] = field(default_factory=list)
    new_areas: dict[str, None] = field(default_factory=dict)
    new_villages: dict[str, str | None] = field(default_factory=dict)  # name → area
    village_areas: dict[str, str] = field(default_factory=dict)  # existing village without 片区 → area
    new_hamlets: dict[tuple[str, str], None] = field(default_factory=dict)
    new_cadres: dict[tuple[str, str], _NewCadre] = field(default_factory=dict)
    missing: bool = False  # some row names a village, 片区, 组 or cadre the database lacks

    def digest(self) -> str:
        """A fingerprint of what the plan would write: which households change which fields, what is created."""
        ops = [(op.record.number, op.household.id if op.household else None, op.fields,
                op.helper.id if isinstance(op.helper, Cadre) else list(op.helper)) for op in self.ops]
        created = [list(self.new_areas), list(self.new_villages.items()), list(self.village_areas.items()),
                   [list(k) for k in self.new_hamlets], [list(k) for k in self.new_cadres]]
        return hashlib.sha256(json.dumps([ops, created], ensure_ascii=False).encode()).hexdigest()

    def fill(self, report: ImportReport) -> None:
        report.digest = self.digest()
        for op in self.ops:
            if op.household is None:
                report.created += 1
                report.created_numbers.append(op.record.number)
            elif op.fields:
                report.updated += 1
                report.changes.append(HouseholdChange(op.record.number, op.fields))
            else:
                report.unchanged += 1
        report.created_areas = list(self.new_areas)
        report.created_villages = list(self.new_villages)
        report.created_hamlets = list(self.new_hamlets)
        report.created_cadres = list(self.new_cadres)


def plan_households(
    session: Session, township_id: int, org: _Org, records: Sequence[HouseholdRecord], create_missing: bool,
    scope: Scope = EVERYTHING,
) -> HouseholdPlan:
    """Resolve every record against the township; rows that cannot be resolved become errors.

    With a limited ``scope``, a row must be for a village the account covers,
    and an existing 户编号 must be registered in such a village: otherwise a
    village cadre could move (and overwrite) another village's household by
    writing its 户编号 in their own roster.
    """
    plan = HouseholdPlan()
    existing = {h.number: h for h in session.scalars(select(Household).where(Household.township_id == township_id))}
    if create_missing:
        # Helpers named with a phone the database does not know are new people, whatever row comes first.
        for rec in records:
            known = org.cadres.get(rec.helper, [])
            if rec.helper and rec.helper_phone and not any(c.phone == rec.helper_phone for c in known):
                plan.new_cadres.setdefault((rec.helper, rec.helper_phone), _NewCadre())
    for rec in records:
        reasons = list(rec.problems)
        bad = list(rec.bad)

        def fault(*keys: str, since: int) -> None:
            if len(reasons) > since:
                bad.extend(keys)

        n = len(reasons)
        covered = True
        if rec.village and not scope.everything:
            village = org.villages.get(rec.village)
            if village is not None and not scope.covers_village(village.id):
                reasons.append(f"{rec.village}不在您负责的范围内")
                covered = False
        village_known = covered and bool(rec.village) and _plan_village(plan, org, rec, create_missing, reasons)
        fault("village", "area", since=n)
        n = len(reasons)
        hamlet = rec.values.get("hamlet")
        if hamlet and village_known and (rec.village, hamlet) not in org.hamlets:
            if create_missing:
                plan.new_hamlets.setdefault((rec.village, str(hamlet)), None)
            else:
                reasons.append(f"村「{rec.village}」没有「{hamlet}」（请检查组名）")
                plan.missing = True
        fault("hamlet", since=n)
        n = len(reasons)
        helper = _plan_helper(plan, org, rec, create_missing, reasons) if rec.helper else None
        fault("helper", "helper_phone", since=n)
        n = len(reasons)
        team = rec.values.get("team")
        if team and team not in org.teams:
            reasons.append(f"先锋队「{team}」还没有建立（数据库未升级？请运行 sisong db upgrade）")
        fault("team", since=n)
        household = existing.get(rec.number) if rec.number else None
        if household is not None and not scope.covers_village(household.village_id):
            reasons.append(f"户编号 {rec.number} 登记在您负责范围以外的村，不能在这里修改")
            bad.append("number")
            household = None
        if household is not None and not rec.problems:
            population = rec.values.get("population", household.population)
            labourers = rec.values.get("labourers", household.labourers)
            if isinstance(population, int) and isinstance(labourers, int) and labourers > population:
                reasons.append(f"劳动力人数（{labourers}）会比人口数（{population}）还多")
                bad += ["labourers", "population"]
        if reasons:
            plan.errors.append(RowError(rec.line, "；".join(reasons) + "。", rec.sheet, rec.columns(bad)))
            continue
        fields = _changed_fields(rec, household, helper)
        assert helper is not None
        if isinstance(helper, tuple):
            new = plan.new_cadres[helper]
            if rec.village not in new.villages:
                new.villages.append(rec.village)
            if team and team not in new.teams:
                new.teams.append(str(team))
        plan.ops.append(_Op(rec, household, helper, fields))
    return plan


def _plan_village(plan: HouseholdPlan, org: _Org, rec: HouseholdRecord, create_missing: bool,
                  reasons: list[str]) -> bool:
    """Check (or plan to create) the row's village and its 片区; True when the village will exist."""
    village = org.villages.get(rec.village)
    if village is None:
        if rec.village in plan.new_villages:
            planned = plan.new_villages[rec.village]
            if rec.area and planned and planned != rec.area:
                reasons.append(f"新村「{rec.village}」在前面的行里属于片区「{planned}」，这里写的是「{rec.area}」")
                return True
            if rec.area and not planned:
                plan.new_villages[rec.village] = rec.area
                _plan_area(plan, org, rec.area)
            return True
        if not create_missing:
            reasons.append(f"没有村「{rec.village}」")
            plan.missing = True
            return False
        plan.new_villages[rec.village] = rec.area
        if rec.area:
            _plan_area(plan, org, rec.area)
        return True
    current = village.area.name if village.area else plan.village_areas.get(rec.village)
    if rec.area and current is None:
        if create_missing:
            plan.village_areas[rec.village] = rec.area
            _plan_area(plan, org, rec.area)
        else:
            reasons.append(f"村「{rec.village}」还没有登记片区，这里写的是「{rec.area}」")
            plan.missing = True
    elif rec.area and current != rec.area:
        reasons.append(f"村「{rec.village}」属于片区「{current}」，这里写的是「{rec.area}」")
    return True


def _plan_area(plan: HouseholdPlan, org: _Org, area: str) -> None:
    if area not in org.areas:
        plan.new_areas.setdefault(area, None)


def _plan_helper(plan: HouseholdPlan, org: _Org, rec: HouseholdRecord, create_missing: bool,
                 reasons: list[str]) -> Helper | None:
    """The helper cadre: by name and 责任人电话 when given, else by a name only one cadre has."""
    known = org.cadres.get(rec.helper, [])
    if rec.helper_phone:
        for cadre in known:
            if cadre.phone == rec.helper_phone:
                return cadre
        key = (rec.helper, rec.helper_phone)
        if key in plan.new_cadres:
            return key
        other = "（系统里同名的干部电话不同）" if known else ""
        reasons.append(f"没有电话为 {rec.helper_phone} 的干部「{rec.helper}」{other}")
        plan.missing = True
        return None
    candidates: list[Helper] = [*known, *(key for key in plan.new_cadres if key[0] == rec.helper)]
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        reasons.append(f"有 {len(candidates)} 位干部叫「{rec.helper}」，请在“责任人电话”列填上电话以区分")
        return None
    if not create_missing:
        reasons.append(f"没有干部「{rec.helper}」")
        plan.missing = True
        return None
    key = (rec.helper, "")
    plan.new_cadres[key] = _NewCadre()
    return key


def _changed_fields(rec: HouseholdRecord, household: Household | None, helper: Helper | None) -> list[str]:
    target: dict[str, object] = {"head_name": rec.head_name, "village": rec.village, **rec.values}
    if household is None:
        return [key for key in FIELD_LABELS if key in target or key == "helper"]
    current: dict[str, object] = {
        "head_name": household.head_name,
        "village": household.village.name,
        "hamlet": household.hamlet.name if household.hamlet else None,
        "population": household.population,
        "labourers": household.labourers,
        "work_intent": household.work_intent,
        "team": household.team.name if household.team else None,
        "phone": household.phone,
        "monitored": household.monitored,
        "lifted": household.lifted,
    }
    if target["village"] != current["village"] and "hamlet" not in target:
        target["hamlet"] = None  # the old 组 belongs to the old village
    changed = {key for key, value in target.items() if current.get(key) != value}
    if isinstance(helper, tuple) or (helper is not None and household.helper_id != helper.id):
        changed.add("helper")
    return [key for key in FIELD_LABELS if key in changed]


def apply_households(session: Session, township_id: int, org: _Org, plan: HouseholdPlan) -> None:
    """Write a plan without errors: new 片区, villages, 组 and cadres first, then the households."""
    for name in plan.new_areas:
        org.areas[name] = area = Area(township_id=township_id, name=name)
        session.add(area)
    for name, area_name in plan.new_villages.items():
        org.villages[name] = village = Village(township_id=township_id, name=name,
                                               area=org.areas[area_name] if area_name else None)
        session.add(village)
    for name, area_name in plan.village_areas.items():
        org.villages[name].area = org.areas[area_name]
    session.flush()
    for village_name, hamlet_name in plan.new_hamlets:
        org.hamlets[(village_name, hamlet_name)] = hamlet = Hamlet(village_id=org.villages[village_name].id,
                                                                   name=hamlet_name)
        session.add(hamlet)
    created: dict[tuple[str, str], Cadre] = {}
    for (name, phone), new in plan.new_cadres.items():
        created[(name, phone)] = cadre = Cadre(
            township_id=township_id, name=name, phone=phone, role="帮扶责任人",
            villages=[org.villages[v] for v in new.villages], teams=[org.teams[t] for t in new.teams],
        )
        session.add(cadre)
    session.flush()
    now = utcnow()
    for op in plan.ops:
        if not op.fields:
            continue
        rec, household = op.record, op.household
        if household is None:
            household = Household(township_id=township_id, number=rec.number, created_at=now)
            session.add(household)
        values = rec.values
        household.head_name = rec.head_name
        household.village = org.villages[rec.village]
        if "hamlet" in values:
            household.hamlet = org.hamlets[(rec.village, str(values["hamlet"]))] if values["hamlet"] else None
        elif "village" in op.fields:
            household.hamlet = None
        for key in ("population", "labourers", "work_intent", "phone", "monitored", "lifted"):
            if key in values:
                setattr(household, key, values[key])
        if "team" in values:
            household.team = org.teams[str(values["team"])] if values["team"] else None
        household.helper = created[op.helper] if isinstance(op.helper, tuple) else op.helper
        household.updated_at = now
    session.flush()


# -- organisation ------------------------------------------------------------------------------

def import_org(db: Database, township: str, sheets: Sequence[Sheet], *, dry_run: bool = False,
               scope: Scope = EVERYTHING, actor: "Principal | None" = None,
               filename: str | None = None) -> OrgImportReport:
    """Import 村 (with 片区 and 组), 干部 and 工作群 from the tables of a file.

    Villages get their 片区 and any new 组 (组 are never removed: households
    refer to them). A cadre row sets that cadre's role, teams, villages and
    WeCom account for the columns the file has; a group row sets its robot and
    what it covers. Every reference (a cadre's 村, a group's 覆盖村/片区) must
    be in the database or in the same file. A dry run does all of it inside
    the transaction and rolls back, so its counts are exactly a real run's.

    The organisation is what every account's scope is made of, so only an
    account that sees the whole township may import it (``OutOfScope``
    otherwise; ``ReadOnly`` for 督查). An import that writes is audited
    (``org.import``, file name and counts) in the same transaction when
    ``actor`` is given: the console's account, or a name (the CLI passes
    “命令行”). None writes no audit row, for callers that still record the
    import themselves (the console's 干部与群 page did before this existed).
    """
    from storage.accounts import audit

    _check_org_scope(scope)
    records = validate_org(sheets)
    report = OrgImportReport(dry_run=dry_run, errors=records.errors, warnings=records.warnings)
    with db.sessions() as session:
        try:
            township_id = ensure_township(session, township).id
            org = _load_org(session, township_id)
            groups = {g.name: g for g in session.scalars(
                select(MessagingGroup).where(MessagingGroup.township_id == township_id))}
            report.errors = _sort_errors(report.errors + _check_references(org, groups, records), sheets)
            if report.errors:
                session.rollback()
                return report
            _apply_villages(session, township_id, org, records, report)
            _apply_cadres(session, township_id, org, records, report)
            _apply_groups(session, township_id, org, groups, records, report)
            session.flush()
            if dry_run:
                session.rollback()
            else:
                audit(session, actor, "org.import", mask_text(filename or "")[:128], _org_audit_detail(report))
                session.commit()
        except IntegrityError:
            session.rollback()
            log.warning("org import: conflicting write, nothing imported")
            return OrgImportReport(dry_run=dry_run, errors=[RowError(None, CONFLICT)], warnings=records.warnings)
    log.info("org import%s: villages %s, cadres %s, groups %s", " (dry run)" if dry_run else "",
             report.villages.to_json(), report.cadres.to_json(), report.groups.to_json())
    return report


def _check_org_scope(scope: Scope) -> None:
    scope.check_writable()
    if not scope.everything:
        raise OutOfScope("只有镇管理员能导入组织表。")


def _org_audit_detail(report: OrgImportReport) -> str:
    """Counts only, like a households import's audit row."""
    return "；".join(f"{label}新增 {c.created}、更新 {c.updated}"
                    for label, c in (("村", report.villages), ("干部", report.cadres), ("工作群", report.groups)))


def import_org_file(
    db: Database, township: str, source: Path | str | bytes | BinaryIO, filename: str | None = None,
    *, dry_run: bool = False, scope: Scope = EVERYTHING, actor: "Principal | None" = None,
) -> OrgImportReport:
    """:func:`import_org` on a path or an uploaded file's bytes (with its name, which the audit row keeps)."""
    _check_org_scope(scope)
    if filename is None and isinstance(source, (str, Path)):
        filename = Path(source).name
    sheets = read_file(source, filename)
    if isinstance(sheets, RowError):
        return OrgImportReport(dry_run=dry_run, errors=[sheets])
    return import_org(db, township, sheets, dry_run=dry_run, scope=scope, actor=actor, filename=filename)


def _check_references(org: _Org, groups: dict[str, MessagingGroup], records: OrgRecords) -> list[RowError]:
    """Villages, 片区 and teams the rows name must exist (in the database or this file)."""
    errors: list[RowError] = []
    villages = set(org.villages) | {rec.village for rec in records.villages}
    areas = set(org.areas) | {rec.area for rec in records.villages if rec.area}
    for cadre in records.cadres:
        reasons = [f"没有村「{v}」，请先在“村”表里加上" for v in cadre.villages or () if v not in villages]
        reasons += [f"先锋队「{t}」还没有建立" for t in cadre.teams or () if t not in org.teams]
        if not cadre.phone and len(org.cadres.get(cadre.name, [])) > 1:
            reasons.append(f"系统里有 {len(org.cadres[cadre.name])} 位干部叫「{cadre.name}」，请填上电话以区分")
        if reasons:
            errors.append(RowError(cadre.line, "；".join(reasons) + "。", cadre.sheet))
    for group in records.groups:
        reasons = [f"没有村「{v}」，请先在“村”表里加上" for v in group.villages or () if v not in villages]
        reasons += [f"没有片区「{a}」，请先在“村”表的片区列里加上" for a in group.areas or () if a not in areas]
        reasons += [f"先锋队「{t}」还没有建立" for t in group.teams or () if t not in org.teams]
        current = groups.get(group.name)
        covers = [
            group.villages if group.villages is not None else (current.villages if current else []),
            group.areas if group.areas is not None else (current.areas if current else []),
            group.teams if group.teams is not None else (current.teams if current else []),
        ]
        covers_all = group.covers_all if group.covers_all is not None else bool(current and current.covers_all)
        if not covers_all and not any(covers):
            reasons.append("没有写覆盖哪些村、片区或先锋队，也不是全镇群")
        if reasons:
            errors.append(RowError(group.line, "；".join(reasons) + "。", group.sheet))
    return errors


def _apply_villages(session: Session, township_id: int, org: _Org, records: OrgRecords,
                    report: OrgImportReport) -> None:
    areas: dict[str, None] = {}
    villages: dict[str, tuple[str | None, list[str]]] = {}
    for rec in records.villages:
        area, hamlets = villages.get(rec.village, (None, []))
        villages[rec.village] = (area or rec.area, hamlets + [h for h in rec.hamlets if h not in hamlets])
        if rec.area:
            areas.setdefault(rec.area, None)
    for name in areas:
        if name in org.areas:
            report.areas.unchanged += 1
        else:
            org.areas[name] = area_row = Area(township_id=township_id, name=name)
            session.add(area_row)
            report.areas.created += 1
    for name, (area, hamlets) in villages.items():
        village = org.villages.get(name)
        is_new = village is None
        changed = False
        if village is None:
            org.villages[name] = village = Village(township_id=township_id, name=name,
                                                   area=org.areas[area] if area else None)
            session.add(village)
            session.flush()
        elif area and (village.area is None or village.area.name != area):
            village.area = org.areas[area]
            changed = True
        for hamlet in hamlets:
            if (name, hamlet) in org.hamlets:
                report.hamlets.unchanged += 1
                continue
            org.hamlets[(name, hamlet)] = row = Hamlet(village_id=village.id, name=hamlet)
            session.add(row)
            report.hamlets.created += 1
            changed = True
        if is_new:
            report.villages.created += 1
        elif changed:
            report.villages.updated += 1
        else:
            report.villages.unchanged += 1
    session.flush()


def _apply_cadres(session: Session, township_id: int, org: _Org, records: OrgRecords,
                  report: OrgImportReport) -> None:
    named: dict[str, int] = {}
    for rec in records.cadres:
        named[rec.name] = named.get(rec.name, 0) + 1
    for rec in records.cadres:
        known = org.cadres.get(rec.name, [])
        cadre: Cadre | None
        changed = False
        if rec.phone:
            cadre = next((c for c in known if c.phone == rec.phone), None)
            if cadre is None and named[rec.name] == 1 and len(known) == 1 and not known[0].phone:
                cadre = known[0]  # the same person, registered before without a phone: add it
                cadre.phone = rec.phone
                changed = True
            elif cadre is None and known:
                report.warnings.append(f"{RowError(rec.line, '', rec.sheet).where()}：系统里已有叫「{rec.name}」的干部，"
                                       "电话不同，已按另一位同名干部新建。")
        else:
            cadre = known[0] if known else None
        if cadre is None:
            cadre = Cadre(township_id=township_id, name=rec.name, phone=rec.phone, role=rec.role or "帮扶责任人",
                          wecom_userid=rec.wecom, teams=[org.teams[t] for t in rec.teams or ()],
                          villages=[org.villages[v] for v in rec.villages or ()])
            session.add(cadre)
            org.cadres.setdefault(rec.name, []).append(cadre)
            report.cadres.created += 1
            continue
        changed |= _update_cadre(cadre, rec, org)
        if changed:
            report.cadres.updated += 1
        else:
            report.cadres.unchanged += 1
    session.flush()


def _update_cadre(cadre: Cadre, rec: CadreRecord, org: _Org) -> bool:
    changed = False
    if rec.role and cadre.role != rec.role:
        cadre.role, changed = rec.role, True
    if rec.teams is not None and {t.name for t in cadre.teams} != set(rec.teams):
        cadre.teams, changed = [org.teams[t] for t in rec.teams], True
    if rec.villages is not None and {v.name for v in cadre.villages} != set(rec.villages):
        cadre.villages, changed = [org.villages[v] for v in rec.villages], True
    if rec.has_wecom and cadre.wecom_userid != rec.wecom:
        cadre.wecom_userid, changed = rec.wecom, True
    return changed


def _apply_groups(session: Session, township_id: int, org: _Org, groups: dict[str, MessagingGroup],
                  records: OrgRecords, report: OrgImportReport) -> None:
    for rec in records.groups:
        villages = [org.villages[v] for v in rec.villages] if rec.villages is not None else None
        areas = [org.areas[a] for a in rec.areas] if rec.areas is not None else None
        teams = [org.teams[t] for t in rec.teams] if rec.teams is not None else None
        group = groups.get(rec.name)
        if group is None:
            groups[rec.name] = group = MessagingGroup(
                township_id=township_id, name=rec.name, robot_url=rec.robot_url, covers_all=bool(rec.covers_all),
                villages=villages or [], areas=areas or [], teams=teams or [],
            )
            session.add(group)
            report.groups.created += 1
            continue
        changed = False
        if group.robot_url != rec.robot_url:
            group.robot_url, changed = rec.robot_url, True
        if rec.covers_all is not None and group.covers_all != rec.covers_all:
            group.covers_all, changed = rec.covers_all, True
        for attr, rows in (("villages", villages), ("areas", areas), ("teams", teams)):
            if rows is not None and {r.id for r in getattr(group, attr)} != {r.id for r in rows}:
                setattr(group, attr, rows)
                changed = True
        if changed:
            report.groups.updated += 1
        else:
            report.groups.unchanged += 1


__all__ = [
    "FIELD_LABELS",
    "Counts",
    "GroupRecord",
    "HouseholdChange",
    "HouseholdPlan",
    "ImportReport",
    "OrgImportReport",
    "apply_households",
    "import_households",
    "import_households_file",
    "import_org",
    "import_org_file",
    "plan_households",
    "read_file",
]
