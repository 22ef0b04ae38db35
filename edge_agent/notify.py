"""Telling systemd how the agent is doing: the sd_notify protocol, spoken directly.

Under ``Type=notify`` systemd passes ``$NOTIFY_SOCKET``, a unix datagram socket (a path, or an
abstract name written with a leading ``@``); each datagram is newline-separated ``KEY=VALUE``
lines (sd_notify(3)). ``READY=1`` ends start-up, ``WATCHDOG=1`` must arrive at least every
``$WATCHDOG_USEC`` microseconds or systemd kills and restarts the service, ``STATUS=`` is what
`systemctl status` shows. Outside systemd there is no socket and every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends sd_notify datagrams to ``$NOTIFY_SOCKET``, if systemd gave one."""

    def __init__(self, environ: Mapping[str, str] | None = None, pid: int | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        # An abstract socket is named with a leading "@" in the variable and a NUL on the wire.
        self.address: str | None = ("\0" + address[1:] if address.startswith("@") else address) or None
        self.watchdog_interval = _watchdog_interval(environ, os.getpid() if pid is None else pid)
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send one datagram of ``KEY=VALUE`` fields; False if there is no socket or sending failed."""
        if self.address is None:
            return False
        message = "\n".join(fields).encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self.address)
        except OSError as exc:
            if not self._warned:  # once: a missing socket would otherwise log every few seconds
                log.warning("cannot notify systemd at %s: %s", self.address.replace("\0", "@"), exc.strerror)
                self._warned = True
            return False
        return True

    def ready(self, status: str = "") -> bool:
        """Start-up is over: systemd may start what depends on the agent."""
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self, status: str = "") -> bool:
        """The agent is making progress; systemd's watchdog timer starts again."""
        return self.notify("WATCHDOG=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        """A one-line status for `systemctl status`, without touching the watchdog."""
        return self.notify(f"STATUS={text}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")


def _watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds within which systemd expects WATCHDOG=1, or None if the watchdog is off or meant for another process."""
    usec = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and owner != str(pid):
        return None
    return int(usec) / 1_000_000
