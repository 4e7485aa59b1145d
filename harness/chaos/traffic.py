"""Background traffic: a few clients creating links and following them, counting every status."""

from __future__ import annotations

import collections
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

CLIENTS = 2  # closed loop: each client waits for its answer, so a slow app is not flooded
PAUSE = 0.1  # seconds between a client's requests: about 17 requests/s a stack (0.05: 30, the app using 2.3 times the CPU)
TIMEOUT = 10.0
CHECKERS = 4  # clients that ask for every link at the end, side by side (thousands of links: one by one took minutes)
KINDS = ("create", "redirect")  # the usual mix: half creates, half redirects (cache hits once warm)


class Traffic:
    """Creates and redirects against the app until stopped; keeps (time, status) of each request."""

    def __init__(self, app_url: str, rate: float = 1, kinds: tuple[str, ...] = KINDS):
        """rate: in multiples of the usual traffic (CLIENTS clients, each at its pace); kinds: what each client
        does in turn (creates, redirects of links created earlier)."""
        self.app_url = app_url
        self.clients = round(CLIENTS * rate)
        self.kinds = kinds
        self.results: list[tuple[float, int]] = []  # status 0: no answer
        self.failures: list[str] = []  # clients that died: a drill must not mistake them for silence
        self._codes: list[str] = []
        self._created: dict[str, str] = {}  # each code answered 201, and the URL it was created for
        self._clicks: collections.Counter[str] = collections.Counter()  # redirects answered 302 (clicks), by code
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> "Traffic":
        for number in range(self.clients):
            thread = threading.Thread(target=self._client, name=f"traffic-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=TIMEOUT + 1)

    def _client(self) -> None:
        try:
            self._requests()
        except Exception as error:  # noqa: BLE001 - any death of a client is reported, not swallowed
            with self._lock:
                self.failures.append(f"{threading.current_thread().name} died: {error!r}")

    def _requests(self) -> None:
        session = _direct_session()
        for turn in itertools.count():
            if self._stop.is_set():
                return
            kind = self.kinds[turn % len(self.kinds)] if self._codes else "create"
            try:
                if kind == "create":
                    url = f"https://example.org/{threading.current_thread().name}/{turn}"
                    response = session.post(f"{self.app_url}/shorten", json={"url": url}, timeout=TIMEOUT)
                    if response.status_code == 201:
                        with self._lock:
                            self._codes.append(response.json()["code"])
                            self._created[response.json()["code"]] = url
                else:
                    code = self._codes[turn % len(self._codes)]
                    response = session.get(f"{self.app_url}/{code}", allow_redirects=False, timeout=TIMEOUT)
                    self._clicked(code, response)
                status = response.status_code
            except requests.RequestException:
                status = 0
            with self._lock:
                self.results.append((time.monotonic(), status))
            time.sleep(PAUSE)

    def lost(self) -> tuple[int, list[str]]:
        """Once stopped: how many links were answered 201, and those that no longer redirect to their URL (sorted).

        A link the app acknowledged must outlive any fault. One that does not answer at once is asked
        again a second later: a dependency just back may still be waking up.
        """
        sessions = threading.local()  # one per checker: a session is not shared between threads

        def leads_home(code: str) -> bool:
            if not hasattr(sessions, "session"):
                sessions.session = _direct_session()
            try:
                response = sessions.session.get(f"{self.app_url}/{code}", allow_redirects=False, timeout=TIMEOUT)
            except requests.RequestException:
                return False
            self._clicked(code, response)
            return response.status_code == 302 and response.headers.get("Location") == created[code]

        def not_home(codes: list[str]) -> list[str]:
            with ThreadPoolExecutor(CHECKERS, thread_name_prefix=f"{threading.current_thread().name}-check") as pool:
                return [code for code, home in zip(codes, pool.map(leads_home, codes)) if not home]

        with self._lock:
            created = dict(self._created)
        lost = not_home(list(created))
        if lost:
            time.sleep(1.0)
            lost = not_home(lost)
        return len(created), sorted(lost)

    def _clicked(self, code: str, response: requests.Response) -> None:
        if response.status_code == 302:  # the app counts a click for each redirect it answers
            with self._lock:
                self._clicks[code] += 1

    def clicks(self) -> dict[str, int]:
        """The clicks the app acknowledged (each redirect answered 302), by code, this far."""
        with self._lock:
            return dict(self._clicks)

    def statuses(self, since: float, until: float | None = None) -> dict[str, int]:
        """How many requests got each status (0: no answer) between two monotonic times (until: now), by status."""
        until = time.monotonic() if until is None else until
        with self._lock:
            counted = collections.Counter(status for at, status in self.results if since <= at <= until)
        return {str(status): count for status, count in sorted(counted.items())}


def _direct_session() -> requests.Session:
    """Straight to the stack on 127.0.0.1: no proxy the environment names, and no read of the environment per request
    (a thread listing it while pytest deletes PYTEST_CURRENT_TEST between two tests dies of a KeyError)."""
    session = requests.Session()
    session.trust_env = False
    return session
