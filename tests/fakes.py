"""Stand-ins for what is not ours: a language model (scripted), an OpenAI-compatible
chat endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from commons.answers.extractive import Source


class ScriptedGenerator:
    """A language model that always writes the same reply, and keeps what it was given."""

    name = "scripted-135m"

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.seen: list[Sequence[Source]] = []

    def generate(self, question: str, sources: Sequence[Source]) -> str:
        self.seen.append(sources)
        return self.reply


class FakeChatServer:
    """A stand-in for Ollama or a llama.cpp server on a loopback port."""

    def __init__(self, reply: str, status: int = 200) -> None:
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers["Content-Length"])
                outer.requests.append(
                    {"path": self.path, "body": json.loads(self.rfile.read(length)),
                     "auth": self.headers.get("Authorization")}
                )
                payload = json.dumps(
                    {"choices": [{"message": {"role": "assistant", "content": reply}}]}
                    if status == 200 else {"error": "no such model"}
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
