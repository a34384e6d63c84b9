"""Validating imported tables without the database: header → columns, cells → values, rows → records.

The second of three steps of an import (read the file: ``storage.sheets``;
validate: here; resolve names and write: ``storage.org_import``). Everything
here is pure, so each rule is tested on its own and the web console can show
the same reasons as the command line.

Headers are matched through an explicit list of variants per column (spaces,
full-width brackets, a unit in brackets, 户主 for 户主姓名, 手机/电话 for
联系电话…). A header that is not on any list is an error, never a guess: a
misspelt 劳力数量 dropped in silence would lose a column of data. Columns that
are common in the cadres' rosters but not kept (序号, 身份证号, 备注…) are
skipped with a warning, so the ID numbers never reach the database.

Every bad cell of a row is reported together, in one error per row, with the
line number the cadre sees in Excel.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Sequence

from storage.models.org import ROLES, TEAM_NAMES
from storage.sheets import Row, Sheet, column_letter

HEADER_SCAN_ROWS = 15  # a title, a date line, a blank line… the header is within the first rows


# -- errors ------------------------------------------------------------------------------

@dataclass(frozen=True)
class RowError:
    """One bad row (or header, or file when ``line`` is None), with the reason in Chinese.

    ``columns`` names the cells at fault as (Excel letter, column), so a page
    can point at them; the reason already says the same in words.
    """

    line: int | None
    reason: str
    sheet: str | None = None
    columns: tuple[tuple[str, str], ...] = ()

    def where(self) -> str:
        sheet = f"工作表「{self.sheet}」" if self.sheet else ""
        if self.line is None:
            return sheet or "文件"
        return f"{sheet}第 {self.line} 行"

    def __str__(self) -> str:
        return f"{self.where()}：{self.reason}"

    def to_json(self) -> dict[str, object]:
        return {"line": self.line, "sheet": self.sheet, "reason": self.reason,
                "columns": [{"letter": letter, "label": label} for letter, label in self.columns]}


class BadValue(ValueError):
    """A cell that cannot be used; the message is the reason shown to the cadre."""


# -- columns and layouts ---------------------------------------------------------------

@dataclass(frozen=True)
class Col:
    key: str
    label: str  # the header as documented (docs/households.md)
    aliases: tuple[str, ...] = ()
    required: bool = False


# Columns cadres keep in their rosters that Sisong does not store: skipped with a warning.
IGNORED_HEADERS = frozenset(
    "序号 备注 说明 身份证号 身份证号码 身份证 户主身份证号 户主身份证号码 证件号码 性别 年龄 民族 出生日期 "
    "家庭住址 住址 职务 单位 工作单位".split()
)
IGNORED = object()


def header_key(text: str) -> str:
    """A header as compared: full-width folded, no spaces, no required-marks (*) or colons."""
    return re.sub(r"[\s*:]", "", unicodedata.normalize("NFKC", text)).lower()


def _without_notes(key: str) -> str:
    """``人口数(人)`` → ``人口数``, ``监测对象(是/否)`` → ``监测对象``: a note in brackets is not the name."""
    return re.sub(r"\(.*?\)|\[.*?\]|【.*?】", "", key)


@dataclass(frozen=True)
class Layout:
    kind: str  # households | villages | cadres | groups
    title: str  # what the cadre calls the table
    columns: tuple[Col, ...]
    anchor: str  # the column whose header marks the header row

    def match(self, header: str) -> Col | object | None:
        """The column a header names, IGNORED for a known column that is not kept, None if unknown."""
        table = _alias_table(self)
        key = header_key(header)
        for candidate in (key, _without_notes(key)):
            if candidate in table:
                return table[candidate]
            if candidate in IGNORED_HEADERS:
                return IGNORED
        return None

    @property
    def labels(self) -> str:
        return "、".join(c.label for c in self.columns)

    def column(self, key: str) -> Col:
        return next(c for c in self.columns if c.key == key)


_ALIAS_TABLES: dict[str, dict[str, Col]] = {}


def _alias_table(layout: Layout) -> dict[str, Col]:
    table = _ALIAS_TABLES.get(layout.kind)
    if table is None:
        table = {header_key(name): col for col in layout.columns for name in (col.label, *col.aliases)}
        _ALIAS_TABLES[layout.kind] = table
    return table


HOUSEHOLDS = Layout("households", "户信息", (
    Col("number", "户编号", ("户号", "户编码", "家庭户编号", "户编号码"), required=True),
    Col("head_name", "户主姓名", ("户主", "户主名字", "户主名"), required=True),
    Col("village", "村", ("村名", "所在村", "所属村", "行政村", "村社区", "村/社区", "社区", "村(社区)"), required=True),
    Col("helper", "帮扶责任人", ("帮扶人", "责任人", "帮扶干部", "帮扶责任人姓名", "帮扶联系人"), required=True),
    Col("area", "片区", ("所属片区", "片区名")),
    Col("hamlet", "组", ("村民小组", "小组", "组别", "所在组", "所属组", "组名")),
    Col("population", "人口数", ("人口", "家庭人口", "家庭人口数", "户人口数", "人数", "家庭人数")),
    Col("labourers", "劳动力人数", ("劳动力", "劳动力数", "劳力人数", "劳动力人口")),
    Col("work_intent", "务工意向", ("就业意向", "务工意愿")),
    Col("helper_phone", "责任人电话", ("帮扶责任人电话", "帮扶人电话", "责任人手机", "帮扶责任人联系电话",
                                     "帮扶责任人手机", "帮扶干部电话", "责任人联系电话")),
    Col("team", "先锋队", ("所属先锋队", "先锋队名称")),
    Col("phone", "联系电话", ("电话", "手机", "手机号", "手机号码", "电话号码", "户主电话", "户主手机",
                            "户主联系电话", "联系方式", "联系手机")),
    Col("monitored", "监测对象", ("是否监测对象", "监测户", "是否监测户")),
    Col("lifted", "脱贫状态", ("是否脱贫", "脱贫情况")),
), anchor="number")

VILLAGES = Layout("villages", "村", (
    Col("area", "片区", ("所属片区", "片区名")),
    Col("village", "村", ("村名", "村/社区", "村(社区)", "社区", "行政村"), required=True),
    Col("hamlets", "组", ("村民小组", "小组", "组别", "组名")),
), anchor="village")

CADRES = Layout("cadres", "干部", (
    Col("name", "姓名", ("干部姓名", "名字"), required=True),
    Col("phone", "电话", ("手机", "手机号", "手机号码", "联系电话", "电话号码")),
    Col("role", "角色", ("干部类别", "类别")),
    Col("teams", "先锋队", ("所属先锋队",)),
    Col("villages", "村", ("联系村", "负责村", "包村", "所在村", "村/社区", "村(社区)")),
    Col("wecom", "企业微信", ("企业微信userid", "企业微信账号", "企业微信帐号", "企业微信id", "userid")),
), anchor="name")

GROUPS = Layout("groups", "工作群", (
    Col("name", "群名", ("群名称", "工作群", "群", "工作群名称"), required=True),
    Col("robot", "机器人地址", ("机器人", "群机器人地址", "机器人链接", "webhook", "webhook地址"), required=True),
    Col("villages", "覆盖村", ("覆盖的村",)),
    Col("areas", "覆盖片区", ("覆盖的片区",)),
    Col("teams", "覆盖先锋队", ("覆盖的先锋队",)),
    Col("covers_all", "全镇", ("覆盖全镇", "是否全镇", "全镇群")),
), anchor="name")

ORG_LAYOUTS = (GROUPS, CADRES, VILLAGES)  # detection order: a cadres sheet has a 村 column too
# Worksheet names of the organisation workbook (docs/households.md).
SHEET_NAMES = {
    "村": VILLAGES, "村组": VILLAGES, "村和组": VILLAGES, "片区村组": VILLAGES, "片区和村": VILLAGES,
    "干部": CADRES, "干部名单": CADRES,
    "工作群": GROUPS, "企业微信群": GROUPS, "群": GROUPS,
}


# -- finding the header ------------------------------------------------------------------

@dataclass
class Table:
    """A sheet read through a layout: which cell is which column, and the data rows."""

    layout: Layout
    sheet: Sheet
    header_line: int
    columns: dict[int, Col]  # cell index → column
    rows: list[tuple[Row, dict[str, str]]]  # non-blank rows below the header, values by column key

    @property
    def present(self) -> frozenset[str]:
        return frozenset(c.key for c in self.columns.values())

    @property
    def complete(self) -> bool:
        """Every required column is there (if not, the header error is the one to fix first)."""
        return all(c.key in self.present for c in self.layout.columns if c.required)


def find_header(sheet: Sheet, layout: Layout) -> int | None:
    """Index (in ``sheet.rows``) of the first row naming the layout's anchor column: titles sit above it."""
    for index, row in enumerate(sheet.rows[:HEADER_SCAN_ROWS]):
        for text in row.cells:
            col = layout.match(text) if text.strip() else None
            if isinstance(col, Col) and col.key == layout.anchor:
                return index
    return None


