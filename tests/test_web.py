"""The web pages of a node, requested from a real server on loopback.

Documents written by a hostile stranger (script, HTML, javascript: links,
bidi overrides, replacement characters) go in; every page must come out with
their text escaped, no active markup, a strict CSP and under 50 KB.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from embedders import embedder_for_tests
from fakes import FakeChatServer

from commons.answers.extractive import ABSTAIN_TEXT
from commons.model.errors import InvalidObject
from commons.search.vectors import memory_vectors
from commons.service import Commons
from commons.storage.home import HomePaths
from sync.http.node import Node
from sync.web import GateLimits, WebConfig
from sync.web.gate import AnswerGate, Busy, RateLimiter

NOW = 1_800_000_000
MAX_PAGE_BYTES = 50 * 1024
HOSTILE_TITLE = '<script>alert("title")</script> Café ‮evil‬'
HOSTILE_BODY = (
    "# Volcanoes <img src=x onerror=alert(1)>\n\n"
    "Volcanoes erupt when magma rises through the crust. <script>alert('body')</script>\n\n"
    "[click me](javascript:alert(2)) and <a href=\"javascript:alert(3)\">this</a>"
    " and <iframe src=\"http://evil.example\"></iframe> and <style>body{display:none}</style>\n\n"
    "Broken text: \ufffd\ufffd z\u0351\u0351\u0351algo \u200f\u202eright-to-left\u202c"
    " and an ending.\n"
)
HOSTILE_TAG = "<b>bold</b>"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


class PageScan(HTMLParser):
    """Every tag and attribute of a page, to check nothing active got through."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str]] = []
        self.ids: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            self.attrs.append((name, value or ""))
            if name == "id" and value:
                self.ids.add(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def scan(html: str) -> PageScan:
    parser = PageScan()
    parser.feed(html)
    return parser


def assert_inert(html: str) -> PageScan:
    page = scan(html)
    assert not {"script", "iframe", "img", "style", "object", "embed"} & set(page.tags)
    for name, value in page.attrs:
        assert not name.startswith("on"), name
        assert name != "style"
        assert not value.strip().lower().startswith(("javascript:", "data:")), (name, value)
    return page


@dataclass
class Site:
    node: Node
    http: aiohttp.ClientSession
    hostile_id: str
    gate: AnswerGate

    @property
    def url(self) -> str:
        return self.node.url

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.http.get(self.url + path, allow_redirects=False, **kwargs) as r:
            return r.status, await r.text(), r


async def open_site(
    tmp_path: Path, limits: GateLimits, llm: dict[str, str | None] | None = None
) -> tuple[Site, Commons]:
    clock = Clock()
    commons = Commons.init(HomePaths(tmp_path / "home"), clock=clock, name="web <tester>",
                           embedder=embedder_for_tests(), vectors=memory_vectors)
    hostile, _ = commons.add_document(title=HOSTILE_TITLE, body=HOSTILE_BODY,
                                      tags=["volcano", HOSTILE_TAG])
    config = WebConfig.build(limits, time.monotonic, llm=llm)
    node = Node(commons, rng=random.Random(1), clock=clock, round_interval=3600.0,
                name="school <mirror>", mirror=True, web_pages=config)
    await node.start()
    await node.index_ready()
    http = aiohttp.ClientSession()
    return Site(node, http, hostile.id.hex(), config.gate), commons


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    limits = GateLimits(concurrency=2, queue=4, per_minute=6000, burst=100)
    s, commons = await open_site(tmp_path, limits)
    yield s
    await s.http.close()
    await s.node.stop()
    commons.close()


def pages_of(site: Site) -> list[str]:
    author = site.node.commons.public_key.hex()
    return [
        "/", "/about", "/search?q=volcanoes+magma", "/ask?q=" + quote("why do volcanoes erupt?"),
        f"/doc/{site.hostile_id}", f"/doc/{site.hostile_id}?start=20&end=80",
        f"/author/{author}", f"/tag/{quote(HOSTILE_TAG, safe='')}", "/tag/volcano",
        "/search?q=" + quote("<script>alert(9)</script>"),
        "/ask?q=" + quote("<script>alert(9)</script> zebra quantum?"),
        "/doc/not-an-id<script>", "/author/" + quote("<b>x</b>"),
    ]


async def test_every_page_is_escaped_small_and_strict(site: Site) -> None:
    for path in pages_of(site):
        status, html, response = await site.get(path)
        assert status in (200, 400, 404), (path, status, html[:500])
        assert response.content_type == "text/html", (path, html[:300])
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp and "unsafe" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert len(html.encode()) < MAX_PAGE_BYTES, path
        page = assert_inert(html)
        assert "<script>" not in "".join(page.tags)
        # The stylesheet is the only resource a page loads.
        links = [v for n, v in page.attrs if n in ("href", "src") and not v.startswith(("/", "#"))]
        assert links == [], (path, links)


async def test_hostile_document_shows_as_text(site: Site) -> None:
    status, html, _ = await site.get(f"/doc/{site.hostile_id}")
    assert status == 200
    assert "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "[click me](javascript:alert(2))" in html  # shown as text, never a link
    page = scan(html)
    text = "".join(page.text)
    assert HOSTILE_TITLE in text and "\u202eright-to-left\u202c" in text and "\ufffd\ufffd" in text
    assert 'id="signature" class="verified"' in html
    status, html, _ = await site.get("/tag/" + quote(HOSTILE_TAG, safe=""))
    assert status == 200 and "#&lt;b&gt;bold&lt;/b&gt;" in html and site.hostile_id in html


def test_a_body_with_broken_unicode_is_refused_before_any_page(site: Site) -> None:
    with pytest.raises(InvalidObject, match="surrogate"):
        site.node.commons.add_document(title="broken", body="half a pair: \ud800 here")


async def test_ask_page_is_the_cli_answer_with_linked_citations(site: Site) -> None:
    question = "How do I run a community mirror?"
    # Every vector made first: with a part of them, two asks could see different hits.
    await asyncio.to_thread(site.node.commons.search_index)
    expected = await asyncio.to_thread(
        lambda: site.node.commons.ask(question).to_json())
    status, html, _ = await site.get("/ask?q=" + quote(question))
    assert status == 200
    page = scan(html)
    assert expected["citations"] and not expected["abstained"]
    text = "".join(page.text)
    assert " ".join(expected["answer"].split()) in " ".join(text.split())
    links = [v for n, v in page.attrs if n == "href" and v.startswith("/doc/")]
    for c in expected["citations"]:
        assert f"/doc/{c['id']}?start={c['start']}&end={c['end']}#passage" in links
        assert f"/author/{c['author']}" in [v for n, v in page.attrs if n == "href"]
    assert text.count("signature verified") == len(expected["citations"])
    assert "commons seeds" in text and "seed" in text  # author name and origin peer

    status, twin, response = await site.get("/ask?q=" + quote(question) + "&format=json")
    data = json.loads(twin)
    assert data["answer"] == expected["answer"]
    assert [c["id"] for c in data["citations"]] == [c["id"] for c in expected["citations"]]


async def test_following_a_citation_highlights_the_passage(site: Site) -> None:
    question = "How do I run a community mirror?"
    c = (await asyncio.to_thread(lambda: site.node.commons.ask(question).to_json()))[
        "citations"][0]
    status, html, _ = await site.get(f"/doc/{c['id']}?start={c['start']}&end={c['end']}")
    assert status == 200
    marked = html.split('<mark id="passage">', 1)[1].split("</mark>", 1)[0]
    assert scan(marked).text and c["passage"][:40] in "".join(scan(marked).text)


async def test_ask_abstains_the_same_way(site: Site) -> None:
    status, html, _ = await site.get("/ask?q=" + quote("zxqv wplk frobnicate?"))
    assert status == 200
    expected = await asyncio.to_thread(
        lambda: site.node.commons.ask("zxqv wplk frobnicate?").to_json())
    assert expected["abstained"]
    assert ABSTAIN_TEXT in html and 'id="citations"' not in html


async def test_search_marks_matches_in_snippets(site: Site) -> None:
    status, html, _ = await site.get("/search?q=magma")
    assert status == 200
    assert "<mark>magma</mark>" in html and site.hostile_id in html
    status, html, _ = await site.get("/search?q=" + quote('"NEAR( OR * col:x'))
    assert status == 200  # FTS5 syntax in a query is just words


async def test_home_author_about_and_lists(site: Site) -> None:
    status, html, _ = await site.get("/")
    page = scan(html)
    assert status == 200 and {"recent", "tags", "doc-count", "q"} <= page.ids
    count = site.node.commons.store.count("document")
    assert f'<strong id="doc-count">{count}</strong>' in html
    status, html, _ = await site.get(f"/author/{site.node.commons.public_key.hex()[:12]}")
    assert status == 200 and site.node.commons.public_key.hex() in html
    status, html, _ = await site.get("/about")
    assert status == 200 and site.node.commons.public_key.hex() in html
    assert "school &lt;mirror&gt;" in html and "commons peers add http://127.0.0.1:" in html


async def test_pages_are_read_only_and_show_no_secrets(site: Site) -> None:
    for path in ("/api/whoami", "/api/documents", "/node.json", "/static/../key"):
        status, _, _ = await site.get(path)
        assert status == 404, path
    async with site.http.post(site.url + "/ask", data={"q": "x"}) as r:
        assert r.status == 405
    token = (site.node.commons.paths.root / "node.json").read_text()
    secret = json.loads(token)["token"]
    key_bytes = site.node.commons.paths.key.read_bytes()
    for path in pages_of(site):
        _, html, _ = await site.get(path)
        assert secret not in html and key_bytes.hex() not in html
        assert (site.node.api_url or "-") not in html


async def test_bad_ids_say_what_to_do(site: Site) -> None:
    status, html, _ = await site.get("/doc/0123456789abcdef")
    assert status == 404 and "no object with an id starting" in html
    status, html, _ = await site.get("/author/nothex")
    assert status == 404 and "at least 8 hex characters" in html
    status, html, _ = await site.get("/ask?q=" + "a" * 2100)
    assert status == 400 and "keep it under" in html
    status, _, response = await site.get("/ask?q=")
    assert status == 302 and response.headers["Location"] == "/"


async def test_right_to_left_browsers_get_rtl_pages(site: Site) -> None:
    _, html, _ = await site.get("/", headers={"Accept-Language": "ar-EG,ar;q=0.9"})
    assert '<html lang="ar-EG" dir="rtl">' in html
    _, html, _ = await site.get("/", headers={"Accept-Language": "fr-FR"})
    assert '<html lang="fr-FR" dir="ltr">' in html
    _, html, _ = await site.get("/", headers={"Accept-Language": '"><script>'})
    assert "<script>" not in html


async def test_stylesheet_is_served_by_the_node(site: Site) -> None:
    async with site.http.get(site.url + "/static/commons.css") as r:
        assert r.status == 200 and r.content_type == "text/css"
        assert "margin-inline" in await r.text()


async def test_full_queue_gets_503_with_retry_after_and_gossip_still_answers(
        tmp_path: Path) -> None:
    site, commons = await open_site(
        tmp_path, GateLimits(concurrency=1, queue=0, per_minute=6000, burst=100))
    try:
        async with site.gate.slot():  # a long answer holds the only slot
            status, html, response = await site.get("/ask?q=" + quote("what is a mirror?"))
            assert status == 503 and int(response.headers["Retry-After"]) >= 1
            assert "try again in" in html
            async with site.http.get(site.url + "/status") as r:
                assert r.status == 200
            async with site.http.post(site.url + "/sync/reconcile", data=b"\x61") as r:
                assert r.status in (200, 400)  # answered, not queued behind the pages
        status, _, _ = await site.get("/ask?q=" + quote("what is a mirror?"))
        assert status == 200
    finally:
        await site.http.close()
        await site.node.stop()
        commons.close()


async def test_one_client_asking_too_fast_gets_429(tmp_path: Path) -> None:
    site, commons = await open_site(
        tmp_path, GateLimits(concurrency=2, queue=2, per_minute=1, burst=1))
    try:
        status, _, _ = await site.get("/ask?q=mirror")
        assert status == 200
        status, html, response = await site.get("/ask?q=mirror")
        assert status == 429 and int(response.headers["Retry-After"]) >= 1
        assert "faster than this mirror allows" in html
    finally:
        await site.http.close()
        await site.node.stop()
        commons.close()


def test_rate_limiter_refills_over_time() -> None:
    limiter = RateLimiter(per_minute=60, burst=2)
    assert limiter.admit("a", 0.0) == 0 and limiter.admit("a", 0.0) == 0
    assert limiter.admit("a", 0.0) == pytest.approx(1.0)
    assert limiter.admit("b", 0.0) == 0  # per client
    assert limiter.admit("a", 1.5) == 0


async def test_gate_queues_then_turns_away() -> None:
    gate = AnswerGate(GateLimits(concurrency=1, queue=1, per_minute=60, burst=1), lambda: 0.0)
    release = asyncio.Event()

    async def hold() -> None:
        async with gate.slot():
            await release.wait()

    first = asyncio.create_task(hold())
    await asyncio.sleep(0)
    second = asyncio.create_task(hold())  # waits in the queue
    await asyncio.sleep(0)
    assert gate.counts() == {"running": 1, "waiting": 1, "turned_away": 0}
    with pytest.raises(Busy):
        async with gate.slot():
            pass
    release.set()
    await asyncio.gather(first, second)
    assert gate.counts() == {"running": 0, "waiting": 0, "turned_away": 1}


async def test_citation_markers_link_to_their_sources(site: Site) -> None:
    _, html, _ = await site.get("/ask?q=" + quote("How do I run a community mirror?"))
    page = scan(html)
    anchors = [v for n, v in page.attrs if n == "href" and v.startswith("#cite-")]
    assert anchors and all(a[1:] in page.ids for a in anchors)


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        ("A community mirror is an always-on peer [1].",
         "Written by the language model tiny<b> at 127.0.0.1"),
        ("Beekeepers harvest honey in autumn and sell it at markets [1].",
         "also answered, but its answer was set aside"),
    ],
)
async def test_an_answer_says_which_language_model_wrote_it_or_was_set_aside(
    tmp_path: Path, reply: str, said: str
) -> None:
    limits = GateLimits(concurrency=2, queue=4, per_minute=6000, burst=100)
    with FakeChatServer(reply) as chat:
        site, commons = await open_site(tmp_path, limits, {"llm": chat.url, "model": "tiny<b>"})
        try:
            await asyncio.to_thread(site.node.commons.search_index)
            status, html, _ = await site.get("/ask?q=" + quote("How do I run a community mirror?"))
        finally:
            await site.http.close()
            await site.node.stop()
            commons.close()
        assert chat.requests, html  # the model was asked
    assert status == 200
    text = " ".join(" ".join(scan(html).text).split())
    assert said in text, text
    assert "tiny&lt;b&gt;" in html and "tiny<b>" not in html  # the name is escaped too
