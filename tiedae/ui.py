"""The MLflow UI, opened where a person compares runs: the runs table, and a screenshot of it.

``python -m tiedae.ui url`` prints the address of the experiment's runs table (MLflow 3's UI
otherwise opens on a GenAI overview). ``python -m tiedae.ui screenshot --sweep smoke`` starts
``mlflow ui`` on a store, opens that table with headless Chromium (Debian's ``chromium``) showing
a sweep's jobs with their method, labeled count, seed and test accuracy, and saves a PNG, so
the README's picture can be remade. The view itself is stored in the store (see
``Tracker.share_runs_view``); this module talks to MLflow only through ``tiedae.tracking``
and the ``mlflow`` command.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tiedae.config import PROJECT_ROOT
from tiedae.tracking import Tracker, TrackingSettings

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DEFAULT_URI = f"sqlite:///{PROJECT_ROOT}/mlflow.db"


def find_chromium() -> str | None:
    """The headless browser on PATH, or None (Debian: ``apt-get install chromium``)."""
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def runs_url(uri: str, base: str, sweep: str | None = None) -> str:
    """The runs table of the store's tiedae experiment (one sweep's jobs, when named)."""
    tracker = Tracker(TrackingSettings(uri)).connect()
    return tracker.runs_url(base, sweep)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"mlflow ui exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"mlflow ui did not answer at {url} within {timeout:.0f}s")


def screenshot(
    uri: str,
    out: Path,
    sweep: str | None = None,
    size: tuple[int, int] = (2200, 900),
    wait_ms: int = 20000,
) -> Path:
    """Start ``mlflow ui`` on ``uri``, photograph the sweep's runs table into ``out``, stop it."""
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("no chromium on PATH; install it (Debian: apt-get install chromium)")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = runs_url(uri, base, sweep)
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow_cli) if mlflow_cli.exists() else "mlflow", "ui",
               "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]  # fmt: skip
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        server = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            wait_until_up(base, server)
            subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
                 f"--virtual-time-budget={wait_ms}", f"--screenshot={out}", url],
                check=True, capture_output=True, timeout=180,
            )  # fmt: skip
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    if not out.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {out}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tiedae.ui", description=__doc__.split("\n")[0])
    parser.add_argument("--uri", default=os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI))
    parser.add_argument("--sweep", help="show only this sweep's jobs")
    commands = parser.add_subparsers(dest="command", required=True)
    url = commands.add_parser("url", help="print the address of the runs table")
    url.add_argument("--base", default="http://127.0.0.1:5000", help="where mlflow ui listens")
    shot = commands.add_parser("screenshot", help="a PNG of the runs table (needs chromium)")
    shot.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "mlflow-ui-runs.png")
    args = parser.parse_args(argv)
    if args.command == "url":
        print(runs_url(args.uri, args.base, args.sweep))
    else:
        print(f"screenshot: {screenshot(args.uri, args.out, args.sweep)}")


if __name__ == "__main__":
    main()
