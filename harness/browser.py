"""Debian's Chromium, headless, driven through Playwright: screenshots of the UIs and checks of the report's page."""

from __future__ import annotations

import base64
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from playwright.sync_api import Error, Page, sync_playwright

CHROMIUM = "chromium"  # Debian's package and binary (`make chromium` installs it); never a browser of Playwright's own
SIZE = {"width": 1280, "height": 800}  # every screenshot's viewport
LOAD_TIMEOUT_MS = 15_000
# Headless, and without the background connections (updates, sync, QUIC probes) a closed network refuses.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


class Unavailable(RuntimeError):
    """No browser can run here; the message says why and what installs it."""


def executable() -> str:
    """Where Debian's chromium is, or Unavailable saying how to install it."""
    found = shutil.which(CHROMIUM)
    if not found:
        raise Unavailable(f"no {CHROMIUM} on this machine: `make chromium` installs Debian's package (as root)")
    return found


@dataclass
class Visit:
    """What a page did when it loaded: its console errors, the images it could not show, the links that lead nowhere."""

    console_errors: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    broken_links: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return ([f"console error: {text}" for text in self.console_errors]
                + [f"broken image: {src}" for src in self.broken_images]
                + [f"broken link: {href}" for href in self.broken_links])


class Browser:
    """One headless Chromium, for the thread that opens it (Playwright's sync API is per thread).

    Playwright launches it with a fresh profile (--user-data-dir) of its own and removes it on close.
    """

    def __init__(self) -> None:
        self._playwright = None
        self._chromium = None

    def __enter__(self) -> "Browser":
        path = executable()
        self._playwright = sync_playwright().start()
        try:
            self._chromium = self._playwright.chromium.launch(executable_path=path, args=list(FLAGS))
        except Error:
            self._playwright.stop()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        try:
            self._chromium.close()
        finally:
            self._playwright.stop()

    def page(self, credentials: tuple[str, str] | None = None) -> Page:
        """A new tab of its own (with HTTP basic credentials for a site that asks, e.g. Grafana's admin)."""
        login = base64.b64encode(":".join(credentials).encode()).decode() if credentials else None
        headers = {"Authorization": f"Basic {login}"} if login else None
        page = self._chromium.new_context(viewport=SIZE, extra_http_headers=headers).new_page()
        page.set_default_timeout(LOAD_TIMEOUT_MS)
        return page

    def visit(self, url: str) -> Visit:
        """Open a page as a person would and note every console error, broken image and broken link on it."""
        seen = Visit()
        page = self.page()
        page.on("console", lambda message: message.type == "error" and seen.console_errors.append(message.text))
        page.on("pageerror", lambda error: seen.console_errors.append(str(error)))
        try:
            page.goto(url, wait_until="load")
            seen.broken_images = page.eval_on_selector_all(
                "img", "all => all.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'))")
            for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"):
                if not self._leads_somewhere(page, href):
                    seen.broken_links.append(href)
        finally:
            page.context.close()
        return seen

    @staticmethod
    def _leads_somewhere(page: Page, href: str) -> bool:
        """A link to an anchor must name an element of its page; any other link must load."""
        target, _, anchor = href.partition("#")
        if target == page.url.partition("#")[0]:
            return not anchor or page.locator(f"[id='{anchor}']").count() > 0
        if target.startswith("file:"):
            return Path(unquote(urlsplit(target).path)).is_file()
        try:
            return page.request.get(target).ok
        except Error:
            return False


def screenshot(page: Page, path: Path) -> Path:
    """The visible part of the page as a PNG of the viewport's size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    return path
