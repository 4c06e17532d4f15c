"""The MLflow UI, opened where a person compares runs: the runs table, and a screenshot of it.

``python -m tiedae.ui url`` prints the address of the experiment's runs table (MLflow 3's UI
otherwise opens on a GenAI overview), grouped by method and labeled count with each group's
mean test accuracy. ``python -m tiedae.ui screenshot --sweep smoke`` starts ``mlflow ui`` on a
store, opens that view in headless Chromium (Debian's ``chromium``) driven over its DevTools
pipe as a browser after its first visit (no assistant panel; the shared-view banner closed),
and saves a PNG, so the README's picture can be remade. The view itself is stored in the store (see
``Tracker.share_runs_view``); this module talks to MLflow only through ``tiedae.tracking``
and the ``mlflow`` command.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import select
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


# What a person's browser remembers after a first visit, set before the page loads: the
# assistant panel MLflow opens once on a first load stays closed.
FIRST_VISIT_DONE = {
    "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",
    "mlflow.assistant.panelOpen_v1": "false",
}
# Closes the "You're viewing a shared view" banner (the view stays), as its x does.
CLOSE_BANNER = """(() => {
  const banners = [...document.querySelectorAll('div')].filter(node =>
    node.innerText && node.innerText.includes("viewing a shared view")
    && [...node.querySelectorAll('button')].some(b => !b.innerText.trim()));
  banners.sort((a, b) => a.innerText.length - b.innerText.length);
  if (!banners.length) return false;
  const buttons = [...banners[0].querySelectorAll('button')].filter(b => !b.innerText.trim());
  buttons[buttons.length - 1].click();
  return true;
})()"""


class Browser:
    """Headless Chromium driven through the DevTools protocol on a pipe (``--remote-debugging-
    pipe``: JSON messages ending in NUL on descriptors 3 and 4), one page."""

    def __init__(self, chromium: str, profile: str, size: tuple[int, int]) -> None:
        self._commands, chrome_reads = os.pipe()[::-1]
        chrome_writes_to, self._replies = os.pipe()[::-1]
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
                 "--remote-debugging-pipe", "about:blank"]  # fmt: skip
        shell = f'exec "$0" "$@" 3<&{chrome_reads} 4>&{chrome_writes_to}'
        self.process = subprocess.Popen(
            ["sh", "-c", shell, chromium, *flags], pass_fds=(chrome_reads, chrome_writes_to),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        os.close(chrome_reads)
        os.close(chrome_writes_to)
        self._buffer, self._next, self.session = b"", 0, None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1],
                  deviceScaleFactor=1, mobile=False)  # fmt: skip

    def call(self, method: str, timeout: float = 60, **params) -> dict:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\0" in self._buffer:
                raw, _, self._buffer = self._buffer.partition(b"\0")
                reply = json.loads(raw)
                if reply.get("id") == self._next:
                    if "error" in reply:
                        raise RuntimeError(f"chromium: {method}: {reply['error']}")
                    return reply.get("result", {})
            ready, _, _ = select.select([self._replies], [], [], 1.0)
            if ready:
                chunk = os.read(self._replies, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium exited")
                self._buffer += chunk
        raise RuntimeError(f"chromium did not answer {method} within {timeout:.0f}s")

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)[
            "result"
        ].get("value")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("Browser.close", timeout=10)
        for fd in (self._commands, self._replies):
            with contextlib.suppress(OSError):
                os.close(fd)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)


def open_page(browser: Browser, base: str, url: str, ready: str, wait_s: float) -> str:
    """Open ``url`` as a person's browser after a first visit would (``FIRST_VISIT_DONE``),
    wait until its text contains ``ready`` (at most ``wait_s``), close the shared-view
    banner; the page's text."""
    browser.call("Page.enable")
    browser.call("Page.navigate", url=f"{base}/health")  # the UI's origin, a tiny page
    time.sleep(1)
    for key, value in FIRST_VISIT_DONE.items():
        browser.evaluate(f"localStorage.setItem({json.dumps(key)}, {json.dumps(value)})")
    browser.call("Page.navigate", url=url)
    deadline, text = time.monotonic() + wait_s, ""
    while time.monotonic() < deadline:
        text = browser.evaluate("document.body ? document.body.innerText : ''") or ""
        if ready in text:
            break
        time.sleep(1)
    if browser.evaluate(CLOSE_BANNER):
        time.sleep(1)
    time.sleep(2)  # the grid's last layout
    return browser.evaluate("document.body.innerText") or ""


CHART_SECTION = "tiedae: test accuracy by labeled count"  # Tracker.share_runs_view's


def screenshot(
    uri: str,
    out: Path,
    sweep: str | None = None,
    size: tuple[int, int] = (1600, 1000),
    wait_s: float = 60,
    chart_out: Path | None = None,
) -> tuple[Path, str]:
    """Start ``mlflow ui`` on ``uri``, photograph the sweep's comparison view into ``out``
    (and, with ``chart_out``, the same view's charts: each group's mean test accuracy against
    its labeled count), stop it; the PNG and the pages' text."""
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
            browser = Browser(chromium, profile, size)
            try:
                text = open_page(browser, base, url, "Group:", wait_s)
                png = browser.call("Page.captureScreenshot", format="png")["data"]
                out.write_bytes(base64.b64decode(png))
                if chart_out is not None:
                    charts = f"{url}&compareRunsMode=CHART"
                    text += "\n" + open_page(browser, base, charts, CHART_SECTION, wait_s)
                    png = browser.call("Page.captureScreenshot", format="png")["data"]
                    Path(chart_out).write_bytes(base64.b64decode(png))
            finally:
                browser.close()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    return out, text


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
        print(f"screenshot: {screenshot(args.uri, args.out, args.sweep)[0]}")


if __name__ == "__main__":
    main()
