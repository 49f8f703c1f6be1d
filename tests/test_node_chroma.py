"""A mirror that keeps its vectors in a real `chroma run` server, not in its home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sync_support import Peer, add_file, cli, free_port, get_json, peers_in, wait_for

from commons.storage.home import HomePaths

pytestmark = pytest.mark.slow

CHROMA = Path(sys.executable).parent / "chroma"

@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[[str], Peer]]:
    yield from peers_in(tmp_path)


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[str]:
    if not CHROMA.exists():
        pytest.skip("the chroma executable is not installed next to python")
    port = free_port()
    log = open(tmp_path / "chroma.log", "wb")  # noqa: SIM115 (closed in teardown)
    proc = subprocess.Popen(
        [str(CHROMA), "run", "--path", str(tmp_path / "chroma"), "--host", "127.0.0.1",
         "--port", str(port)],
        stdout=log, stderr=log, env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: proc.poll() is None and get_json(url + "/api/v2/heartbeat"),
                 "the Chroma server answers")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_a_mirror_with_a_chroma_server_syncs_and_answers(
    spawn: Callable[[str], Peer], chroma_server: str, tmp_path: Path
) -> None:
    a = spawn("a").start()
    oid = add_file(a, tmp_path, "Solar pump care",
                   "Wipe the solar panels of the pump weekly so the pump keeps its pressure.")
    mirror = spawn("mirror")
    mirror.start(a, extra=("--index-url", chroma_server), command="mirror")
    wait_for(lambda: "Solar pump care" in mirror.titles(), "the mirror has a's document")
    answer = json.loads(cli(mirror.home, "ask", "how do I care for a solar pump?", "--json"))
    assert oid in [c["id"] for c in answer["citations"]]
    # The vectors are in the server, and the mirror's home holds no embedded index.
    import chromadb
    from chromadb.config import Settings

    host, port = chroma_server.removeprefix("http://").split(":")
    client = chromadb.HttpClient(host=host, port=int(port),
                                 settings=Settings(anonymized_telemetry=False))
    counts = [c.count() for c in client.list_collections()]
    assert counts and max(counts) > 0
    index_dir = HomePaths(mirror.home).index
    assert not index_dir.exists() or not any(index_dir.iterdir())
