"""The tests that failed, from pytest's JUnit files: the last lines of a CI log, whatever came before them."""

import sys
from pathlib import Path
from xml.etree import ElementTree

MESSAGE = 400  # characters of each failure's message


def failures(paths: list[str]) -> list[str]:
    lines = []
    for path in filter(Path.exists, map(Path, paths)):  # a run that failed before pytest wrote none
        for case in ElementTree.parse(path).iter("testcase"):
            for outcome in case:
                if outcome.tag in ("failure", "error"):
                    message = " ".join((outcome.get("message") or "").split())[:MESSAGE]
                    lines.append(f"{case.get('classname')}::{case.get('name')} ({outcome.tag}): {message}")
    return lines


if __name__ == "__main__":
    print("\n".join(failures(sys.argv[1:])) or "no failed test recorded: the failure came before or after the tests")