def detect_org_layout(sheet: Sheet) -> Layout | None:
    """Which organisation table a sheet is: by its name (村 / 干部 / 工作群), else by its header.

    HOUSEHOLDS is returned for a household roster, so the caller can say which command reads it.
    """
    if sheet.name is not None:
        by_name = SHEET_NAMES.get(header_key(sheet.name))
        if by_name is not None:
            return by_name
    for row in sheet.rows[:HEADER_SCAN_ROWS]:
        for layout in (HOUSEHOLDS, *ORG_LAYOUTS):
            if any(_is_anchor(layout, text) for text in row.cells):
                return layout
    return None


def _is_anchor(layout: Layout, text: str) -> bool:
    col = layout.match(text) if text.strip() else None
    return isinstance(col, Col) and col.key == layout.anchor


def read_layout(sheet: Sheet, layout: Layout, errors: list[RowError], warnings: list[str]) -> Table | None:
    """Map the header row to columns; header problems go to ``errors`` (on the header's line)."""
    index = find_header(sheet, layout)
    if index is None:
        return None
    header = sheet.rows[index]
    body = [row for row in sheet.rows[index + 1:] if not row.is_blank()]
    columns: dict[int, Col] = {}
    seen: dict[str, str] = {}

    def error(reason: str, line: int = header.line) -> None:
        errors.append(RowError(line, reason, sheet.name))

    width = max(len(row.cells) for row in [header, *body])  # a CSV row may run past its header
    for i in range(width):
        text = header.cells[i] if i < len(header.cells) else ""
        letter = column_letter(i)
        if not text.strip():
            if any(i < len(row.cells) and row.cells[i].strip() for row in body):
                error(f"{letter} 列有内容，但没有表头。请给这一列写上表头，或删掉这一列。")
            continue
        col = layout.match(text)
        if col is IGNORED:
            warnings.append(f"{_sheet_prefix(sheet)}已忽略「{text}」列（不导入）。")
        elif not isinstance(col, Col):
            error(f"不认识的列「{text}」（{letter} 列）。{layout.title}表可用的列：{layout.labels}。"
                  f"请改成其中一个，不需要的列请删掉。")
        elif col.key in seen:
            error(f"「{seen[col.key]}」和「{text}」都是“{col.label}”，请只留一列。")
        else:
            columns[i] = col
            seen[col.key] = text
    for col in layout.columns:
        if col.required and col.key not in seen:
            error(f"缺少「{col.label}」列。{layout.title}表必须有：{'、'.join(c.label for c in layout.columns if c.required)}。")
    for first, last, ref in sheet.merged_ranges:
        if last >= header.line:
            error(f"{ref} 是合并单元格，跨了几列，没法按行读取。请取消合并、每格填上内容后再导入。", first)
    rows = [(row, {col.key: (row.cells[i] if i < len(row.cells) else "") for i, col in columns.items()})
            for row in body]
    return Table(layout, sheet, header.line, columns, rows)


