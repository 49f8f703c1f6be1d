"""Ingest: text, Markdown, HTML main text and PDF pages, with clear errors for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from commons.api import LocalApi
from commons.ingest import extract_file
from commons.model.errors import IngestError
from commons.service import Commons


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A minimal PDF with one Helvetica text page per string ("" makes a blank page)."""
    objs: list[str] = ["", "", "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        ops = ["BT", "/F1 12 Tf", "72 720 Td", "14 TL"]
        for line in text.split("\n"):
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        stream = "\n".join([*ops, "ET"]) if text else ""
        objs.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        objs.append(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
            f" /Resources << /Font << /F1 3 0 R >> >> /Contents {len(objs)} 0 R >>"
        )
        kids.append(len(objs))
    objs[0] = "<< /Type /Catalog /Pages 2 0 R >>"
    objs[1] = f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>"
    if title:
        objs.append(f"<< /Title ({title}) >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, obj in enumerate(objs, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{obj}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{off:010d} 00000 n \n".encode() for off in offsets)
    info = f" /Info {len(objs)} 0 R" if title else ""
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R{info} >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Filters | Village wiki</title>
</head><body><nav><ul><li><a href="/">Home</a></li><li><a href="/about">About us</a></li>
<li>Log in to edit</li></ul></nav><main><article><h1>Building a sand water filter</h1>
<p>A slow sand filter cleans water by letting it trickle through layers of fine sand and gravel.
The top layer grows a biological film that removes most germs.</p><h2>Materials</h2>
<p>You need a large drum, clean sand, gravel and a tap. Wash the sand until the water runs
clear before you fill the drum.</p><p>Let the filter run for two weeks before drinking the water,
so that the biological layer can form.</p></article></main>
<footer>Copyright 2024 Village wiki. Privacy policy. Contact the webmaster.</footer></body></html>
"""


def test_html_keeps_the_main_text_without_menus_or_footer(tmp_path: Path) -> None:
    path = tmp_path / "filter.html"
    path.write_text(PAGE, encoding="utf-8")
    extracted = extract_file(path)
    assert extracted.title == "Building a sand water filter"
    assert extracted.media_type == "text/markdown"
    assert "slow sand filter" in extracted.body and "## Materials" in extracted.body
    for noise in ("About us", "Log in to edit", "Copyright", "webmaster"):
        assert noise not in extracted.body


def test_html_without_main_text_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "empty.htm"
    path.write_text(  # a page that JavaScript builds in the browser
        "<html><head><title>App</title></head><body><div id='root'></div>"
        "<script>render()</script></body></html>"
    )
    with pytest.raises(IngestError, match="no main text"):
        extract_file(path)


def test_pdf_pages_are_kept_apart_by_form_feeds(tmp_path: Path) -> None:
    path = tmp_path / "guide.pdf"
    path.write_bytes(make_pdf(["Sand filters clean water.", "", "Chlorine kills germs."],
                              title="Water guide"))
    extracted = extract_file(path)
    assert extracted.title == "Water guide" and extracted.media_type == "text/plain"
    assert extracted.body.split("\f") == ["Sand filters clean water.", "", "Chlorine kills germs."]


def test_a_blank_first_page_keeps_later_page_numbers(tmp_path: Path) -> None:
    path = tmp_path / "cover.pdf"
    path.write_bytes(make_pdf(["", "Text on page two."]))
    body = extract_file(path).body
    assert body.split("\f") == ["[page 1 has no text]", "Text on page two."]


def test_pdf_citations_name_the_page(home: Commons, tmp_path: Path) -> None:
    path = tmp_path / "manual.pdf"
    path.write_bytes(make_pdf([
        "Introduction to the hand pump.",
        "The hand pump needs new leather washers every year.\nReplace the washers in spring.",
    ]))
    api = LocalApi(home)
    added = api.add(extract_file(path), title=None, tags=["water"], licence="CC0", replaces=None)
    result = api.ask("when should the hand pump washers be replaced?")
    cited = [c for c in result["citations"] if c["id"] == added["id"]]
    assert cited and cited[0]["page"] == 2
    body = home.show(added["id"]).obj.content.body  # type: ignore[attr-defined]
    assert body[cited[0]["start"] : cited[0]["end"]] == cited[0]["passage"]


def test_the_same_file_added_twice_is_stored_once(home: Commons, tmp_path: Path) -> None:
    path = tmp_path / "same.pdf"
    path.write_bytes(make_pdf(["Identical words on one page."]))
    api = LocalApi(home)
    first = api.add(extract_file(path), title=None, tags=[], licence="CC0", replaces=None)
    second = api.add(extract_file(path), title=None, tags=[], licence="CC0", replaces=None)
    assert (first["status"], second["status"]) == ("added", "duplicate")
    assert first["id"] == second["id"]
    assert home.search_index().counts()["pending"] == 0


def test_a_pdf_without_text_asks_for_ocr(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(make_pdf(["", ""]))
    with pytest.raises(IngestError, match="OCR"):
        extract_file(path)


def test_an_encrypted_pdf_is_refused_clearly(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    plain = tmp_path / "plain.pdf"
    plain.write_bytes(make_pdf(["Secret minutes."]))
    writer = PdfWriter(clone_from=plain)
    writer.encrypt("s3cret", algorithm="RC4-128")
    locked = tmp_path / "locked.pdf"
    with open(locked, "wb") as f:
        writer.write(f)
    with pytest.raises(IngestError, match="password"):
        extract_file(locked)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "not a readable PDF"),
        ("photo.jpg", b"\xff\xd8\xff\xe0", "cannot read .jpg files"),
        ("README", b"text", "files without a suffix"),
        ("blob.txt", b"\x00\x01\x02binary", "not UTF-8"),
        ("empty.md", b"  \n", "empty"),
    ],
)
def test_unknown_or_unreadable_files_get_a_clear_error(
    tmp_path: Path, name: str, data: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(IngestError, match=message):
        extract_file(path)


def test_latin1_text_is_read_and_the_guess_is_said(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("Un café crème, très bien, à l'école.".encode("latin-1"))
    extracted = extract_file(path)
    assert extracted.body.startswith("Un café crème")
    assert extracted.note is not None and "read it as cp1252" in extracted.note


def test_text_too_large_for_one_document_is_refused_before_signing(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    path.write_text("word " * 250_000)
    with pytest.raises(IngestError, match="split it"):
        extract_file(path)


def test_control_characters_from_pdfs_are_dropped(tmp_path: Path) -> None:
    from commons.ingest import clean_body

    assert clean_body("a\x00b\x07c\r\nd\fe") == "abc\nd\fe"
