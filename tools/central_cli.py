"""``central-server COMMAND`` run in this process: ``central.cli.main`` with a child's view of the world.

A command started as a process costs about a second before it does anything (interpreter start,
imports); tests and tools that run many short commands (enroll tokens, list devices) call
``central.cli.main`` here instead, with what a child would have had: exactly ``env`` as the
environment, ``stdin`` as its input, its own stdout and stderr, and the root logger (which the
command configures for its process) put back afterwards. The result is a
``subprocess.CompletedProcess``, as ``subprocess.run(..., capture_output=True, text=True)`` gives.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from unittest import mock


@contextmanager
def _loggers_kept() -> Iterator[None]:
    root, alembic = logging.getLogger(), logging.getLogger("alembic")
    handlers, level, alembic_level = root.handlers[:], root.level, alembic.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        alembic.setLevel(alembic_level)


def run(argv: Sequence[str], env: Mapping[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``central-server *argv`` with environment ``env``; its exit status, stdout and stderr."""
    from central.cli import main

    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch.dict(os.environ, dict(env), clear=True),
        mock.patch.object(sys, "stdin", io.StringIO(stdin)),
        redirect_stdout(out),
        redirect_stderr(err),
        _loggers_kept(),
    ):
        try:
            status = main(list(argv))
        except SystemExit as exit_:  # argparse's usage errors, --help, --version
            status = 0 if exit_.code is None else exit_.code if isinstance(exit_.code, int) else 1
    return subprocess.CompletedProcess(["central-server", *argv], status, out.getvalue(), err.getvalue())
