"""The mail relay: Alertmanager's smarthost, which passes each email on to the mail sink, or says "try again later".

As a team's outbound relay stands between Alertmanager and the inboxes, this one stands between
Alertmanager and the mail sink. It queues nothing: it answers 250 to a message only once the
next hop has taken it, so it never loses what it took, and when the next hop fails it answers
451 and the sender keeps the message. It asks the next hop about each recipient before it takes
it (a callout, as Postfix's reject_unverified_recipient does), so that a next hop that is down
is refused at RCPT: Alertmanager before 0.28 ignores the answer at the end of DATA
(prometheus/alertmanager#4005) and would count a message refused there as sent.

A drill makes it defer every recipient with 451 (SIGUSR1), as a relay does that is rate
limiting, greylisting or out of spool space, and take mail again (SIGUSR2). The dead man's
switch mails the sink directly, never through it.

It runs on Debian's python3-aiosmtpd (its own image): aiosmtpd serves SMTP, smtplib passes on.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import smtplib
import threading

from aiosmtpd.controller import Controller

DEFERRED = "451 4.3.2 Relay deferring mail: try again later"
NEXT_HOP_DOWN = "451 4.4.1 Next hop not answering: try again later"
NEXT_HOP_FAILED = "451 4.4.1 Next hop did not take the message: try again later"
NEXT_HOP_TIMEOUT = 10.0  # seconds the relay waits for the sink before it answers 451

log = logging.getLogger("relay")


class Relay:
    """The SMTP handler: recipients deferred or taken; each message passed on whole, or refused with 451."""

    def __init__(self, next_hop: str):
        host, port = next_hop.rsplit(":", 1)
        self.next_hop = (host, int(port))
        self.deferring = threading.Event()
        self.deferred = 0  # recipients answered 451 while deferring
        self.relayed = 0  # messages the next hop took

    def defer(self, *_signal) -> None:
        self.deferring.set()
        log.warning("deferring every recipient with 451 from now on")

    def accept(self, *_signal) -> None:
        self.deferring.clear()
        log.warning("taking mail again (%d recipients were deferred)", self.deferred)

    async def handle_RCPT(self, server, session, envelope, address: str, rcpt_options: list[str]) -> str:
        if self.deferring.is_set():
            self.deferred += 1
            log.info("deferred %s", address)
            return DEFERRED
        try:
            code, answer = await asyncio.to_thread(self._ask, envelope.mail_from, address)
        except (OSError, smtplib.SMTPException) as error:
            log.warning("the next hop did not answer for %s: %s", address, error)
            return NEXT_HOP_DOWN
        if code != 250:
            log.warning("the next hop refused %s: %d %s", address, code, answer.decode(errors="replace"))
            return f"{code} {answer.decode(errors='replace')}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def _ask(self, sender: str, address: str) -> tuple[int, bytes]:
        """The next hop's answer to this recipient, asked in a session of its own and then let go."""
        with smtplib.SMTP(*self.next_hop, timeout=NEXT_HOP_TIMEOUT) as client:
            client.ehlo_or_helo_if_needed()
            client.mail(sender)
            answer = client.rcpt(address)
            client.rset()
        return answer

    async def handle_DATA(self, server, session, envelope) -> str:
        try:
            await asyncio.to_thread(self._pass_on, envelope)
        except (OSError, smtplib.SMTPException) as error:
            log.warning("the next hop did not take a message for %s: %s", ", ".join(envelope.rcpt_tos), error)
            return NEXT_HOP_FAILED
        self.relayed += 1
        log.info("relayed a message for %s", ", ".join(envelope.rcpt_tos))
        return "250 OK"

    def _pass_on(self, envelope) -> None:
        with smtplib.SMTP(*self.next_hop, timeout=NEXT_HOP_TIMEOUT) as client:
            client.sendmail(envelope.mail_from, envelope.rcpt_tos, envelope.original_content)


def serve(listen: str, relay: Relay) -> Controller:
    """Start serving SMTP on listen (host:port) in a thread of its own; the caller stops the controller."""
    host, port = listen.rsplit(":", 1)
    controller = Controller(relay, hostname=host, port=int(port), server_hostname="relay.shortener.example")
    controller.start()
    return controller


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="host:port it takes mail on")
    parser.add_argument("--next-hop", required=True, help="host:port of the SMTP server it passes mail to")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s relay %(levelname)s %(message)s")
    relay = Relay(args.next_hop)
    signal.signal(signal.SIGUSR1, relay.defer)
    signal.signal(signal.SIGUSR2, relay.accept)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    controller = serve(args.listen, relay)
    log.info("taking mail on %s for %s:%d", args.listen, *relay.next_hop)
    while not stopping.wait(1):
        pass  # the main thread waits here, and runs the signal handlers
    controller.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