def _sheet_prefix(sheet: Sheet) -> str:
    return f"工作表「{sheet.name}」" if sheet.name else ""


# -- values --------------------------------------------------------------------------------

def nfkc(text: str) -> str:
    """Full-width digits, letters and brackets as their ASCII forms, trimmed."""
    return unicodedata.normalize("NFKC", text or "").strip()


def compact(text: str) -> str:
    """Names of people and places: no spaces (Excel users pad 两字名 as 张　三 to line them up)."""
    return re.sub(r"\s+", "", nfkc(text))


_SCIENTIFIC = re.compile(r"^[+-]?\d+(\.\d+)?e[+-]?\d+$", re.IGNORECASE)
_SEPARATORS = re.compile(r"[、,;/\s]+")  # after NFKC: 、，, ；; ／/ spaces and line breaks in a cell


def split_list(text: str) -> list[str]:
    """Several names in one cell: 一组、二组 / 帮扶，产业 / one per line. Order kept, repeats dropped."""
    seen: dict[str, None] = {}
    for part in _SEPARATORS.split(nfkc(text)):
        if part:
            seen.setdefault(part, None)
    return list(seen)


def parse_name(text: str, label: str, max_length: int = 32) -> str:
    value = compact(text)
    if not value:
        raise BadValue(f"{label}是空的")
    if len(value) > max_length:
        raise BadValue(f"{label}「{value[:max_length]}…」太长（最多 {max_length} 个字）")
    return value


