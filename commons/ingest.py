"""Turn a file into a document's title and body text.

.txt and .md are read as UTF-8; .html keeps the page's main text (trafilatura
drops menus, footers and comments) as Markdown; .pdf keeps each page's text
with a form feed between pages, so a passage's page number can be cited.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from commons.model.errors import IngestError
from commons.model.objects import MAX_OBJECT_BYTES, normalise_text
from commons.search.chunking import PAGE_BREAK

_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Extracted:
    title: str
    body: str
    media_type: str
    note: str | None = None  # what reading it assumed, for the person adding it


def guess_title(body: str, fallback: str) -> str:
    match = _HEADING.search(body[:4000])
    if match:
        return normalise_text(match.group(1))[:300]
    for line in body.splitlines():
        if line.strip():
            return normalise_text(line)[:120]
    return fallback


def decode_text(data: bytes, name: str) -> tuple[str, str | None]:
    """The text, and a note when it was not UTF-8 and its encoding had to be guessed."""
    note = None
    if b"\x00" in data[:65536]:
        raise IngestError(
            f"{name} is not UTF-8 text: it holds NUL bytes, so it is a binary file (or UTF-16:"
            " save it as UTF-8)"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        text, encoding = _guess_decode(data, name, exc.start)
        note = f"{name} is not UTF-8; read it as {encoding}"
    if "\x00" in text:
        raise IngestError(f"{name} holds NUL bytes; it looks like a binary file, not text")
    return text, note


_COMMON_ENCODINGS = ("cp1252", "latin_1", "iso8859_15")


def _guess_decode(data: bytes, name: str, bad_at: int) -> tuple[str, str]:
    from charset_normalizer import from_bytes

    results = list(from_bytes(data))
    # Several code pages often read a short text equally well; then the commonest
    # one (Windows' western code page, a superset of Latin-1) is the likeliest.
    best = None
    if results:
        top = [r for r in results if (r.chaos, -r.coherence) == (results[0].chaos,
                                                                  -results[0].coherence)]
        best = next((r for r in top if r.encoding in _COMMON_ENCODINGS), results[0])
    if best is None:
        raise IngestError(
            f"{name} is neither UTF-8 (bad byte at offset {bad_at}) nor text in another"
            " encoding that could be recognised; it may be a binary file"
        )
    return str(best), best.encoding


def extract_text(data: bytes, name: str, media_type: str) -> Extracted:
    text, note = decode_text(data, name)
    body = normalise_text(text.replace("\r\n", "\n"))
    if not body:
        raise IngestError(f"{name} is empty; there is nothing to add")
    return Extracted(guess_title(body, Path(name).stem), body, media_type, note)


SUFFIXES = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".xhtml": "text/html",
    ".pdf": "application/pdf",
}
# Room left in a signed object for the other fields and JSON escapes.
_OBJECT_OVERHEAD = 8 * 1024
# Control characters a document body may not hold (objects.py); \f, \t, \n stay.
_BAD_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def clean_body(text: str) -> str:
    """Line ends as \n, no control characters a signed body refuses, NFC."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return normalise_text(_BAD_CONTROL.sub("", text))


def check_size(body: str, name: str) -> None:
    size = len(json.dumps(body, ensure_ascii=False).encode("utf-8"))
    if size + _OBJECT_OVERHEAD > MAX_OBJECT_BYTES:
        raise IngestError(
            f"{name}: its text is {size // 1024} KiB, more than one document can hold"
            f" ({(MAX_OBJECT_BYTES - _OBJECT_OVERHEAD) // 1024} KiB); split it into parts"
        )


