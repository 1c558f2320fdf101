"""What an error of a ``ccalens`` command becomes: one line on stderr and an exit status (``--debug``: the traceback).

A user error (a bad file, argument or config value, a missing optional dependency) prints
``ccalens COMMAND: error: <what was wrong>`` and exits 2 (:data:`EXIT_USER_ERROR`); an interruption exits 130; anything
else is a bug: ``internal error: ...`` and exit 1. The commands and the parser are in :mod:`ccalens.cli`.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import install_hint

EXIT_USER_ERROR = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130
# OSErrors about a path the user gave or must fix (exit 2); other OSErrors (disk full, I/O error) exit 1
_USER_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.EROFS,
                errno.ENAMETOOLONG}


class UsageError(Exception):
    """A wrong command line (argparse's errors, and the commands' own argument checks); ``prog``: the command
    whose usage it is (``"ccalens compare"``), if known."""

    def __init__(self, message: str, prog: str | None = None) -> None:
        super().__init__(message)
        self.prog = prog


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _describe(exc: BaseException) -> tuple[str, int] | None:
    """``(one-line message, exit status)`` for an error the user must fix, None for anything else (a bug)."""
    if isinstance(exc, UsageError):
        return _one_line(str(exc)), EXIT_USER_ERROR
    if isinstance(exc, ModuleNotFoundError) and exc.name and install_hint(exc.name):
        return f"this needs {exc.name.partition('.')[0]}, which is not installed: {install_hint(exc.name)}", \
            EXIT_USER_ERROR
    if isinstance(exc, ImportError):
        # MissingDependencyError and the like already say what to install; other ImportErrors are bugs
        return (_one_line(str(exc)), EXIT_USER_ERROR) if "pip install" in str(exc) else None
    if isinstance(exc, OSError):
        status = EXIT_USER_ERROR if exc.errno in _USER_ERRNOS or exc.errno is None else EXIT_FAILURE
        if not (exc.strerror and exc.filename is not None):
            return _one_line(str(exc)) or type(exc).__name__, status  # ccalens' own FileNotFoundError("no such...")
        where = os.fspath(exc.filename)
        message = f"{exc.strerror}: {where}"
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and ".ccalens_cache" in Path(where).parts:
            message += (" (the SHL data folder is read-only: set [data] cache_dir in the config to a writable "
                        "folder for the spectrogram caches)")
        return message, status
    if type(exc) is KeyError:  # a bare KeyError: its str() is the quoted key only
        return f"missing key {exc.args[0]!r}" if exc.args else "missing key", EXIT_USER_ERROR
    if isinstance(exc, KeyError | ValueError | TypeError):
        # ccalens raises these for bad input with a message naming the file, key or argument
        return _one_line(str(exc)) or type(exc).__name__, EXIT_USER_ERROR
    return None


def _run_guarded(command: str, debug: bool, call: Callable[[], int]) -> int:
    prefix = f"ccalens {command}".rstrip()
    try:
        return int(call() or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prefix}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            raise
        described = _describe(exc)
        if described is None:
            print(f"{prefix}: internal error: {type(exc).__name__}: {_one_line(str(exc))} "
                  "(run again with --debug for the traceback, and please report it)", file=sys.stderr)
            return EXIT_FAILURE
        message, status = described
        print(f"{prefix}: error: {message}", file=sys.stderr)
        return status


def _split_debug(argv: list[str]) -> tuple[list[str], bool]:
    """Remove ``--debug`` from anywhere before a ``--``; also on with the environment variable CCALENS_DEBUG."""
    end = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:end]
    args = [a for a in argv[:end] if a != "--debug"] + argv[end:]
    return args, debug or os.environ.get("CCALENS_DEBUG", "") not in ("", "0")
