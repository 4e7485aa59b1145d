"""The mail sink: MailHog (upstream images) or MailDev (local images), read through their HTTP APIs."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass

import requests


@dataclass(frozen=True)
class Message:
    """One email as the sink received it."""

    subject: str
    recipients: tuple[str, ...]  # the To header
    text: str
    html: str = ""
    envelope: tuple[str, ...] = ()  # RCPT TO of the SMTP session: where the sink really delivered it
    dated: str = ""  # ISO 8601: when it was sent (its Date header, as MailDev keeps it) or received (MailHog)
    sender: str = ""  # the From address: who wrote it (Alertmanager, or the dead man's switch)


@dataclass(frozen=True)
class Flavour:
    """How one mail sink is started and read."""

    name: str
    ready_path: str
    list_path: str
    clear: tuple[str, str]  # method, path

    def command(self, smtp_port: int, web_port: int) -> list[str]:
        """Arguments that make the sink listen on 127.0.0.1 at these ports."""
        if self.name == "mailhog":
            return [
                f"-smtp-bind-addr=127.0.0.1:{smtp_port}",
                f"-api-bind-addr=127.0.0.1:{web_port}",
                f"-ui-bind-addr=127.0.0.1:{web_port}",
            ]
        return ["--smtp", str(smtp_port), "--web", str(web_port), "--ip", "127.0.0.1"]

    def parse(self, payload) -> list[Message]:
        """The messages of a list response, oldest first."""
        if self.name == "mailhog":
            return [_from_mime(item["Raw"]["Data"], tuple(item["Raw"]["To"]), item.get("Created", ""))
                    for item in reversed(payload["items"])]
        return [
            Message(
                subject=item.get("subject", ""),
                recipients=tuple(to["address"] for to in item.get("to", [])),
                text=item.get("text") or "",
                html=item.get("html") or "",
                envelope=tuple(to["address"] for to in item.get("envelope", {}).get("to", [])),
                dated=item.get("time") or "",
                sender=next((who["address"] for who in item.get("from", [])), ""),
            )
            for item in payload
        ]


MAILHOG = Flavour("mailhog", ready_path="/api/v2/messages", list_path="/api/v2/messages", clear=("DELETE", "/api/v1/messages"))
MAILDEV = Flavour("maildev", ready_path="/healthz", list_path="/email", clear=("DELETE", "/email/all"))
FLAVOURS = {"upstream": MAILHOG, "local": MAILDEV}


def _from_mime(raw: str, envelope: tuple[str, ...], dated: str) -> Message:
    parsed = email.message_from_string(raw, policy=email.policy.default)
    text, page = (parsed.get_body(preferencelist=(kind,)) for kind in ("plain", "html"))
    return Message(
        subject=str(parsed["Subject"] or ""),
        recipients=tuple(a.addr_spec for a in parsed["To"].addresses) if parsed["To"] else (),
        text=text.get_content() if text else "",
        html=page.get_content() if page else "",
        envelope=envelope,
        dated=dated,
        sender=parsed["From"].addresses[0].addr_spec if parsed["From"] else "",
    )


class Inbox:
    """The sink's inbox over HTTP."""

    def __init__(self, url: str, flavour: Flavour):
        self.url = url
        self.flavour = flavour

    def messages(self) -> list[Message]:
        """Every message received, oldest first."""
        response = requests.get(self.url + self.flavour.list_path, timeout=5)
        response.raise_for_status()
        return self.flavour.parse(response.json())

    def clear(self) -> None:
        """Delete every message."""
        method, path = self.flavour.clear
        requests.request(method, self.url + path, timeout=5).raise_for_status()
