"""Reading a multipart upload ourselves: counted as it arrives, after the login check.

FastAPI's ``UploadFile`` parameters read (and spool to disk) the whole body
before the route runs, that is before its account check. Routes that take
files therefore declare no body parameters: they check the caller, then call
``read_multipart``, which refuses more than ``max_bytes`` while the body is
still arriving (413), and a body that is not multipart (415).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from fastapi import HTTPException, Request, status
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

# Multipart framing and the form's small fields on top of the files themselves.
_FRAMING = 64 * 1024


@dataclass
class UploadedFile:
    name: str
    data: bytes


@dataclass
class Multipart:
    files: list[UploadedFile] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    # A file field was sent, even one with no name or no bytes (an empty file is the caller's to explain).
    has_file: bool = False

    @property
    def file(self) -> UploadedFile | None:
        return self.files[0] if self.files else None


def file_name(raw: str) -> str:
    """The file's own name: browsers on Windows may send C:\\fakepath\\x.docx."""
    return PurePosixPath((raw or "").replace("\\", "/")).name.strip()[:255]


async def read_multipart(request: Request, *, field_name: str, max_bytes: int, too_big: str,
                         max_files: int = 1, hint: str | None = None) -> Multipart:
    """The files sent as ``field_name`` and the other fields, at most ``max_bytes`` in all."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                            hint or f"请用 multipart/form-data 上传文件（字段名 {field_name}）。")
    limit = max_bytes + _FRAMING
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, too_big)

    async def counted() -> AsyncIterator[bytes]:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, too_big)
            yield chunk

    parser = MultiPartParser(request.headers, counted(), max_files=max_files, max_fields=20,
                             max_part_size=64 * 1024)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        if "Too many files" in exc.message:
            many = "一次只能导入一个文件。" if max_files == 1 else f"一次最多导入 {max_files} 个文件。"
            raise HTTPException(status.HTTP_400_BAD_REQUEST, many) from None
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "上传的内容不完整或格式不对，请重新选择文件再试。") from None
    result = Multipart()
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key == field_name:
                    result.has_file = True
                    if value.filename or max_files == 1:
                        result.files.append(UploadedFile(file_name(value.filename or ""), await value.read()))
            else:
                result.fields[key] = value
    finally:
        await form.close()
    if sum(len(f.data) for f in result.files) > max_bytes:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, too_big)
    return result


def form_flag(fields: dict[str, str], name: str, default: bool) -> bool:
    """A multipart form's yes/no field as browsers and scripts send it; anything else is a 422 naming it."""
    value = fields.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "on", "yes"):
        return True
    if value in ("0", "false", "off", "no"):
        return False
    raise HTTPException(422, f"填写的内容不对：{name}：应当是 true 或 false。")
