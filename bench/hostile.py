"""Benchmark: what a hostile peer's requests cost a real `commons serve` process.

- push: one signed POST /sync/push of `--push-mb` MB of `{}` lines (garbage
  that parses as JSON but is no object): the server's peak RSS growth (VmHWM
  from /proc), the reply's size and status, the time it took, and how long a
  GET /status took while the push was being handled; then the reply to a push
  of 512 such lines.
- status: GET /status latency with `--profiles` profiles stored (each from its
  own key) and no --name, median and max over `--polls` requests.
- tarpit: a node V bootstraps from B; V receives `--tarpits` signed peer
  records (`mirror=true`, each from a fresh key) naming loopback sockets that
  accept connections and never answer; V restarts; then a new document is
  added on B, and we time until V holds it (up to `--tarpit-deadline` s).
  The same without the records is the baseline. Both nodes run rounds every
  `--tarpit-interval` s; each variant runs `--tarpit-runs` times from fresh
  homes, and the medians are compared.
- flood: an honest node's new document's delivery time to a node (from the
  call to `add` on the honest node's local API until the target serves it), median
  over `--trials` documents, without and then with one key pushing valid
  documents to the target as fast as it can (`--flood-push` per push); also a
  local `add` on the target, and how many flood documents the target took in.
  The target runs with `--ingress-per-peer` (where the code has that flag).

Each scenario runs a fresh home and server process. Prints JSON.

    python bench/hostile.py [--push-mb 10] [--profiles 60000] [--polls 10]
                            [--tarpits 250] [--tarpit-interval 1] [--tarpit-deadline 300]
                            [--tarpit-runs 3]
                            [--trials 7] [--ingress-per-peer 600/minute] [--flood-connections 4]

Run it against another checkout by pointing PYTHONPATH at it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, os.environ.get("PYTHONPATH", "").split(os.pathsep)[0] or
                str(Path(__file__).resolve().parent.parent))

from commons.ingest import Extracted  # noqa: E402
from commons.model.identity import Identity  # noqa: E402
from commons.model.objects import Document, PeerRecord, Profile, sign  # noqa: E402
from commons.remote import RemoteApi  # noqa: E402
from commons.service import Commons  # noqa: E402
from commons.storage.home import HomePaths  # noqa: E402
from commons.storage.store import ObjectStore  # noqa: E402


def now() -> int:
    return int(time.time())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc")


def request(url: str, data: bytes | None = None, timeout: float = 600,
            headers: dict[str, str] | None = None) -> tuple[int, bytes, float]:
    started = time.perf_counter()
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    return status, body, time.perf_counter() - started


class Server:
    def __init__(self, home: Path, *, name: str | None, port: int | None = None,
                 interval: float | str = 3600, peers: tuple[str, ...] = (),
                 extra: tuple[str, ...] = ()) -> None:
        self.home = home
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "tui", "--home", str(home), "serve",
                "--listen", f"127.0.0.1:{self.port}", "--interval", str(interval), *extra]
        if name:
            argv += ["--name", name]
        for peer in peers:
            argv += ["--peer", peer]
        env = {**os.environ, "COMMONS_EMBEDDER": "fake"}
        self.log = open(home.parent / f"{home.name}.log", "ab")  # noqa: SIM115
        # cwd: not the checkout this script sits in, so PYTHONPATH picks the code under test.
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log, env=env,
                                     cwd=home.parent)
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited; see {self.log.name}")
            try:
                if request(self.url + "/status", timeout=30)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start in 120 s")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def cli(home: Path, *args: str) -> str:
    env = {**os.environ, "COMMONS_EMBEDDER": "fake"}
    result = subprocess.run([sys.executable, "-m", "tui", "--home", str(home), *args],
                            capture_output=True, text=True, timeout=600, env=env,
                            cwd=home.parent)
    if result.returncode != 0:
        raise RuntimeError(f"commons {' '.join(args)} failed: {result.stderr[-2000:]}")
    return result.stdout


class Tarpits:
    """Loopback sockets that accept connections and never answer a byte."""

    def __init__(self, count: int) -> None:
        self.listeners = []
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(64)
            sock.setblocking(False)
            self.listeners.append(sock)
        self.urls = [f"http://127.0.0.1:{s.getsockname()[1]}" for s in self.listeners]
        self.accepted: list[socket.socket] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import selectors

        selector = selectors.DefaultSelector()
        for sock in self.listeners:
            selector.register(sock, selectors.EVENT_READ)
        while not self._done.is_set():
            for key, _ in selector.select(timeout=0.2):
                try:
                    conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                except OSError:
                    continue
                if len(self.accepted) < 5000:
                    self.accepted.append(conn)  # held open, never answered
                else:
                    conn.close()
        selector.close()

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)
        for sock in [*self.accepted, *self.listeners]:
            sock.close()


def tarpit_records(urls: list[str]) -> bytes:
    at = now() - 5
    lines = []
    for i, url in enumerate(urls):
        who = Identity((10_000 + i).to_bytes(32, "big"))
        record = PeerRecord(author=who.public_key, created_at=at, addresses=(url,),
                            name=f"mirror {i}", mirror=True)
        lines.append(sign(record, who).to_bytes() + b"\n")
    return b"".join(lines)


def documents_at(server: Server) -> int:
    status, body, _ = request(server.url + "/status", timeout=30)
    return int(json.loads(body)["documents"]) if status == 200 else -1


def wait_documents(server: Server, count: int, deadline: float) -> float | None:
    """Seconds until `server` holds `count` documents, or None after `deadline` s."""
    started = time.monotonic()
    for _ in range(int(deadline * 10) + 1):
        try:
            if documents_at(server) >= count:
                return time.monotonic() - started
        except OSError:
            pass
        if time.monotonic() - started > deadline:
            return None
        time.sleep(0.1)
    return None


def delivery_after_restart(root: Path, tarpits: int, interval: float,
                           deadline: float) -> dict[str, Any]:
    """Seconds for a new document on B to reach V after V restarts (see the docstring)."""
    b_home, v_home = root / "b", root / "v"
    Commons.init(HomePaths(b_home), clock=now, name="b").close()
    Commons.init(HomePaths(v_home), clock=now, name="v").close()
    pits = Tarpits(tarpits) if tarpits else None
    b = Server(b_home, name="b", interval=interval)
    v: Server | None = None
    try:
        v = Server(v_home, name="v", interval=interval, peers=(b.url,))
        first = root / "first.md"
        first.write_text("# Well water\n\nThe well is clean again.\n")
        cli(b_home, "add", str(first))
        target = documents_at(b)
        if wait_documents(v, target, 120) is None:
            raise RuntimeError("V did not sync with its bootstrap peer B in 120 s")
        pushed = None
        if pits is not None:
            body = tarpit_records(pits.urls)
            receiver = json.loads(request(v.url + "/status")[1])["public_key"]
            status, reply, _ = request(v.url + "/sync/push", body,
                                       headers=signed_headers(body, bytes.fromhex(receiver)))
            pushed = {"status": status, "reply": json.loads(reply) if status == 200 else
                      reply.decode("utf-8", "replace")}
        port = v.port
        v.stop()
        v = Server(v_home, name="v", interval=interval, peers=(b.url,), port=port)
        second = root / "second.md"
        second.write_text("# Market day\n\nThe market moves to Thursday.\n")
        cli(b_home, "add", str(second))
        took = wait_documents(v, documents_at(b), deadline)
    finally:
        if v is not None:
            v.stop()
        b.stop()
        if pits is not None:
            pits.close()
    return {
        "tarpit_records": tarpits,
        "push": pushed,
        "delivered_s": None if took is None else round(took, 3),
        "deadline_s": deadline,
        "tarpit_connections": len(pits.accepted) if pits is not None else 0,
    }


def bench_tarpit(root: Path, tarpits: int, interval: float, deadline: float,
                 runs: int) -> dict[str, Any]:
    out: dict[str, Any] = {"interval_s": interval, "runs": runs}
    for label, count in (("baseline", 0), ("with_tarpits", tarpits)):
        results = []
        for run in range(runs):  # each run starts from fresh homes
            where = root / f"{label}-{run}"
            where.mkdir()
            results.append(delivery_after_restart(where, count, interval, deadline))
        times = [r["delivered_s"] for r in results]
        out[label] = {
            "delivered_s": times,
            "median_s": None if None in times else round(statistics.median(times), 3),
            "push": results[-1]["push"],
            "tarpit_connections": [r["tarpit_connections"] for r in results],
        }
    base, bad = out["baseline"]["median_s"], out["with_tarpits"]["median_s"]
    out["ratio_of_medians"] = round(bad / base, 2) if base and bad is not None else None
    out["goal"] = "with_tarpits median <= 2 x baseline median"
    return out


def signed_headers(body: bytes, receiver: bytes,
                   sender: Identity = Identity(bytes([7]) * 32)) -> dict[str, str]:  # noqa: B008
    try:
        from sync.protocol.auth import sign_request
    except ImportError:  # a checkout from before signed requests
        return {}
    return sign_request(sender, "POST", "/sync/push", body, at=now(), receiver=receiver)


def bench_push(root: Path, megabytes: float) -> dict[str, Any]:
    home = root / "push"
    Commons.init(HomePaths(home), clock=now, name="target").close()
    server = Server(home, name="target")
    try:
        rss_before = peak_rss_kb(server.proc.pid)
        body = b"{}\n" * int(megabytes * 1_000_000 / 3)
        status_times: list[float] = []
        done = threading.Event()

        def poll() -> None:  # how /status fares while the push is handled
            while not done.is_set() and len(status_times) < 1000:
                status_times.append(request(server.url + "/status", timeout=600)[2])
                time.sleep(0.2)

        poller = threading.Thread(target=poll)
        poller.start()
        # The hostile peer signs its push with a key of its own (keys are free);
        # a node without request signatures ignores the headers.
        receiver = json.loads(request(server.url + "/status")[1])["public_key"]
        headers = signed_headers(body, bytes.fromhex(receiver))
        status, reply, took = request(server.url + "/sync/push", body, headers=headers)
        done.set()
        poller.join(timeout=600)
        rss_after = peak_rss_kb(server.proc.pid)
        small = b"{}\n" * 512  # as many garbage lines as a push may carry
        small_status, small_reply, _ = request(
            server.url + "/sync/push", small,
            headers=signed_headers(small, bytes.fromhex(receiver)))
    finally:
        server.stop()
    return {
        "push_bytes": len(body),
        "http_status": status,
        "reply_bytes": len(reply),
        "seconds": round(took, 3),
        "peak_rss_before_mb": round(rss_before / 1024, 1),
        "peak_rss_after_mb": round(rss_after / 1024, 1),
        "peak_rss_growth_mb": round((rss_after - rss_before) / 1024, 1),
        "status_during_push_max_s": round(max(status_times), 3) if status_times else None,
        "garbage_512_lines_status": small_status,
        "garbage_512_lines_reply_bytes": len(small_reply),
    }


def bench_status(root: Path, profiles: int, polls: int) -> dict[str, Any]:
    home = root / "status"
    Commons.init(HomePaths(home), clock=now, name="mirror").close()
    store = ObjectStore(HomePaths(home).db)
    at = now() - 1000
    try:
        with store.transaction() as db:  # verified objects, written in one go for speed
            for i in range(profiles):
                who = Identity(i.to_bytes(32, "big"))
                obj = sign(Profile(author=who.public_key, created_at=at, name=f"p{i}"), who)
                db.execute(
                    "INSERT INTO objects (id, kind, author, created_at, raw, origin,"
                    " received_at, verified_at) VALUES (?, 'profile', ?, ?, ?, 'bench', ?, ?)",
                    (obj.id, obj.author, obj.created_at, obj.to_bytes(), at, at),
                )
    finally:
        store.close()
    server = Server(home, name=None)
    try:
        times = [request(server.url + "/status", timeout=600)[2] for _ in range(polls)]
    finally:
        server.stop()
    return {
        "profiles": profiles,
        "polls": polls,
        "median_ms": round(statistics.median(times) * 1000, 1),
        "max_ms": round(max(times) * 1000, 1),
        "first_ms": round(times[0] * 1000, 1),
    }


def timed_add(home: Path, title: str) -> tuple[str, float]:
    """Add a document through the local API of the node that owns `home`: its id, and
    how long `add` took."""
    api = RemoteApi.from_node_info(HomePaths(home).node_info() or {})
    text = f"# {title}\n\nNotes on {title}, written at {time.time()}.\n"
    started = time.perf_counter()
    added = api.add(Extracted(title, text, "text/markdown"), title=title, tags=[],
                    licence=None, replaces=None)
    return str(added["id"]), time.perf_counter() - started


def delivered(target: Server, oid: str, deadline: float = 300) -> float | None:
    """Seconds until `target` serves `oid` (polled every 50 ms), None past `deadline`."""
    started = time.perf_counter()
    body = json.dumps({"ids": [oid]}).encode()
    while time.perf_counter() - started < deadline:
        status, reply, _ = request(target.url + "/sync/fetch", body, timeout=60)
        if status == 200 and reply.strip():
            return time.perf_counter() - started
        time.sleep(0.05)
    return None


class Flood:
    """One key pushing valid documents to `target` over `connections` connections at
    once, as fast as it can (pre-signed, so the flooder's own CPU is spent before)."""

    def __init__(self, target: Server, pushes: int, per_push: int, connections: int) -> None:
        self.target = target
        self.key = Identity(bytes([9]) * 32)
        self.receiver = bytes.fromhex(json.loads(request(target.url + "/status")[1])["public_key"])
        at = now() - 100
        self.bodies = [
            b"".join(sign(Document(author=self.key.public_key, created_at=at,
                                   title=f"Offer {n}.{i}", body=f"Buy now: offer {n}.{i}."),
                          self.key).to_bytes() + b"\n" for i in range(per_push))
            for n in range(pushes)
        ]
        self.statuses: list[int] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(k, connections))
                        for k in range(connections)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=300)

    def run(self, first: int, step: int) -> None:
        # Round and round (a node already holding a document skips it cheaply), until
        # stopped, and never more than twenty times over.
        for n in range(first, 20 * len(self.bodies), step):
            if self.stop.is_set():
                return
            body = self.bodies[n % len(self.bodies)]
            try:
                status, _, _ = request(self.target.url + "/sync/push", body, timeout=120,
                                       headers=signed_headers(body, self.receiver, self.key))
            except OSError:
                status = 0
            self.statuses.append(status)


