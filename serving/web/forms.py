"""URL-encoded form bodies, read without python-multipart: the pages post a handful of short fields.

Larger or differently encoded bodies are refused rather than parsed, so a page POST cannot make the
server buffer a big upload.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

#: The longest page form: a note of `MAX_NOTE_CHARS` Chinese characters, percent-encoded, plus fields.
MAX_FORM_BYTES = 64 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"


class FormError(ValueError):
    """The body is not a small URL-encoded form."""


async def read_form(request: Request) -> dict[str, str]:
    """The form's fields (the last value of a repeated field wins); FormError if not a small form."""
    return {name: values[-1] for name, values in (await read_form_lists(request)).items()}


async def read_form_lists(request: Request, max_fields: int = 32) -> dict[str, list[str]]:
    """Every value of each field, in order (the queue's checkboxes repeat one field)."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != FORM_TYPE:
        raise FormError(f"expected {FORM_TYPE}")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_FORM_BYTES:
            raise FormError(f"form over {MAX_FORM_BYTES} bytes")
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormError("form is not UTF-8") from exc
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=max_fields)
    except ValueError as exc:
        raise FormError("too many form fields") from exc
    if any("\x00" in name or "\x00" in value for name, value in pairs):
        raise FormError("form holds NUL characters")  # PostgreSQL text cannot store them (a 500 otherwise)
    fields: dict[str, list[str]] = {}
    for name, value in pairs:
        fields.setdefault(name, []).append(value)
    return fields
