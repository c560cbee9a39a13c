"""``mdtui serve`` in a real browser, on the rig: Debian's chromium, driven by Playwright,
opens the page, sees the HVR-950Q in the device list, presses ``u``, picks unbinding au0828,
confirms with ``y``, and sees the refcount fall from 2 to 1.

The screen is read from the page's xterm.js terminal, which draws with WebGL or on a
canvas (no text in the DOM, no accessibility tree unless its screen-reader mode is on): an
init script keeps the Terminal textual-serve's page makes (assigned once to a ``terminal``
property) as ``window.__mdtuiTerminal``, and the test reads the rows of its buffer, which
are what the browser draws.  The served mdtui runs on the live source with the rig's
environment (umockdev's preload library); chromium runs without it (it has no business with
the simulated /sys and /dev, and the preload library's map of emulated files is sized for
mdtui), and every request not to the server is aborted (the page asks Google for a font).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: seconds for: the server's first line, the first screen, each step after a key
START = 15.0
STEP = 10.0

#: run before the page's scripts: keeps the page's xterm.js Terminal where the test finds it
KEEP_TERMINAL = """
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  set(value) {
    Object.defineProperty(this, "terminal", {value, writable: true, configurable: true, enumerable: true});
    if (value && value.buffer && typeof value.write === "function") window.__mdtuiTerminal = value;
  },
});
"""
#: the rows the terminal shows, as text; null before the terminal exists
SCREEN = """() => {
  const term = window.__mdtuiTerminal;
  if (!term) return null;
  const buffer = term.buffer.active, rows = [];
  for (let y = 0; y < term.rows; y++) {
    const line = buffer.getLine(buffer.viewportY + y);
    rows.push(line ? line.translateToString(true) : "");
  }
  return rows.join("\\n");
}"""
#: whether the screen matches a regular expression (the argument)
SHOWS = f"""(pattern) => {{
  const screen = ({SCREEN})();
  return screen !== null && new RegExp(pattern, "m").test(screen);
}}"""

#: the device list's row of the HVR-950Q, with its refcount (the ``ref`` column)
DEVICE_ROW = r"media0\s+WinTV HVR-950Q\s+au0828\s+{ref}\s"
#: the Allocator tab's refcount line (the device list's selection: media0)
ALLOCATOR_REFCOUNT = r"^\s*refcount\s+{ref}\b"
#: the choice ``u`` offers first (the event log says "unbind usb 1-1:1.0 DRIVER=au0828")
CHOICE = r"unbind au0828 from 1-1:1\.0"
#: the ConfirmScreen a live source asks first
CONFIRM = r"Really unbind au0828\b.*1-1:1\.0\?"


@dataclass
class Served:
    """A running ``mdtui serve``: its process, page address and output files."""

    process: subprocess.Popen[bytes]
    url: str
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return f"serve's stdout:\n{self.stdout.read_text()}\nserve's stderr:\n{self.stderr.read_text()}"


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (the mdtuis serve started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` is still a process (a zombie counts as gone)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """``mdtui serve --port 0 -- --source live`` in the rig's environment, on a free port;
    stopped with SIGTERM afterwards, when it must exit 0 and leave no mdtui behind."""
    stdout, stderr = tmp_path / "serve.out", tmp_path / "serve.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "mdtui", "serve", "--port", "0", "--", "--source", "live"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    apps: set[int] = set()
    try:
        deadline = time.monotonic() + START
        while not (match := re.search(r" at (http://\S+)", stdout.read_text())):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"mdtui serve did not say where it serves (exit status {process.poll()})\n" + stderr.read_text()
                )
            time.sleep(0.05)
        serving = Served(process, match.group(1), stdout, stderr)
        yield serving
        apps.update(children(process.pid))
    finally:
        apps.update(children(process.pid))
        process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(STEP)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            status = None
        for pid in apps:  # not ours to leave running, whatever the test found
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert status == 0, f"mdtui serve did not stop on SIGTERM (status {status})\n{serving.output()}"
    left = [pid for pid in apps if alive(pid)]
    assert not left, f"served mdtui processes left running after serve stopped: {left}"


def screen(page: Page) -> str:
    """What the page's terminal shows now."""
    try:
        return page.evaluate(SCREEN) or "(no terminal yet)"
    except Exception as exc:  # the page went away
        return f"(the page cannot be read: {exc})"


def wait_for(page: Page, pattern: str, what: str, served: Served, tmp_path: Path, timeout: float = STEP) -> None:
    """Wait until the terminal shows ``pattern``; fail naming ``what`` with the screen, a
    screenshot and serve's output when it does not within ``timeout`` seconds."""
    try:
        page.wait_for_function(SHOWS, arg=pattern, timeout=timeout * 1000, polling=50)
        return
    except PlaywrightTimeout:
        pass
    shot = tmp_path / "screen.png"
    page.screenshot(path=shot)
    pytest.fail(
        f"{what}: not in the browser within {timeout:.0f} s (/{pattern}/; screenshot {shot}); the screen:\n"
        f"{screen(page).rstrip()}\n{served.output()}",
        pytrace=False,
    )


def press(page: Page, key: str) -> None:
    """A key typed into the terminal (xterm.js's input, which sends it over the websocket)."""
    page.focus(".xterm-helper-textarea")
    page.keyboard.press(key)


def test_unbind_in_the_browser_changes_the_refcount(served: Served, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("UMOCKDEV")}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            env=env,
            viewport={"width": 1400, "height": 900},
        )
        try:
            page = browser.pages[0] if browser.pages else browser.new_page()
            page.route(lambda url: not url.startswith(served.url), lambda route: route.abort())  # no web fonts
            page.add_init_script(KEEP_TERMINAL)
            page.goto(served.url, wait_until="domcontentloaded", timeout=START * 1000)

            wait_for(
                page,
                DEVICE_ROW.format(ref=2),
                "the device list with the HVR-950Q at refcount 2",
                served,
                tmp_path,
                START,
            )
            wait_for(page, ALLOCATOR_REFCOUNT.format(ref=2), "the Allocator tab's refcount 2", served, tmp_path)
            press(page, "u")
            wait_for(page, CHOICE, "u: the choice of what to unbind", served, tmp_path)
            press(page, "Enter")
            wait_for(page, CONFIRM, "the confirmation of unbinding au0828", served, tmp_path)
            press(page, "y")
            wait_for(page, DEVICE_ROW.format(ref=1), "the device list's refcount falling to 1", served, tmp_path)
            wait_for(page, ALLOCATOR_REFCOUNT.format(ref=1), "the Allocator tab's refcount 1", served, tmp_path)
        finally:
            browser.close()
