"""``trimodal`` command line: one sub-command per verb, each in its own module.

``main(argv)`` is callable in-process (tests use it) and returns the exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from trimodal import __version__
from trimodal.cli import classify as classify_cli
from trimodal.cli import data as data_cli
from trimodal.cli import demo as demo_cli
from trimodal.cli import digits as digits_cli
from trimodal.cli import generate as generate_cli
from trimodal.cli import home as home_cli
from trimodal.cli import imagine as imagine_cli
from trimodal.cli import llava as llava_cli
from trimodal.cli import serve as serve_cli
from trimodal.cli import train as train_cli
from trimodal.cli import use as use_cli
from trimodal.cli import world as world_cli


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every verb registered."""
    parser = argparse.ArgumentParser(prog="trimodal", description=__doc__)
    parser.add_argument("--version", action="version", version=f"trimodal {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    world_cli.register(verbs)
    data_cli.register(verbs)
    train_cli.register(verbs)
    use_cli.register(verbs)
    demo_cli.register(verbs)
    digits_cli.register(verbs)
    generate_cli.register(verbs)
    serve_cli.register(verbs)
    classify_cli.register(verbs)
    home_cli.register(verbs)
    imagine_cli.register(verbs)
    llava_cli.register(verbs)
    return parser


def describe_os_error(error: OSError) -> str:
    """One line: what the system said and about which file."""
    if error.strerror and error.filename:
        return f"{error.strerror}: {error.filename}"
    return str(error) or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen verb. Returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except (ValueError, FileNotFoundError, FileExistsError, UserError) as error:
        print(f"trimodal {args.verb}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the machine refused: disk full, read-only, permissions, ...
        print(f"trimodal {args.verb}: error: {describe_os_error(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
