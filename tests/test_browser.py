"""The browser view in a real browser: `flexmarkets view` on a free loopback port, Debian's
Chromium driven by Playwright, no request leaving the machine.

Skipped only when /usr/bin/chromium is missing and CI is not set (`make test` installs it);
under CI a missing browser fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic", "--disable-gpu"]
LOCAL = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")
SERVER_TIMEOUT_S = 120  # a cold ~/.cache/flexmarkets reads simbench first (about 20 s)


def _require_browser():
    if not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} not found (apt-get install chromium, or `make test`)"
        if os.environ.get("CI"):
            pytest.fail(f"CI: {reason}")
        pytest.skip(reason)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        if os.environ.get("CI"):
            pytest.fail(f"CI: playwright missing: {exc}")
        pytest.skip(f"playwright missing: {exc}")
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python -m experiments.viz_cli --port P` (what `flexmarkets view` runs), in its own
    process group; yields (url, start time, log path) and stops it afterwards."""
    _require_browser()
    # warm the simbench cache first, so that the timing below is the usual (warm) start
    from experiments.viz import ViewModel, default_settings

    ViewModel(default_settings())
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    url = f"http://127.0.0.1:{port}/"
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "experiments.viz_cli", "--port", str(port)],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not answer in {SERVER_TIMEOUT_S} s:\n{log.read_text()}")
            time.sleep(0.2)
        yield url, t0, log, time.perf_counter() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _wait_changed(locator, before: bytes, timeout_s: float = 20) -> bytes:
    deadline = time.monotonic() + timeout_s
    while True:
        now = locator.screenshot()
        if now != before or time.monotonic() > deadline:
            return now
        time.sleep(0.25)


def test_view_in_chromium(server, tmp_path, capsys):
    sync_playwright = _require_browser()
    url, t0, log, answered_s = server
    external, failed = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1600, "height": 2150})

            def offline(route):
                if route.request.url.startswith(LOCAL):
                    route.continue_()
                else:
                    external.append(route.request.url)
                    route.abort()

            context.route("**/*", offline)
            page = context.new_page()
            page.on("response", lambda r: failed.append(f"{r.status} {r.url}")
                    if r.status >= 400 else None)
            page.goto(url)
            grid = page.locator(".fm-grid-figure")
            grid.wait_for(state="visible", timeout=90_000)
            first_grid_s = time.perf_counter() - t0
            with capsys.disabled():
                print(f"\nbrowser view: server answered {answered_s:.1f} s after start, first "
                      f"rendered grid {first_grid_s:.1f} s after start")
            day = page.locator(".fm-day")
            assert day.inner_text().startswith("Day 0 of 7")
            prices = page.locator(".fm-prices")
            grid_before, prices_before = grid.screenshot(), prices.screenshot()

            # Mesa's generic controls and Solara's badge are gone
            body = page.locator("body").inner_text()
            for clutter in ("Play Interval", "Render Interval", "Use Threads",
                            "Model Parameters", "PAGE 0", "This website runs on"):
                assert clutter.lower() not in body.lower(), clutter

            # a day takes seconds: meanwhile the page is busy and Step cannot be clicked again
            step = page.get_by_role("button", name="Step")
            step.click()
            page.locator(".fm-busy").wait_for(state="visible", timeout=10_000)
            assert step.is_disabled()
            assert page.get_by_role("button", name="Reset").is_disabled()
            page.wait_for_function(
                "() => document.querySelector('.fm-day')?.innerText.startsWith('Day 1 of 7')",
                timeout=60_000)
            page.locator(".fm-idle").wait_for(state="visible", timeout=60_000)
            assert step.is_enabled()
            page.locator(".fm-prices-figure").wait_for(state="visible", timeout=30_000)
            page.locator(".fm-profits-figure").wait_for(state="visible", timeout=30_000)
            grid_after = _wait_changed(grid, grid_before)
            prices_after = _wait_changed(prices, prices_before)
            assert grid_after != grid_before, "the grid picture did not change after Step"
            assert prices_after != prices_before, "the price panel did not change after Step"

            time.sleep(0.5)  # let the last figures paint
            shot = tmp_path / "flexmarkets-view.png"
            page.screenshot(path=str(shot))
            with capsys.disabled():
                print(f"browser view screenshot: {shot}")

            # a seed typed as text is an error on the page; the model is not touched
            seed = page.get_by_label("Seed (whole number, Enter to apply)")
            for bad in ("abc", "-1", "1e99", ""):
                seed.fill(bad)
                seed.press("Enter")
                page.locator(".fm-seed-error").wait_for(state="visible", timeout=10_000)
                assert "seed" in page.locator(".fm-seed-error").inner_text()
            assert day.inner_text().startswith("Day 1 of 7")
            assert page.locator(".fm-summary h3").inner_text() == "default, seed 42"

            # a second tab has its own model: still at day 0 while the first is at day 1
            other = context.new_page()
            other.goto(url)
            other.locator(".fm-grid-figure").wait_for(state="visible", timeout=60_000)
            assert other.locator(".fm-day").inner_text().startswith("Day 0 of 7")
            other.get_by_role("button", name="Step").click()
            other.wait_for_function(
                "() => document.querySelector('.fm-day')?.innerText.startsWith('Day 1 of 7')",
                timeout=60_000)
            assert day.inner_text().startswith("Day 1 of 7")  # the first tab did not move

            # a scenario whose LFM trades on its first day: its prices and volumes show
            page.bring_to_front()
            page.get_by_label("Scenario").click(force=True)  # a Vuetify select
            page.locator(".v-menu__content .v-list-item",
                         has_text="coupling_conflict").click()
            page.get_by_role("button", name="Reset").click()
            page.wait_for_function(
                "() => document.querySelector('.fm-summary h3')?.innerText"
                ".startsWith('coupling_conflict')", timeout=60_000)
            page.get_by_role("button", name="Step").click()
            page.wait_for_function(
                "() => document.querySelector('.fm-day')?.innerText.startsWith('Day 1 of')",
                timeout=60_000)
            lfm_prices = page.locator(".fm-lfm-prices")
            lfm_prices.wait_for(state="visible", timeout=30_000)
            import re

            traded = re.compile(r"^LFM: the DSO bought [0-9.]+ MWh \(.+\) at [0-9.]+ EUR/MWh")
            assert traded.match(lfm_prices.inner_text()), lfm_prices.inner_text()
            assert traded.match(page.locator(".fm-lfm-volumes").inner_text())
        finally:
            browser.close()
    assert not external, f"requests left the machine: {external}"
    assert not failed, f"failed requests: {failed}\n{log.read_text()[-3000:]}"
    assert "samesite" not in log.read_text().lower(), "the cookie warning is back on the console"
    assert shot.stat().st_size > 50_000
