"""Turn a file into a document's title and body text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from commons.errors import IngestError
from commons.objects import normalise_text

_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Extracted:
    title: str
    body: str
    media_type: str


def guess_title(body: str, fallback: str) -> str:
    match = _HEADING.search(body[:4000])
    if match:
        return normalise_text(match.group(1))[:300]
    for line in body.splitlines():
        if line.strip():
            return normalise_text(line)[:120]
    return fallback


def decode_text(data: bytes, name: str) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(
            f"{name} is not UTF-8 text (bad byte at offset {exc.start}); convert it to UTF-8"
            " or add it as .html or .pdf"
        ) from exc
    if "\x00" in text:
        raise IngestError(f"{name} holds NUL bytes; it looks like a binary file, not text")
    return text


def extract_text(data: bytes, name: str, media_type: str) -> Extracted:
    body = normalise_text(decode_text(data, name).replace("\r\n", "\n"))
    if not body:
        raise IngestError(f"{name} is empty; there is nothing to add")
    return Extracted(guess_title(body, Path(name).stem), body, media_type)


SUFFIXES = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
}


def extract_file(path: Path) -> Extracted:
    """Read a file and return its text. Raises IngestError with what to do."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        known = ", ".join(sorted(SUFFIXES))
        raise IngestError(f"{path}: cannot read {suffix or 'files without a suffix'}; known: {known}")
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise IngestError(f"{path} does not exist") from exc
    except IsADirectoryError as exc:
        raise IngestError(f"{path} is a directory; give the files in it") from exc
    except PermissionError as exc:
        raise IngestError(f"{path} cannot be read (permission denied)") from exc
    except OSError as exc:
        raise IngestError(f"{path} cannot be read: {exc.strerror}") from exc
    return extract_text(data, str(path), SUFFIXES[suffix])
