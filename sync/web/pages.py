"""The web pages: server-rendered, read-only, escaped, the same views as JSON.

Each page is one Jinja template (autoescape on) over one view function from
`commons.views`; `?format=json` returns the view itself. Nothing here writes to
the home or reaches the local API: the routes are GETs over read-only views,
and the node's token and key files are never read. Every response carries a
Content-Security-Policy that allows no script at all and styles only from the
node's own stylesheet.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

import aiohttp_jinja2
import jinja2
from aiohttp import web

from commons import views
from commons.answers.ask import MAX_QUESTION_CHARS
from commons.api import LocalApi
from commons.model.errors import CommonsError, NotFound
from commons.service import Commons
from sync.web.gate import AnswerGate, Busy, Clock, GateLimits

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
       " base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
GOSSIP_PATHS = ("/sync/", "/status")
# Languages written right to left: the page follows the browser's first choice.
RTL_LANGUAGES = {"ar", "arc", "ckb", "dv", "fa", "he", "ks", "ku", "ps", "sd", "ug", "ur", "yi"}


class WebNode(Protocol):
    """What the pages need from the node."""

    commons: Commons
    mirror: bool

    def now(self) -> int: ...

    async def status(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class WebConfig:
    gate: AnswerGate  # the bounds on answers, shared by every request
    llm: dict[str, str | None]  # the generator of answers, as `commons ask` takes it

    @classmethod
    def build(cls, limits: GateLimits, clock: Clock,
              llm: dict[str, str | None] | None = None) -> WebConfig:
        """`clock` gives monotonic seconds, for rate limits and answer timing."""
        return cls(AnswerGate(limits, clock), dict(llm or {}))


def mount(app: web.Application, node: WebNode, config: WebConfig) -> None:
    """Add the pages to the node's (not yet started) gossip application."""
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("sync.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    pages = Pages(node, config, config.gate)
    app.middlewares.append(pages.headers)
    for path, handler in (
        ("/", pages.home), ("/ask", pages.ask), ("/search", pages.search),
        ("/doc/{id}", pages.document), ("/author/{key}", pages.author),
        ("/tag/{tag}", pages.tag), ("/about", pages.about),
        ("/static/commons.css", pages.stylesheet),
    ):
        app.router.add_get(path, handler)


def direction(accept_language: str) -> tuple[str, str]:
    """(lang, dir) of the browser's first language."""
    first = accept_language.split(",")[0].split(";")[0].strip()
    lang = first if first and first != "*" and len(first) <= 35 else "en"
    return lang, "rtl" if lang.split("-")[0].lower() in RTL_LANGUAGES else "ltr"


def _int_param(request: web.Request, name: str) -> int | None:
    value = request.query.get(name, "")
    return int(value) if value.isdigit() and len(value) < 10 else None


class Pages:
    def __init__(self, node: WebNode, config: WebConfig, gate: AnswerGate) -> None:
        self.node = node
        self.config = config
        self.gate = gate
        self.api = LocalApi(node.commons)
        self._css = resources.files("sync.web").joinpath("static/commons.css").read_bytes()

    @web.middleware
    async def headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The security headers on every response; a page for any unknown address."""
        try:
            response = await handler(request)
        except web.HTTPNotFound:
            if request.method != "GET" or request.path.startswith(GOSSIP_PATHS):
                raise
            response = await self._error(request, 404, "there is no such page here; start"
                                         " from the library at /")
        except web.HTTPException as exc:
            exc.headers.update(SECURITY_HEADERS)
            raise
        response.headers.update(SECURITY_HEADERS)
        return response

    async def _render(self, request: web.Request, template: str, page: dict[str, Any],
                      *, status: int = 200, title: str = "") -> web.Response:
        if request.query.get("format") == "json":
            return web.json_response(page, status=status)
        lang, text_dir = direction(request.headers.get("Accept-Language", ""))
        context = {"page": page, "title": title, "lang": lang, "dir": text_dir,
                   "mirror": self.node.mirror, "question": request.query.get("q", "")}
        return aiohttp_jinja2.render_template(template, request, context, status=status)

    async def _error(self, request: web.Request, status: int, message: str,
                     headers: dict[str, str] | None = None) -> web.Response:
        response = await self._render(request, "error.html", {"error": message, "status": status},
                                      status=status, title="Sorry")
        response.headers.update(headers or {})
        return response

    async def _guarded(self, request: web.Request,
                       build: Callable[[], Awaitable[web.Response]]) -> web.Response:
        """Run a page, turning a bad id or question into a page that says what to do."""
        try:
            return await build()
        except NotFound as exc:
            return await self._error(request, 404, str(exc))
        except Busy as exc:
            return await self._error(request, 503, str(exc),
                                     {"Retry-After": str(exc.retry_after)})
        except CommonsError as exc:
            return await self._error(request, 400, str(exc))

    def _rate_limited(self, request: web.Request) -> float:
        return self.gate.rates.admit(request.remote or "unknown", self.gate.clock())

    async def _too_fast(self, request: web.Request, wait: float) -> web.Response:
        seconds = max(1, round(wait))
        return await self._error(
            request, 429, f"you are asking faster than this mirror allows; try again in"
            f" {seconds} seconds", {"Retry-After": str(seconds)})

    # -- pages ------------------------------------------------------------------

    async def home(self, request: web.Request) -> web.Response:
        async def build() -> web.Response:
            page = await asyncio.to_thread(views.library_view, self.node.commons,
                                           name=getattr(self.node, "name", None))
            return await self._render(request, "home.html", page, title=page["name"] or "")
        return await self._guarded(request, build)

    async def ask(self, request: web.Request) -> web.Response:
        question = request.query.get("q", "")
        if not question.strip():
            raise web.HTTPFound("/")
        if len(question) > MAX_QUESTION_CHARS:
            return await self._error(request, 400, f"the question is {len(question)} characters;"
                                     f" keep it under {MAX_QUESTION_CHARS}")
        wait = self._rate_limited(request)
        if wait:
            return await self._too_fast(request, wait)

        async def build() -> web.Response:
            async with self.gate.slot():
                page = await asyncio.to_thread(views.ask_view, self.api, question,
                                               llm=self.config.llm)
            return await self._render(request, "ask.html", page, title=question)
        return await self._guarded(request, build)

    async def search(self, request: web.Request) -> web.Response:
        query = request.query.get("q", "")[:MAX_QUESTION_CHARS]
        if query.strip():
            wait = self._rate_limited(request)
            if wait:
                return await self._too_fast(request, wait)

        async def build() -> web.Response:
            page = await asyncio.to_thread(views.search_view, self.node.commons, query)
            return await self._render(request, "search.html", page, title=f"Search: {query}")
        return await self._guarded(request, build)

    async def document(self, request: web.Request) -> web.Response:
        async def build() -> web.Response:
            page = await asyncio.to_thread(
                views.document_view, self.node.commons, request.match_info["id"][:64],
                now=self.node.now(), start=_int_param(request, "start"),
                end=_int_param(request, "end"), offset=_int_param(request, "from"))
            return await self._render(request, "document.html", page, title=page["title"])
        return await self._guarded(request, build)

    async def author(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]

        async def build() -> web.Response:
            if len(key) < 8 or len(key) > 64 or any(c not in "0123456789abcdef" for c in key):
                raise NotFound(f"{key[:80]!r} is not an author key; author pages are"
                               " /author/ and at least 8 hex characters of the key")
            page = await asyncio.to_thread(views.listing_view, self.node.commons, author=key)
            return await self._render(request, "listing.html", page, title=page["author_label"])
        return await self._guarded(request, build)

    async def tag(self, request: web.Request) -> web.Response:
        tag = request.match_info["tag"][:64]

        async def build() -> web.Response:
            page = await asyncio.to_thread(views.listing_view, self.node.commons, tag=tag)
            return await self._render(request, "listing.html", page, title=f"#{page['tag']}")
        return await self._guarded(request, build)

    async def about(self, request: web.Request) -> web.Response:
        status = await self.node.status()
        page = {"status": status, "reached_as": f"http://{request.host}",
                "answers": {**self.gate.counts(), "concurrency": self.gate.limits.concurrency,
                            "queue": self.gate.limits.queue,
                            "per_minute": self.gate.limits.per_minute}}
        return await self._render(request, "about.html", page, title="About this commons")

    async def stylesheet(self, request: web.Request) -> web.Response:
        return web.Response(body=self._css, content_type="text/css",
                            headers={"Cache-Control": "public, max-age=3600"})
