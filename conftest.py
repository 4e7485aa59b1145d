"""The harness's fixtures and report for every test in the repository."""

pytest_plugins = ["harness.pytest_plugin"]