def parse_optional_name(text: str, label: str, max_length: int = 32) -> str | None:
    return parse_name(text, label, max_length) if compact(text) else None


def parse_number(text: str) -> str:
    """户编号: digits and letters as written, leading zeros kept; a number Excel rounded is refused."""
    value = re.sub(r"\s+", "", nfkc(text))
    if not value:
        raise BadValue("户编号是空的")
    if _SCIENTIFIC.match(value):
        raise BadValue(f"户编号「{value}」被 Excel 变成了科学计数法，后几位已经丢失。"
                       "请把这一列设为“文本”格式，重新填写户编号")
    if not re.fullmatch(r"[0-9A-Za-z_-]{1,32}", value):
        raise BadValue(f"户编号「{value}」只能由数字和字母组成（最多 32 位）")
    return value


_MOBILE = re.compile(r"1[3-9]\d{9}")


def parse_phone(text: str, label: str) -> str:
    """A mainland mobile (11 digits) or a landline with its area code, normalised; "" when blank.

    ``+86 138-1234-5678`` and full-width digits become ``13812345678``; a
    landline becomes ``0851-8123456`` (area codes 010 and 02x have three
    digits, the others four). A landline typed as a number in Excel has lost
    its leading 0 and is refused rather than guessed.
    """
    raw = nfkc(text)
    value = re.sub(r"[\s\-()]", "", raw)
    if not value:
        return ""
    if _SCIENTIFIC.match(value):
        raise BadValue(f"{label}「{raw}」被 Excel 变成了科学计数法。请把这一列设为“文本”格式后重新填写")
    if value.startswith("+86"):
        value = value[3:]
    elif value.startswith("0086") and len(value) == 15:
        value = value[4:]
    elif value.startswith("86") and len(value) == 13:
        value = value[2:]
    if _MOBILE.fullmatch(value):
        return value
    if re.fullmatch(r"0\d{9,11}", value):
        code = 3 if value[1] in "12" else 4
        local = value[code:]
        if 7 <= len(local) <= 8 and local[0] not in "01":
            return f"{value[:code]}-{local}"
    raise BadValue(f"{label}「{raw}」不是手机号（11 位）或带区号的固定电话，只能填一个号码")


def parse_count(text: str, label: str, minimum: int) -> int | None:
    value = re.sub(r"\s+", "", nfkc(text)).removesuffix("人")
    if not value:
        return None
    match = re.fullmatch(r"(\d+)(?:\.0+)?", value)
    if not match:
        raise BadValue(f"{label}「{nfkc(text)}」不是整数")
    number = int(match.group(1))
    if not minimum <= number <= 99:
        raise BadValue(f"{label}「{number}」应在 {minimum}–99 之间")
    return number


_YES = frozenset("是 √ ✓ ✔ y yes true 1 有".split())
_NO = frozenset("否 不是 × ✗ ✘ n no false 0 无".split()) | {""}


def parse_flag(text: str, label: str) -> bool:
    value = compact(text).lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise BadValue(f"{label}只能填“是”或“否”，这里是「{nfkc(text)}」")


