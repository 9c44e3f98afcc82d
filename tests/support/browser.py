"""A real headless Chromium (Debian's chromium and chromium-driver through selenium) and
a `platform ui` process, for the dashboard's browser tests: tests/e2e/test_ui.py on the
e2e platform and tests/e2e/test_real_node_platform.py on the real node. In CI a missing
chromium fails the run (never a skip)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.support import processes
from tests.support.binaries import in_ci
from tests.support.cli import PLATFORM

# What this machine's Chromium needs to start headless without reaching Google's hosts.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,720",
)
APP_NS = "platform-system"


def require_chromium() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    message = (
        "chromium and chromedriver are missing: install Debian's `chromium` and "
        "`chromium-driver` (.ci/run does)"
    )
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@contextmanager
def chromium(profile: Path, driver_log: Path) -> Iterator[WebDriver]:
    """Chromium started with a new, empty profile in `profile`, quit at the end."""
    binary, driver = require_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium must never download a driver
    service = Service(executable_path=driver, log_output=str(driver_log))
    chrome = webdriver.Chrome(service=service, options=options)
    chrome.set_page_load_timeout(60)
    try:
        yield chrome
    finally:
        chrome.quit()


class Dashboard:
    """A `platform ui` process and the address it printed."""

    def __init__(self, workdir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.log = workdir / f"ui-{len(list(workdir.glob('ui-*.log')))}.log"
        self.process = processes.start(
            [PLATFORM, "ui", "--no-open", "--port", str(processes.free_port()), *args],
            self.log,
            env=env,
        )
        processes.wait_for(
            lambda: "token=" in self.output() or self.process.poll() is not None,
            timeout=60,
            what="`platform ui` to print its address",
        )
        found = re.search(r"(http://127\.0\.0\.1:(\d+))/\?token=(\S+)", self.output())
        assert found, self.output()
        self.base, self.port, self.token = found[1], int(found[2]), found[3]
        self.url = found[0]

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stop(self) -> None:
        processes.stop(self.process)


def shot(driver: WebDriver, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"\nscreenshot: {path}")
    return path


def wait(
    driver: WebDriver, predicate: Callable[[WebDriver], Any], what: str, timeout: float = 30
) -> Any:
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(predicate)
    except WebDriverException as error:
        raise AssertionError(
            f"timed out waiting for {what}; the page says:\n{body(driver)}"
        ) from error


def body(driver: WebDriver) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def row(driver: WebDriver, kind: str, name: str) -> str:
    """A row's text, read in one script (the page swaps rows in as they change)."""
    return str(
        driver.execute_script(
            "var r = document.querySelector(arguments[0]); return r ? r.innerText : '';",
            f'tr[data-row="{kind}"][data-key="{APP_NS}/{name}"]',
        )
    )


def text_of(driver: WebDriver, selector: str) -> str:
    """An element's text, read in one script (live parts are replaced as they change)."""
    return str(
        driver.execute_script(
            "var e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
            selector,
        )
    )


def live(driver: WebDriver) -> bool:
    return text_of(driver, "#live") == "● live"
