"""The seed documents every new home starts with.

They are signed once, by the seed key whose public half is below, and shipped
as a bundle inside the package, so every peer holds the same objects with the
same ids and never fetches them from another. `python -m commons.seeds` signs
the Markdown sources in `seeds/` again (it needs the seed key's secret half).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

from commons.model.identity import Identity
from commons.model.objects import Document, normalise_tags, normalise_text, sign

SEED_AUTHOR = bytes.fromhex("e94ac36268cc19f394ed6e548369d922d811f25326ff3e7c55ae1b071583f82c")
SEED_NAME = "commons seeds"
# Fixed so the bundle is byte-for-byte reproducible; each document adds its index.
SEED_CREATED_AT = 1_790_000_000
BUNDLE = Path(__file__).parent / "data" / "seeds.jsonl"
_TAGS = re.compile(r"<!--\s*tags:\s*(.*?)\s*-->")


def bundle_lines() -> Iterator[tuple[int, bytes]]:
    """The signed seed objects, as (line number, line) like any bundle."""
    if not BUNDLE.exists():
        return
    with open(BUNDLE, "rb") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                yield number, line.rstrip(b"\n")


def parse_source(text: str) -> tuple[str, list[str], str]:
    """(title, tags, body) of a seed's Markdown source."""
    lines = text.strip().splitlines()
    if not lines or not lines[0].startswith("# "):
        raise ValueError("a seed must start with '# Title'")
    title = lines[0][2:].strip()
    match = _TAGS.search(text)
    tags = [t.strip() for t in match.group(1).split(",")] if match else []
    body = _TAGS.sub("", text).strip()
    body = re.sub(r"\n{3,}", "\n\n", body)
    return title, tags, body


def build(sources: Path, key: Identity) -> list[bytes]:
    from commons.model.objects import Profile

    lines = [
        sign(
            Profile(author=key.public_key, created_at=SEED_CREATED_AT, name=SEED_NAME), key
        ).to_bytes()
    ]
    for index, path in enumerate(sorted(sources.glob("*.md")), start=1):
        title, tags, body = parse_source(path.read_text(encoding="utf-8"))
        content = Document(
            author=key.public_key,
            created_at=SEED_CREATED_AT + index,
            title=normalise_text(title),
            body=normalise_text(body),
            media_type="text/markdown",
            tags=normalise_tags(tags),
            licence="CC-BY-4.0",
        )
        lines.append(sign(content, key).to_bytes())
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description="Sign the seed documents into the bundle.")
    parser.add_argument("--key", type=Path, required=True, help="the seed key's secret file")
    parser.add_argument("--sources", type=Path, default=Path("seeds"))
    args = parser.parse_args()
    key = Identity.load(args.key)
    if key.public_key != SEED_AUTHOR:
        raise SystemExit("that is not the seed key (its public key differs from SEED_AUTHOR)")
    lines = build(args.sources, key)
    BUNDLE.write_bytes(b"".join(line + b"\n" for line in lines))
    print(f"wrote {len(lines)} objects to {BUNDLE}")


if __name__ == "__main__":
    main()