_LIFTED = frozenset("已脱贫 脱贫 已脱贫户 脱贫户 是".split())
_NOT_LIFTED = frozenset("未脱贫 未脱贫户 贫困户 否".split()) | {""}


def parse_lifted(text: str) -> bool:
    value = compact(text)
    if value in _LIFTED:
        return True
    if value in _NOT_LIFTED:
        return False
    raise BadValue(f"脱贫状态只能填“已脱贫”或“未脱贫”，这里是「{nfkc(text)}」")


def parse_team(text: str) -> str | None:
    """One of the five teams, by its two-character name (帮扶 / 帮扶队 / 帮扶先锋队)."""
    value = compact(text)
    if not value:
        return None
    core = value.removesuffix("先锋队").removesuffix("队")
    if core not in TEAM_NAMES:
        raise BadValue(f"没有「{value}」这个先锋队，只有{'、'.join(TEAM_NAMES)}")
    return core


def parse_teams(text: str) -> list[str]:
    teams = [parse_team(part) for part in split_list(text)]
    return list(dict.fromkeys(t for t in teams if t))


def parse_role(text: str) -> str | None:
    value = compact(text)
    if not value:
        return None
    if value not in ROLES:
        raise BadValue(f"角色「{value}」不对，只能是{'、'.join(ROLES)}")
    return value


ROBOT_URL = re.compile(r"https://qyapi\.weixin\.qq\.com/cgi-bin/webhook/send\?key=[0-9A-Za-z_-]{8,64}")


def parse_robot_url(text: str) -> str:
    value = nfkc(text).replace(" ", "")
    if not value:
        raise BadValue("机器人地址是空的")
    if not ROBOT_URL.fullmatch(value):
        # The address is a key that lets anyone post to the group: not repeated in the message.
        raise BadValue("机器人地址不对，应是 https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=… "
                       "（企业微信群 → 群机器人 → 复制 Webhook 地址）")
    return value


def parse_wecom_userid(text: str) -> str | None:
    value = nfkc(text)
    if not value:
        return None
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", value):
        raise BadValue(f"企业微信「{value}」不是账号（userid 只有字母、数字和 _ . @ -）")
    return value


# -- households ------------------------------------------------------------------------------

@dataclass
class HouseholdRecord:
    """One valid row of a household file. ``values`` holds only the optional columns the file has:
    a column left out of the file leaves that field alone on re-import, a blank cell clears it."""

    line: int
    sheet: str | None
    number: str
    head_name: str
    village: str
    helper: str
    helper_phone: str = ""  # "" when not given
    area: str | None = None  # None when not given
    values: dict[str, object] = field(default_factory=dict)
    # Why the row cannot be imported as it is; the importer adds what only the database can tell
    # (unknown village, cadre…) so the cadre sees every reason of a row at once.
    problems: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)  # keys of the columns at fault
    letters: dict[str, str] = field(default_factory=dict)  # column key → Excel letter in this sheet

    def columns(self, keys: Sequence[str]) -> tuple[tuple[str, str], ...]:
        """(letter, label) of these columns, each once, left to right as the cadre sees them in Excel."""
        found = [(self.letters[key], HOUSEHOLDS.column(key).label) for key in dict.fromkeys(keys) if key in self.letters]
        return tuple(sorted(found, key=lambda pair: (len(pair[0]), pair[0])))  # B before AA