def bench_flood(root: Path, trials: int, ingress: str | None, pushes: int,
                per_push: int, connections: int, warmup: float) -> dict[str, Any]:
    target_home, honest_home = root / "target", root / "honest"
    Commons.init(HomePaths(target_home), clock=now, name="target").close()
    Commons.init(HomePaths(honest_home), clock=now, name="honest").close()
    supported = "--ingress-per-peer" in cli(target_home, "serve", "--help")
    extra = ("--ingress-per-peer", ingress) if ingress and supported else ()
    target = Server(target_home, name="target", extra=extra)
    honest = Server(honest_home, name="honest", interval="5", extra=("--peer", target.url))
    out: dict[str, Any] = {"ingress_per_peer": extra[1] if extra else None,
                           "flood_push": per_push, "flood_connections": connections,
                           "warmup_s": warmup}
    flood: Flood | None = None
    try:
        for phase in ("quiet", "flood"):
            if phase == "flood":
                flood = Flood(target, pushes, per_push, connections)
                flood.start()
                time.sleep(warmup)  # the flood is under way before the first honest document
            times: list[float] = []
            adds: list[float] = []
            for n in range(trials):
                oid, add_took = timed_add(honest_home, f"Honest {phase} {n}")
                took = delivered(target, oid)  # from the moment the honest add returned
                times.append(add_took + took if took is not None else float("inf"))
                adds.append(timed_add(target_home, f"Local {phase} {n}")[1])
            out[phase] = {
                "delivery_median_s": round(statistics.median(times), 3),
                "delivery_max_s": round(max(times), 3),
                "local_add_median_s": round(statistics.median(adds), 3),
            }
        assert flood is not None
        flood.join()
        documents = json.loads(request(target.url + "/status")[1])["documents"]
        out["flood"].update({
            "pushes_sent": len(flood.statuses),
            "pushes_429": flood.statuses.count(429),
            "target_documents_after": documents,
        })
    finally:
        if flood is not None:
            flood.join()
        honest.stop()
        target.stop()
    quiet, flooded = out["quiet"]["delivery_median_s"], out["flood"]["delivery_median_s"]
    out["slowdown"] = round(flooded / quiet, 2) if quiet else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--push-mb", type=float, default=10.0)
    parser.add_argument("--profiles", type=int, default=60_000)
    parser.add_argument("--polls", type=int, default=10)
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--flood-connections", type=int, default=4)
    parser.add_argument("--flood-warmup", type=float, default=15.0,
                        help="seconds of flood before the first honest document")
    parser.add_argument("--ingress-per-peer", default="600/minute",
                        help="the target's budget for one key (the flag; '' for its default)")
    parser.add_argument("--flood-pushes", type=int, default=400)
    parser.add_argument("--flood-push", type=int, default=100, help="documents per push")
    parser.add_argument("--tarpits", type=int, default=250)
    parser.add_argument("--tarpit-interval", type=float, default=1.0)
    parser.add_argument("--tarpit-deadline", type=float, default=300.0)
    parser.add_argument("--tarpit-runs", type=int, default=3)
    parser.add_argument("--only", choices=("push", "status", "tarpit", "flood"))
    args = parser.parse_args()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="commons-hostile-") as tmp:
        root = Path(tmp)
        if args.only in (None, "push"):
            out["push"] = bench_push(root, args.push_mb)
        if args.only in (None, "status"):
            out["status"] = bench_status(root, args.profiles, args.polls)
        if args.only in (None, "tarpit"):
            out["tarpit"] = bench_tarpit(root, args.tarpits, args.tarpit_interval,
                                         args.tarpit_deadline, args.tarpit_runs)
        if args.only in (None, "flood"):
            out["flood"] = bench_flood(root, args.trials, args.ingress_per_peer or None,
                                       args.flood_pushes, args.flood_push,
                                       args.flood_connections, args.flood_warmup)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
