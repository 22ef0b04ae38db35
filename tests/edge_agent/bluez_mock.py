"""A mocked BlueZ on a private D-Bus: python-dbusmock's ``bluez5`` template, driven over D-Bus.

The bus is a fresh ``dbus-daemon``; the mock is ``python3 -m dbusmock --system --template bluez5``
run by the system Python (Debian's python3-dbusmock, installed by ``./dev``) or by ours when the
PyPI package is there. bleak finds it through ``DBUS_SYSTEM_BUS_ADDRESS``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

MOCK = "org.bluez.Mock"
DBUSMOCK = "org.freedesktop.DBus.Mock"


def mock_python() -> str | None:
    """A Python that can run ``-m dbusmock`` (it needs dbus-python), or None."""
    for candidate in (sys.executable, "/usr/bin/python3"):
        if Path(candidate).exists():
            check = subprocess.run([candidate, "-c", "import dbusmock, dbus"], capture_output=True, check=False)
            if check.returncode == 0:
                return candidate
    return None


def missing() -> str | None:
    """What is missing to run the mock, or None."""
    if shutil.which("dbus-daemon") is None:
        return "dbus-daemon is not installed (Debian package dbus-daemon; ./dev installs it)"
    if mock_python() is None:
        return "python-dbusmock is not installed (Debian python3-dbusmock; ./dev installs it)"
    return None


class MockBluez:
    """A private bus with the bluez5 mock on it; use as a context manager."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.address = ""
        self._daemon: subprocess.Popen[bytes] | None = None
        self._mock: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MockBluez:
        config = self.tmp / "bus.conf"
        config.write_text(
            "<!DOCTYPE busconfig PUBLIC '-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN'"
            " 'http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd'>\n"
            f"<busconfig><type>system</type><listen>unix:path={self.tmp / 'bus'}</listen>"
            "<auth>EXTERNAL</auth><policy context='default'><allow send_destination='*' eavesdrop='true'/>"
            "<allow eavesdrop='true'/><allow own='*'/><allow user='*'/></policy></busconfig>\n"
        )
        self._daemon = subprocess.Popen(
            ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self._daemon.stdout is not None
        self.address = self._daemon.stdout.readline().decode().strip()
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.address}
        python = mock_python()
        assert python is not None
        self._mock = subprocess.Popen(
            [python, "-m", "dbusmock", "--system", "--template", "bluez5"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.wait_for_name()
        return self

    def wait_for_name(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            reply = self._run(
                Message(
                    destination="org.freedesktop.DBus",
                    path="/org/freedesktop/DBus",
                    interface="org.freedesktop.DBus",
                    member="NameHasOwner",
                    signature="s",
                    body=["org.bluez"],
                )
            )
            if reply.body and reply.body[0]:
                return
            time.sleep(0.1)
        raise RuntimeError("the bluez5 mock did not come up on the private bus")

    def __exit__(self, *exc: object) -> None:
        for proc in (self._mock, self._daemon):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self._daemon is not None and self._daemon.stdout is not None:
            self._daemon.stdout.close()

    def _run(self, message: Message) -> Message:
        async def go() -> Message:
            bus = await MessageBus(bus_address=self.address, bus_type=BusType.SYSTEM).connect()
            try:
                return await bus.call(message)  # type: ignore[no-any-return]
            finally:
                bus.disconnect()

        return asyncio.run(go())

    def call(self, path: str, interface: str, member: str, signature: str, body: list[Any]) -> list[Any]:
        """Call a method of the mock; raise RuntimeError with D-Bus's error."""
        reply = self._run(
            Message(
                destination="org.bluez", path=path, interface=interface, member=member, signature=signature, body=body
            )
        )
        if reply.message_type == MessageType.ERROR:
            raise RuntimeError(f"{reply.error_name}: {reply.body}")
        return list(reply.body)

    def add_adapter(self, name: str = "hci0") -> None:
        self.call("/", MOCK, "AddAdapter", "ss", [name, "store-pc"])

    def remove_adapter(self, name: str = "hci0") -> None:
        self.call("/", MOCK, "RemoveAdapterWithDevices", "s", [name])

    def add_device(self, address: str, name: str, adapter: str = "hci0", address_type: str = "public") -> str:
        """Add a device object and announce it (InterfacesAdded), as BlueZ does for a new advertiser.

        Added with the mock's own AddObject rather than the template's AddDevice, whose
        ManufacturerData and ServiceData have the wrong D-Bus types in older python-dbusmock releases.
        """
        path = f"/org/bluez/{adapter}/dev_{address.replace(':', '_').upper()}"
        props = {
            "Address": Variant("s", address),
            "AddressType": Variant("s", address_type),
            "Name": Variant("s", name),
            "Alias": Variant("s", name),
            "Adapter": Variant("o", f"/org/bluez/{adapter}"),
            "Paired": Variant("b", False),
            "Connected": Variant("b", False),
            "Trusted": Variant("b", False),
            "Blocked": Variant("b", False),
            "ServicesResolved": Variant("b", False),
            "UUIDs": Variant("as", []),
            "ManufacturerData": Variant("a{qv}", {}),
            "ServiceData": Variant("a{sv}", {}),
        }
        self.call("/", DBUSMOCK, "AddObject", "ssa{sv}a(ssss)", [path, "org.bluez.Device1", props, []])
        added = Variant("a{sa{sv}}", {"org.bluez.Device1": props})
        self.call(
            "/",
            DBUSMOCK,
            "EmitSignal",
            "sssav",
            ["org.freedesktop.DBus.ObjectManager", "InterfacesAdded", "oa{sa{sv}}", [Variant("o", path), added]],
        )
        return path

    def advertise(self, path: str, rssi: int, manufacturer: dict[int, bytes]) -> None:
        """Announce a new advertisement of a device: PropertiesChanged for RSSI and ManufacturerData."""
        changed = {
            "RSSI": Variant("n", rssi),
            "ManufacturerData": Variant("a{qv}", {k: Variant("ay", v) for k, v in manufacturer.items()}),
        }
        self.call(
            path,
            DBUSMOCK,
            "EmitSignal",
            "sssav",
            [
                "org.freedesktop.DBus.Properties",
                "PropertiesChanged",
                "sa{sv}as",
                [Variant("s", "org.bluez.Device1"), Variant("a{sv}", changed), Variant("as", [])],
            ],
        )
