"""`python -m <stage> <command> ...`: each command is a module with `main(argv)`, imported only when used.
Bad input (core.errors.BadInput) from any command ends here in one `error: ...` line and exit status 2, and so
do argparse's own errors (an unknown flag, a missing value) through `ArgumentParser`."""
from __future__ import annotations

import argparse
import difflib
import importlib
import sys

from core.errors import BadInput, bad_input_exit, exits_on_bad_input


class UsageError(BadInput):
    """A command line argparse cannot parse: an unknown flag, a flag without its value, a missing required one."""


def _did_you_mean(word: str, choices) -> str:
    """'did you mean X?; ' for the nearest choice (flags compared without their dashes), or ''."""
    names = {choice.lstrip("-"): choice for choice in choices}
    close = difflib.get_close_matches(word.lstrip("-"), list(names), n=1)
    return f"did you mean {names[close[0]]}?; " if close else ""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, whose usage errors end like bad input: one `error: PROG: ...` line (with the nearest known flag for
    an unknown one) and exit status 2, instead of the usage block; `-h` still prints the usage."""

    def error(self, message: str):
        hint = ""
        if message.startswith("unrecognized arguments:"):
            unknown = next((word for word in message.split()[2:] if word.startswith("-")), "")
            hint = _did_you_mean(unknown.split("=")[0], self._option_string_actions)
        raise bad_input_exit(UsageError(f"{self.prog}: {message} ({hint}see {self.prog} --help)"))


def dispatch(prog: str, commands: dict[str, tuple[str, str]], argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        width = max(map(len, commands))
        lines = [f"usage: python -m {prog} COMMAND [--help]", "", "commands:"]
        lines += [f"  {name:<{width}}  {text}" for name, (_, text) in commands.items()]
        print("\n".join(lines))
        raise SystemExit(0 if argv else 2)
    if argv[0] not in commands:
        hint = _did_you_mean(argv[0], commands)
        raise bad_input_exit(UsageError(f"python -m {prog}: unknown command {argv[0]!r} ({hint}see python -m {prog} "
                                        "--help)"))
    from core.models import set_offline

    set_offline()
    module = importlib.import_module(commands[argv[0]][0])
    with exits_on_bad_input():
        module.main(argv[1:])
