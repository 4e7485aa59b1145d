"""A drill's camera: asking never waits, and a picture that cannot be taken says why instead of failing the drill."""

import time

from harness.chaos import camera
from harness.stack import Stack


def test_asking_returns_at_once_and_every_missing_picture_says_why(chromium):
    unstarted = Stack()  # no container runs: its pages cannot load
    try:
        shots = camera.Camera(unstarted, "service_down", camera.MAILED)
        asked = time.monotonic()
        shots.take("prometheus-alerts", 75.0, "ServiceDown")
        assert time.monotonic() - asked < 0.05, "the drill waited for the camera"
        taken = {shot["view"]: shot for shot in shots.close()}
    finally:
        unstarted.stop()
    assert taken["prometheus-alerts"]["asked_s"] == 75.0 and not taken["prometheus-alerts"]["file"]
    assert taken["prometheus-alerts"]["problem"].startswith("not taken: KeyError")  # no image chosen: never started
    assert taken["email-html"]["problem"] == "no picture: the alert's email never came"
    assert set(taken) == set(camera.MAILED)
