"""`python -m <stage> <command> ...`: each command is a module with `main(argv)`, imported only when used.
Bad input (core.errors.BadInput) from any command ends here in one `error: ...` line and exit status 2."""
from __future__ import annotations

import importlib
import sys

from core.errors import exits_on_bad_input


def dispatch(prog: str, commands: dict[str, tuple[str, str]], argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in commands:
        width = max(map(len, commands))
        lines = [f"usage: python -m {prog} COMMAND [--help]", "", "commands:"]
        lines += [f"  {name:<{width}}  {text}" for name, (_, text) in commands.items()]
        print("\n".join(lines))
        if argv and argv[0] not in {"-h", "--help"}:
            raise SystemExit(f"\nunknown command {argv[0]!r}")
        raise SystemExit(0 if argv else 2)
    from core.models import set_offline

    set_offline()
    module = importlib.import_module(commands[argv[0]][0])
    with exits_on_bad_input():
        module.main(argv[1:])
