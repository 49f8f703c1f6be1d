"""Benchmark: how long `commons serve` takes to stop, and the app to quit.

- serve: a real `commons serve` process on a loopback port; SIGTERM once its
  /status answers, timed until the process has exited.
- app: the real app in a tmux pane (80x24) with its node running; ctrl+q once
  the Library shows, timed until the process has exited.

Each is run `--trials` times on a fresh seeded home, with the real model (the
node indexes the seeds when it starts, as a new user's does) or `--embedder fake`.
Prints JSON: seconds per trial, median and max.

    python bench/stop_times.py [--trials 3] [--no-app] [--embedder minilm|fake]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


EMBEDDER = "minilm"  # --embedder; the real model makes the index catch-up real work


def env_vars() -> dict[str, str]:
    return {"COMMONS_EMBEDDER": EMBEDDER, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "PYTHONPATH": os.environ.get("PYTHONPATH", "")}


def env() -> dict[str, str]:
    return {**os.environ, **env_vars()}


def init_home(root: Path) -> Path:
    home = root / "home"
    subprocess.run([sys.executable, "-m", "tui", "--home", str(home), "init", "--name", "bench"],
                   check=True, capture_output=True, env=env())
    return home


def wait(check: object, what: str) -> None:
    end = time.monotonic() + TIMEOUT
    while time.monotonic() < end:
        try:
            if check():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting until {what}")


def serve_stop(root: Path) -> float:
    home = init_home(root)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui", "--home", str(home), "serve", "--listen",
         f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(),
    )

    def answers() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as r:
            return r.status == 200

    wait(answers, "serve answers /status")
    time.sleep(1.0)  # let the first gossip round and index catch-up begin
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=TIMEOUT)
    return time.monotonic() - start


def app_quit(root: Path) -> float:
    home = init_home(root)
    session = f"bench-quit-{os.getpid()}"
    pid_file = root / "pid"
    # tmux runs the command in its server's environment: pass ours explicitly.
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env_vars().items())
    command = (f"echo $$ > {pid_file}; exec env {exports} {sys.executable} -m tui --home {home}"
               f" --listen 127.0.0.1:{free_port()}")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24",
                    command], check=True, env=env())

    def shows_library() -> bool:
        screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                                capture_output=True, text=True).stdout
        return "signatures verified" in screen

    try:
        wait(shows_library, "the app shows the Library")
        pid = int(pid_file.read_text())
        time.sleep(1.0)
        start = time.monotonic()
        subprocess.run(["tmux", "send-keys", "-t", session, "C-q"], check=True)

        def exited() -> bool:  # gone, or a zombie its parent has not reaped yet
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except FileNotFoundError:
                return True
            return stat.rpartition(")")[2].split()[0] == "Z"

        wait(exited, "the app exits")
        return time.monotonic() - start
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def summary(times: list[float]) -> dict[str, object]:
    return {"seconds": [round(t, 3) for t in times], "median": round(statistics.median(times), 3),
            "max": round(max(times), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--no-app", action="store_true", help="skip the app (needs tmux)")
    parser.add_argument("--embedder", default="minilm", choices=("minilm", "fake"))
    args = parser.parse_args()
    global EMBEDDER
    EMBEDDER = args.embedder
    result: dict[str, object] = {"trials": args.trials, "embedder": args.embedder}
    runs: dict[str, list[float]] = {"serve_stop": []}
    if not args.no_app and shutil.which("tmux"):
        runs["app_quit"] = []
    for _ in range(args.trials):
        for name in runs:
            with tempfile.TemporaryDirectory() as tmp:
                runs[name].append(serve_stop(Path(tmp)) if name == "serve_stop"
                                  else app_quit(Path(tmp)))
    for name, times in runs.items():
        result[name] = summary(times)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
