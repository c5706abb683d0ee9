"""Command-line plumbing: argparse that errs in one line, and errors mapped to exit codes."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn

from protocol.errors import SyncError, TransportError, ValidationError
from service.accounts import Accounts
from service.db import DatabaseError

log = logging.getLogger(__name__)

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


class UsageError(Exception):
    """A wrong command line."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and an exception, not a print-and-exit."""

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing usage."""
        raise UsageError(f"{message} (see {self.prog} --help)")


def read_password(prompt: str = "Password: ") -> str:
    """A password from the terminal, or the first line of standard input."""
    if sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if getpass.getpass("Again: ") != first:
            raise ValidationError("the two passwords differ")
        return first
    line = sys.stdin.readline()
    if not line:
        raise ValidationError("no password on standard input")
    return line.rstrip("\r\n")


VALUE_OPTIONS = ("--token", "--name")


def _glue_values(argv: list[str]) -> list[str]:
    """`--token -abc` as `--token=-abc`: these options always take the next word as their value,
    even one that starts with a dash."""
    out: list[str] = []
    words = iter(argv)
    for word in words:
        if word in VALUE_OPTIONS:
            value = next(words, None)
            out.append(word if value is None else f"{word}={value}")
        else:
            out.append(word)
    return out


def run(prog: str, parser: Parser, handlers: Mapping[str, Callable[[Any], Any]],
        argv: list[str]) -> int:
    """Parse `argv`, run the chosen handler (sync or async) and map errors to exit codes."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        args = parser.parse_args(_glue_values(argv))
        key = getattr(args, "handler", None)
        if key is None:
            given = " ".join(a for a in argv if not a.startswith("-"))
            where = f"{prog} {given}".strip()
            raise UsageError(f"a command is required (see {where} --help)")
        result = handlers[key](args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result or 0)
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TransportError as exc:
        print(f"{prog}: error: {exc.message}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except SyncError as exc:
        print(f"{prog}: error: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, sqlite3.Error, DatabaseError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


async def add_account(open_accounts: Callable[[], Awaitable[Accounts]], username: str,
                      role: str) -> None:
    """Add (or reset) an account with a password read from the terminal or standard input."""
    password = read_password()
    accounts = await open_accounts()
    try:
        await accounts.add_user(username, password, role)
    finally:
        await accounts.conn.close()
