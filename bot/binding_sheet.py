"""The printable sheet of binding labels: one label per household, stuck on its policy handbook.

Why HTML and not PDF: a PDF with Chinese text needs a CJK font embedded, and
we ship none; every office PC's browser renders Chinese and prints HTML to A4
(or to PDF) as it is. The sheet is self-contained: the QR codes are inline
SVG drawn here with segno from the URL WeChat returned, so nothing is fetched
from a CDN or from WeChat when it is opened or printed.

Only what the label needs is on it: village and 组, the 户主 masked
(``mask_name``), the 户编号 (so whoever delivers the handbooks sticks the
right label on the right book), the QR code and the code in large type.

``sheet_for`` is the one way a sheet is made: ``sisong households codes
--out`` writes it to a file, the console's 打印绑定标签 page serves it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from html import escape

import segno

from storage.binding import format_code
from storage.models.org import Household
from storage.privacy import mask_name


@dataclass(frozen=True)
class Label:
    village: str
    hamlet: str
    head: str  # masked
    number: str
    code: str
    qr_url: str | None

    @classmethod
    def of(cls, household: Household) -> "Label":
        return cls(
            village=household.village.name,
            hamlet=household.hamlet.name if household.hamlet else "",
            head=mask_name(household.head_name),
            number=household.number,
            code=household.code or "",
            qr_url=household.qr_url,
        )


def qr_svg(url: str) -> str:
    """The QR code as inline SVG; its size is set by the sheet's CSS (no width/height attributes)."""
    return segno.make(url, error="m").svg_inline(scale=1, border=4, omitsize=True, svgclass="qr",
                                                 lineclass=None, title="微信扫码绑定")


_CSS = """
@page { size: A4; margin: 10mm; }
* { box-sizing: border-box; }
body { margin: 0; font-family: "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "PingFang SC",
       "SimHei", sans-serif; color: #000; }
.note { margin: 4mm 0; font-size: 11pt; }
.sheet { display: grid; grid-template-columns: 95mm 95mm; grid-auto-rows: 66mm; }
.label { border: 0.3mm dashed #888; padding: 4mm; display: grid; grid-template-columns: 40mm 1fr;
         grid-template-rows: 40mm 1fr; column-gap: 3mm; row-gap: 1mm; overflow: hidden;
         break-inside: avoid; page-break-inside: avoid; }
.qrbox svg, .noqr { width: 40mm; height: 40mm; display: block; }
.noqr { border: 0.3mm solid #ccc; display: flex; align-items: center; justify-content: center;
        font-size: 9pt; color: #666; text-align: center; }
.info { min-width: 0; overflow: hidden; }
.place { font-size: 13pt; font-weight: bold; }
.head { font-size: 13pt; margin-top: 1.5mm; }
.number { font-size: 8pt; color: #444; margin-top: 1mm; word-break: break-all; }
.how { font-size: 9pt; margin-top: 2mm; line-height: 1.35; }
.coderow { grid-column: 1 / 3; display: flex; align-items: baseline; gap: 3mm; white-space: nowrap; }
.codecap { font-size: 11pt; }
.code { font-size: 28pt; font-weight: bold; letter-spacing: 0.8mm;
        font-family: "DejaVu Sans Mono", Consolas, "Courier New", monospace; }
@media print { .note { display: none; } }
"""


def render_sheet(labels: list[Label], title: str = "四送助手 绑定标签") -> str:
    """The whole sheet as one HTML document: 2 × 4 labels of 95 × 66 mm per A4 page."""
    cells = "\n".join(_label_html(label) for label in labels)
    return (
        "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<p class=\"note\">{escape(title)}：共 {len(labels)} 户。打印时选 A4 纸、不缩放（实际大小），"
        "沿虚线剪下，贴在对应户的政策手册上。</p>\n"
        f"<div class=\"sheet\">\n{cells}\n</div>\n</body>\n</html>\n"
    )


def sheet_for(households: Iterable[Household], village: str | None = None) -> tuple[str, int]:
    """The sheet for these households (those with a code: a label without one binds nothing), and its count."""
    labels = [Label.of(h) for h in households if h.code]
    title = "四送助手 绑定标签" + (f"（{village}）" if village else "")
    return render_sheet(labels, title), len(labels)


def _label_html(label: Label) -> str:
    qr = (f"<div class=\"qrbox\">{qr_svg(label.qr_url)}</div>" if label.qr_url
          else "<div class=\"noqr\">（未生成二维码）</div>")
    place = label.village + (f" {label.hamlet}" if label.hamlet else "")
    code = escape(format_code(label.code))
    return (
        "<div class=\"label\">"
        f"{qr}"
        "<div class=\"info\">"
        f"<div class=\"place\">{escape(place)}</div>"
        f"<div class=\"head\">户主：{escape(label.head)}</div>"
        f"<div class=\"number\">户编号 {escape(label.number)}</div>"
        "<div class=\"how\">全家人都可以绑定：<br>微信扫左边的二维码，<br>或在四送助手里发<br>“绑定”加下面的绑定码。</div>"
        "</div>"
        f"<div class=\"coderow\"><span class=\"codecap\">绑定码</span><span class=\"code\">{code}</span></div>"
        "</div>"
    )
