"""Bad input: the one family of errors a command answers with a single `error: ...` line instead of a traceback.

`DataError` (core.schema: a data file), `ConfigError` (core.config: a YAML file or a flag) and `ModelNotFoundError`
(core.models: a model name) derive from `BadInput`; a command's other exceptions are bugs and keep their traceback.
`exits_on_bad_input` is the one place that turns BadInput into the error line; `core.cli.dispatch` and
`core.config.run_cli` use it, and so do the few CLIs that run outside them (as a decorator on `main`).
"""
from __future__ import annotations

import sys
from contextlib import contextmanager

EXIT_CODE = 2  # like argparse's usage errors: the command was given something it cannot use


class BadInput(Exception):
    """Input a user gave (file, config, flag, model name) that the command cannot use; the message names the file,
    line and field, or the config key."""


class ModelNotFoundError(BadInput, FileNotFoundError):
    """A model name that is neither a registry name, nor a folder, nor (offline) a hub id in the local cache.
    The error line adds the config key or flag that holds `model` (see `note_config`)."""

    def __init__(self, model: str, message: str):
        super().__init__(message)
        self.model = model


# (where, value) for every string value of the config the running command built: "flag --backbone" or
# "field backbone in cfg.yaml". The code that loads a model does not know which key named it; this does.
_config_values: list[tuple[str, str]] = []


def note_config(values: list[tuple[str, str]]) -> None:
    """Called by core.config.build_config with the command's config, before the command runs."""
    _config_values[:] = values


def _with_key(err: BaseException) -> str:
    message = str(err)
    if isinstance(err, ModelNotFoundError):
        keys = [where for where, value in _config_values if err.model and err.model in value]
        if keys:  # "model 'x': why" -> "model 'x' (flag --backbone): why"
            message = message.replace(": ", f" ({', '.join(dict.fromkeys(keys))}): ", 1)
    return message


def error_line(err: BaseException) -> str:
    """`error: <message>` on one line (a message that spans lines is joined with '; ')."""
    parts = [part.strip() for part in _with_key(err).splitlines() if part.strip()]
    return "error: " + "; ".join(parts)


@contextmanager
def exits_on_bad_input():
    """Turn BadInput into one `error: ...` line on stderr and exit status 2; anything else propagates as is.
    Usable as a decorator (`@exits_on_bad_input()`). The SystemExit carries the line, so tests can match it."""
    try:
        yield
    except BadInput as err:
        raise bad_input_exit(err) from None


def bad_input_exit(err: BadInput) -> SystemExit:
    """Print the error line on stderr; returns the SystemExit (status 2) to raise, carrying the line."""
    line = error_line(err)
    print(line, file=sys.stderr, flush=True)
    exit_ = SystemExit(line)
    exit_.code = EXIT_CODE  # an int code: the interpreter exits with it and prints nothing more
    return exit_