def validate_households(sheets: Sequence[Sheet]) -> tuple[list[HouseholdRecord], list[RowError], list[str]]:
    """A record per data row (bad ones carry ``problems``), errors of the file and header, and warnings.

    A cell that cannot be read leaves its field empty ("" or None), so the
    importer can still check the row's other names against the database.
    """
    errors: list[RowError] = []
    warnings: list[str] = []
    tables: list[Table] = []
    for sheet in sheets:
        table = read_layout(sheet, HOUSEHOLDS, errors, warnings)
        if table is not None:
            tables.append(table)
        elif any(not row.is_blank() for row in sheet.rows):
            warnings.append(f"已跳过工作表「{sheet.name}」：前 {HEADER_SCAN_ROWS} 行里没有“户编号”列。")
    if not tables:
        kinds = [detect_org_layout(sheet) for sheet in sheets]
        hint = "（这像是村、干部或工作群表，请用 sisong org import 导入。）" if any(kinds) else ""
        errors.append(RowError(None, f"找不到表头：前 {HEADER_SCAN_ROWS} 行里没有“户编号”列。表头一行应有"
                                     f" 户编号、户主姓名、村、帮扶责任人。{hint}"))
        return [], errors, warnings
    if all(table.complete and not table.rows for table in tables):
        warnings.append("表头下面没有户信息。")
    records: list[HouseholdRecord] = []
    first_line: dict[str, RowError] = {}
    for table in tables:
        if not table.complete:
            continue
        present = table.present
        letters = {col.key: column_letter(i) for i, col in table.columns.items()}
        for row, cells in table.rows:
            reasons: list[str] = []
            bad: list[str] = []

            def take(key, parse, *args):  # type: ignore[no-untyped-def]
                try:
                    return parse(*args)
                except BadValue as exc:
                    reasons.append(str(exc))
                    bad.append(key)
                    return None

            number = take("number", parse_number, cells["number"])
            if number is not None:
                earlier = first_line.get(number)
                if earlier is not None:
                    same = earlier.sheet == table.sheet.name
                    where = f"第 {earlier.line} 行" if same else earlier.where()
                    merged = "（这一格是合并单元格）" if _merged(table, row, "number") else ""
                    reasons.append(f"户编号 {number} 与{where}重复{merged}")
                    bad.append("number")
                else:
                    first_line[number] = RowError(row.line, "", table.sheet.name)
            record = HouseholdRecord(
                line=row.line, sheet=table.sheet.name, number=number or "",
                head_name=take("head_name", parse_name, cells["head_name"], "户主姓名") or "",
                village=take("village", parse_name, cells["village"], "村", 64) or "",
                helper=take("helper", parse_name, cells["helper"], "帮扶责任人") or "",
                letters=letters,
            )
            if "helper_phone" in present:
                record.helper_phone = take("helper_phone", parse_phone, cells["helper_phone"], "责任人电话") or ""
            if "area" in present:
                record.area = take("area", parse_optional_name, cells["area"], "片区", 64)
            values = record.values
            if "hamlet" in present:
                values["hamlet"] = take("hamlet", parse_optional_name, cells["hamlet"], "组")
            if "population" in present:
                values["population"] = take("population", parse_count, cells["population"], "人口数", 1)
            if "labourers" in present:
                values["labourers"] = take("labourers", parse_count, cells["labourers"], "劳动力人数", 0)
            if "work_intent" in present:
                intent = nfkc(cells["work_intent"])
                if len(intent) > 255:
                    reasons.append("务工意向太长（最多 255 个字）")
                    bad.append("work_intent")
                values["work_intent"] = intent or None
            if "team" in present:
                values["team"] = take("team", parse_team, cells["team"])
            if "phone" in present:
                values["phone"] = take("phone", parse_phone, cells["phone"], "联系电话") or None
            if "monitored" in present:
                values["monitored"] = take("monitored", parse_flag, cells["monitored"], "监测对象")
            if "lifted" in present:
                values["lifted"] = take("lifted", parse_lifted, cells["lifted"])
            population, labourers = values.get("population"), values.get("labourers")
            if isinstance(population, int) and isinstance(labourers, int) and labourers > population:
                reasons.append(f"劳动力人数（{labourers}）比人口数（{population}）还多")
                bad += ["labourers", "population"]
            record.problems = reasons
            record.bad = bad
            records.append(record)
    return records, errors, warnings



