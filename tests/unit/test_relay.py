"""The mail relay: passes each email on whole, defers on demand, and never takes what its next hop did not."""

import smtplib
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from harness import config, relay, stack
from tests.unit.shortener_server import free_port


class Inbox:
    """The next hop: an SMTP server that keeps what it is given."""

    def __init__(self):
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.original_content))
        return "250 OK"


@pytest.fixture
def inbox():
    kept = Inbox()
    controller = Controller(kept, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield kept, f"127.0.0.1:{controller.port}"
    controller.stop()


@pytest.fixture
def relayed(inbox):
    """The relay in front of the inbox: (its handler, its port, the inbox)."""
    kept, next_hop = inbox
    handler = relay.Relay(next_hop)
    controller = relay.serve(f"127.0.0.1:{free_port()}", handler)
    yield handler, controller.port, kept
    controller.stop()


def _mail(port: int) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "alertmanager@shortener.example", "oncall@shortener.example", "x"
    message.set_content("ServiceDown firing")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.send_message(message)
    return message.as_bytes()


def test_it_passes_each_email_on_whole(relayed):
    handler, port, kept = relayed
    sent = _mail(port)
    [(sender, recipients, content)] = kept.messages
    assert (sender, recipients) == ("alertmanager@shortener.example", ["oncall@shortener.example"])
    assert content.replace(b"\r\n", b"\n") == sent.replace(b"\r\n", b"\n")
    assert handler.relayed == 1


def test_deferring_it_answers_451_to_every_recipient_and_takes_mail_again_once_told(relayed):
    handler, port, kept = relayed
    handler.defer()
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        _mail(port)
    assert refused.value.recipients == {"oncall@shortener.example": (451, relay.DEFERRED[4:].encode())}
    assert (kept.messages, handler.deferred) == ([], 1)

    handler.accept()
    _mail(port)
    assert len(kept.messages) == 1


def test_a_next_hop_that_is_down_gets_each_recipient_451_before_any_data():
    # At RCPT, not at the end of DATA: Alertmanager before 0.28 ignores the answer there
    # (prometheus/alertmanager#4005) and would count the page as sent.
    handler = relay.Relay(f"127.0.0.1:{free_port()}")  # nothing listens there
    controller = relay.serve(f"127.0.0.1:{free_port()}", handler)
    try:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            _mail(controller.port)
    finally:
        controller.stop()
    assert refused.value.recipients == {"oncall@shortener.example": (451, relay.NEXT_HOP_DOWN[4:].encode())}
    assert handler.relayed == 0


def test_a_next_hop_that_fails_after_the_recipients_gets_451_back_to_the_sender_who_keeps_the_message(relayed):
    handler, port, kept = relayed
    handler.next_hop = ("127.0.0.1", free_port())  # gone between the recipients and the data
    handler._ask = lambda sender, address: (250, b"OK")
    with pytest.raises(smtplib.SMTPDataError) as failed:
        _mail(port)
    assert failed.value.smtp_code == 451
    assert (kept.messages, handler.relayed) == ([], 0)


def test_alertmanager_mails_through_the_relay_and_the_switch_mails_the_sink_itself(tmp_path):
    running = stack.Stack(services=("mailsink", "relay", "deadman", "alertmanager"), workdir=tmp_path)
    running.images = {name: stack.images.Image("unused", "local") for name in running.services}
    relay_command = stack.SERVICES["relay"].container(running).command
    assert relay_command == [f"--listen={running.address('relay')}", f"--next-hop={running.address('smtp')}"]
    stack.SERVICES["alertmanager"].run(running, "alertmanager")
    rendered = config.load(tmp_path / "alertmanager" / "alertmanager.yml")
    assert rendered["global"]["smtp_smarthost"] == running.address("relay")
    assert f"--smtp={running.address('smtp')}" in stack.SERVICES["deadman"].container(running).command
