"""The service's commands: `python -m shortener migrate` applies the schema changes (run before Gunicorn)."""

import argparse
import sys

from . import config, logs, migrations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shortener")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply pending schema migrations to DATABASE_URL, then exit")
    args = parser.parse_args(argv)
    logs.configure()
    if args.command == "migrate":
        migrations.migrate(config.load()["DATABASE_URL"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
