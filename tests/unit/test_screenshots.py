"""The incident docs' screenshots: every picture `make screenshots` writes is described, every committed one linked."""

import re

from harness import config, screenshots

DOCS = config.ROOT / "docs" / "incident-response" / "README.md"


def test_every_picture_the_command_writes_is_described_in_the_incident_docs():
    named = set(re.findall(r"([\w-]+)\.png", DOCS.read_text()))
    written = {*screenshots.FROM_DRILL.values(), *screenshots.STILLS, screenshots.REPORT}
    assert written <= named, f"pictures the docs never mention: {sorted(written - named)}"


def test_every_committed_picture_is_linked_from_the_incident_docs():
    linked = set(re.findall(r"\]\(screenshots/([\w-]+\.png)\)", DOCS.read_text()))
    committed = {path.name for path in screenshots.DOCS.glob("*.png")}
    assert committed, "no screenshot committed: `make screenshots` writes them"
    assert committed == linked, f"committed but not linked: {sorted(committed - linked)}; linked but missing: " \
                                f"{sorted(linked - committed)}"
