"""chromadb imported without `overrides`' import-time signature checks, and nothing else changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# In a fresh interpreter: count the signature checks that importing chromadb runs,
# then use chromadb for real, and check the decorator is the original again.
SCRIPT = """
import sys
import overrides
checks = []
module = sys.modules["overrides.overrides"]
original_validate = module._validate_method
module._validate_method = lambda *a: (checks.append(a), original_validate(*a))[1]
original = overrides.override, overrides.overrides
if sys.argv[1] == "ours":
    from commons.search.chroma import open_chroma
    client = open_chroma(sys.argv[2], None)
else:
    import chromadb
    from chromadb.config import Settings
    client = chromadb.PersistentClient(sys.argv[2], settings=Settings(anonymized_telemetry=False))
from chromadb.api.rust import RustBindingsAPI
assert (overrides.override, overrides.overrides) == original, "decorator not restored"
c = client.get_or_create_collection("passages", embedding_function=None,
                                    configuration={"hnsw": {"space": "cosine"}})
c.upsert(ids=["a", "b"], embeddings=[[1.0, 0.0], [0.0, 1.0]], metadatas=[{"d": 1}, {"d": 2}])
hit = c.query(query_embeddings=[[0.9, 0.1]], n_results=1)["ids"][0]
print("CHECKS", len(checks), "HIT", hit[0], "MARKED", RustBindingsAPI.heartbeat.__override__)
"""


def run(kind: str, tmp_path: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, kind, str(tmp_path / kind)],
        capture_output=True, text=True, timeout=240,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_chroma_opens_without_signature_checks_and_works(tmp_path: Path) -> None:
    assert run("ours", tmp_path) == "CHECKS 0 HIT a MARKED True"


def test_a_plain_import_runs_the_checks_that_ours_skips(tmp_path: Path) -> None:
    # What the other test saves: without open_chroma's care, every @override is checked.
    checks = int(run("plain", tmp_path).split()[1])
    assert checks > 50


def test_the_marker_works_bare_and_called() -> None:
    from commons.search.chroma_import import mark_override

    def method() -> None: ...

    assert mark_override(method) is method and method.__override__  # type: ignore[attr-defined]

    def other() -> None: ...

    assert mark_override(check_signature=False)(other) is other
    assert other.__override__  # type: ignore[attr-defined]