def extract_html(data: bytes, name: str) -> Extracted:
    """The main text of a web page as Markdown: no menus, footers or comments."""
    try:
        import trafilatura
    except ImportError as exc:
        raise IngestError(
            f"{name}: reading HTML needs trafilatura (and lxml_html_clean); run `make install`"
        ) from exc
    body = trafilatura.extract(
        data,
        output_format="markdown",
        include_comments=False,
        include_tables=True,
        include_links=False,
        include_images=False,
    )
    body = clean_body(body or "")
    if not body:
        raise IngestError(
            f"{name}: found no main text in this page (it may be built by JavaScript,"
            " or be only a menu); save the article's text as .txt or .md instead"
        )
    title = None
    if not _HEADING.search(body[:4000]):
        metadata = trafilatura.extract_metadata(data)
        title = normalise_text(metadata.title)[:300] if metadata and metadata.title else None
    return Extracted(title or guess_title(body, Path(name).stem), body, "text/markdown")


def extract_pdf(data: bytes, name: str) -> Extracted:
    """The text of each page, pages separated by form feeds so citations can name pages."""
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # it warns about every odd font
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError(f"{name} is encrypted with a password; save a copy without one")
        pages = [clean_body(page.extract_text() or "") for page in reader.pages]
        info = reader.metadata
    except IngestError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise IngestError(f"{name} is not a readable PDF ({exc})") from exc
    except Exception as exc:  # pypdf raises many kinds on damaged files
        raise IngestError(f"{name} is not a readable PDF ({type(exc).__name__}: {exc})") from exc
    if not any(pages):
        raise IngestError(
            f"{name} has no text layer (a scan?); run OCR on it first, for example with"
            " ocrmypdf, then add the result"
        )
    # A blank first page would be lost when the body is trimmed, and every later
    # page number with it: mark blank leading pages instead.
    for i, text in enumerate(pages):
        if text:
            break
        pages[i] = f"[page {i + 1} has no text]"
    body = normalise_text(PAGE_BREAK.join(pages))
    title = None
    if info is not None and info.title and str(info.title).strip():
        title = normalise_text(clean_body(str(info.title)))[:300] or None
    return Extracted(title or guess_title(body, Path(name).stem), body, "text/plain")


def extract_bytes(data: bytes, name: str, media_type: str) -> Extracted:
    """Text of a file's bytes, by the media type its suffix gave."""
    if media_type == "text/html":
        extracted = extract_html(data, name)
    elif media_type == "application/pdf":
        extracted = extract_pdf(data, name)
    else:
        extracted = extract_text(data, name, media_type)
    check_size(extracted.body, name)
    return extracted


def files_under(directory: Path) -> tuple[list[Path], list[Path]]:
    """(files `extract_file` can read, other files) under `directory`, sorted; hidden
    files and folders are left out of both."""
    readable: list[Path] = []
    skipped: list[Path] = []
    for path in sorted(directory.rglob("*")):
        if any(part.startswith(".") for part in path.relative_to(directory).parts):
            continue
        if path.is_file():
            (readable if path.suffix.lower() in SUFFIXES else skipped).append(path)
    return readable, skipped


def extract_file(path: Path) -> Extracted:
    """Read a file and return its text. Raises IngestError with what to do."""
    suffix = path.suffix.lower()
    if path.is_dir():
        readable, _ = files_under(path)
        raise IngestError(
            f"{path} is a directory; `commons add --recursive {path}` adds the"
            f" {len(readable)} files under it that can be read ({', '.join(sorted(SUFFIXES))})"
        )
    if suffix not in SUFFIXES:
        known = ", ".join(sorted(SUFFIXES))
        raise IngestError(
            f"{path}: cannot read {f'{suffix} files' if suffix else 'files without a suffix'};"
            f" known: {known}"
            " (convert it to one of these, or paste its text with `commons add -`)"
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise IngestError(f"{path} does not exist") from exc
    except IsADirectoryError as exc:
        raise IngestError(
            f"{path} is a directory; `commons add --recursive {path}` adds the files under it"
        ) from exc
    except PermissionError as exc:
        raise IngestError(f"{path} cannot be read (permission denied)") from exc
    except OSError as exc:
        raise IngestError(f"{path} cannot be read: {exc.strerror}") from exc
    return extract_bytes(data, str(path), SUFFIXES[suffix])