def without_unkept_columns(sheets: Sequence[Sheet], layout: Layout = HOUSEHOLDS) -> list[Sheet]:
    """The sheets as an import reads them, with every cell it does not keep emptied.

    For keeping an uploaded file between its check and its import (the
    console's 确认导入): rosters often carry 身份证号 and other columns the
    import skips, and those must not be stored even for a few minutes.
    Sheets without the layout's header are dropped; title rows above the
    header are emptied (a "填报人" line may carry a phone); below the header
    only the cells of known columns stay. The header stays and every row keeps
    its line number, so the second check reports the same lines and warnings.
    """
    kept: list[Sheet] = []
    for sheet in sheets:
        index = find_header(sheet, layout)
        if index is None:
            continue
        header = sheet.rows[index]
        known = {i for i, text in enumerate(header.cells) if text.strip() and isinstance(layout.match(text), Col)}
        rows = [Row(row.line, [""] * len(row.cells)) for row in sheet.rows[:index]] + [header]
        for row in sheet.rows[index + 1:]:
            cells = [cell if i in known else "" for i, cell in enumerate(row.cells)]
            rows.append(Row(row.line, cells, frozenset(i for i in row.merged if i in known)))
        kept.append(Sheet(sheet.name, rows, list(sheet.merged_ranges)))
    return kept


def _merged(table: Table, row: Row, key: str) -> bool:
    return any(col.key == key and i in row.merged for i, col in table.columns.items())


# -- organisation ------------------------------------------------------------------------------

@dataclass
class VillageRecord:
    line: int
    sheet: str | None
    village: str
    area: str | None  # None: not stated on this row
    hamlets: list[str]


@dataclass
class CadreRecord:
    """``None`` for a column the file does not have (or, for role, a blank cell): left as it is."""

    line: int
    sheet: str | None
    name: str
    phone: str  # "" when not given
    role: str | None
    teams: list[str] | None
    villages: list[str] | None
    wecom: str | None
    has_wecom: bool


@dataclass
class GroupRecord:
    line: int
    sheet: str | None
    name: str
    robot_url: str
    villages: list[str] | None
    areas: list[str] | None
    teams: list[str] | None
    covers_all: bool | None


@dataclass
class OrgRecords:
    villages: list[VillageRecord] = field(default_factory=list)
    cadres: list[CadreRecord] = field(default_factory=list)
    groups: list[GroupRecord] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def validate_org(sheets: Sequence[Sheet]) -> OrgRecords:
    """The 村 / 干部 / 工作群 tables of a workbook (any subset) or a CSV holding one of them."""
    out = OrgRecords()
    tables: list[Table] = []
    for sheet in sheets:
        layout = detect_org_layout(sheet)
        if layout is HOUSEHOLDS:
            out.errors.append(RowError(None, "这是户信息表（有“户编号”列），请用 sisong households import 导入。",
                                       sheet.name))
            continue
        if layout is None:
            if any(not row.is_blank() for row in sheet.rows):
                if sheet.name is None:
                    out.errors.append(RowError(None, "看不出这是哪种表：表头里要有“村”（村表）、“姓名”（干部表）"
                                                     "或“群名”（工作群表）。"))
                else:
                    out.warnings.append(f"已跳过工作表「{sheet.name}」：不是村、干部或工作群表。"
                                        "（工作表名请用 村 / 干部 / 工作群。）")
            continue
        table = read_layout(sheet, layout, out.errors, out.warnings)
        if table is None:
            out.errors.append(RowError(None, f"找不到表头：前 {HEADER_SCAN_ROWS} 行里没有"
                                             f"“{layout.column(layout.anchor).label}”列。", sheet.name))
            continue
        tables.append(table)
    if not tables and not out.errors:
        out.errors.append(RowError(None, "文件里没有村、干部或工作群表。"))
    for table in tables:
        if not table.complete:
            continue
        {"villages": _village_rows, "cadres": _cadre_rows, "groups": _group_rows}[table.layout.kind](table, out)
    _check_villages(out)
    _check_cadres(out)
    _check_groups(out)
    return out


class _Row:
    """Collects every reason a row is bad while its cells are parsed."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def take(self, parse, *args):  # type: ignore[no-untyped-def]
        try:
            return parse(*args)
        except BadValue as exc:
            self.reasons.append(str(exc))
            return None

    def report(self, out: OrgRecords, table: Table, row: Row) -> bool:
        if self.reasons:
            out.errors.append(RowError(row.line, "；".join(self.reasons) + "。", table.sheet.name))
        return not self.reasons


def _village_rows(table: Table, out: OrgRecords) -> None:
    present = table.present
    for row, cells in table.rows:
        check = _Row()
        village = check.take(parse_name, cells["village"], "村", 64)
        area = check.take(parse_optional_name, cells["area"], "片区", 64) if "area" in present else None
        hamlets = split_list(cells["hamlets"]) if "hamlets" in present else []
        for hamlet in hamlets:
            if len(hamlet) > 32:
                check.reasons.append(f"组名「{hamlet[:32]}…」太长（最多 32 个字）")
        if check.report(out, table, row):
            out.villages.append(VillageRecord(row.line, table.sheet.name, village, area, hamlets))


def _cadre_rows(table: Table, out: OrgRecords) -> None:
    present = table.present
    for row, cells in table.rows:
        check = _Row()
        name = check.take(parse_name, cells["name"], "姓名")
        phone = check.take(parse_phone, cells["phone"], "电话") if "phone" in present else ""
        role = check.take(parse_role, cells["role"]) if "role" in present else None
        teams = check.take(parse_teams, cells["teams"]) if "teams" in present else None
        villages = split_list(cells["villages"]) if "villages" in present else None
        wecom = check.take(parse_wecom_userid, cells["wecom"]) if "wecom" in present else None
        if check.report(out, table, row):
            out.cadres.append(CadreRecord(row.line, table.sheet.name, name, phone or "", role,
                                          teams, villages, wecom, "wecom" in present))


def _group_rows(table: Table, out: OrgRecords) -> None:
    present = table.present
    for row, cells in table.rows:
        check = _Row()
        name = check.take(parse_name, cells["name"], "群名", 64)
        robot = check.take(parse_robot_url, cells["robot"])
        villages = split_list(cells["villages"]) if "villages" in present else None
        areas = split_list(cells["areas"]) if "areas" in present else None
        teams = check.take(parse_teams, cells["teams"]) if "teams" in present else None
        covers_all = check.take(parse_flag, cells["covers_all"], "全镇") if "covers_all" in present else None
        if check.report(out, table, row):
            out.groups.append(GroupRecord(row.line, table.sheet.name, name, robot, villages, areas, teams,
                                          covers_all))


def _check_villages(out: OrgRecords) -> None:
    """One village on several rows (one per 组) must not sit in two 片区."""
    area_of: dict[str, VillageRecord] = {}
    keep = []
    for rec in out.villages:
        if rec.area:
            earlier = area_of.get(rec.village)
            if earlier is not None and earlier.area != rec.area:
                out.errors.append(RowError(rec.line, f"村「{rec.village}」在第 {earlier.line} 行属于片区「{earlier.area}」，"
                                                     f"这里写的是「{rec.area}」。", rec.sheet))
                continue
            area_of.setdefault(rec.village, rec)
        keep.append(rec)
    out.villages = keep


def _check_cadres(out: OrgRecords) -> None:
    """Names repeat among cadres; the phone tells them apart, so repeated names need phones."""
    by_name: dict[str, list[CadreRecord]] = {}
    for rec in out.cadres:
        by_name.setdefault(rec.name, []).append(rec)
    bad: set[int] = set()
    for name, recs in by_name.items():
        if len(recs) < 2:
            continue
        seen: dict[str, CadreRecord] = {}
        for rec in recs:
            if not rec.phone:
                out.errors.append(RowError(rec.line, f"表里有 {len(recs)} 位叫「{name}」的干部，"
                                                     "请给每一位填上电话以区分。", rec.sheet))
                bad.add(id(rec))
            elif rec.phone in seen:
                out.errors.append(RowError(rec.line, f"干部「{name}」（电话 {rec.phone}）与第 {seen[rec.phone].line} 行重复。",
                                           rec.sheet))
                bad.add(id(rec))
            else:
                seen[rec.phone] = rec
    out.cadres = [rec for rec in out.cadres if id(rec) not in bad]


def _check_groups(out: OrgRecords) -> None:
    seen: dict[str, GroupRecord] = {}
    keep = []
    for rec in out.groups:
        if rec.name in seen:
            out.errors.append(RowError(rec.line, f"工作群「{rec.name}」与第 {seen[rec.name].line} 行重复。", rec.sheet))
            continue
        seen[rec.name] = rec
        keep.append(rec)
    out.groups = keep
