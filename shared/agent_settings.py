"""The edge agent's declared settings, and which of them central may set through the downlink.

Both deployables need this table: the agent loads its configuration from it
(:mod:`edge_agent.config`), and central checks a ``settings`` document against it before publishing
(``central-server downlink set``), so that HQ hears at once of what every store's agent would
otherwise only log as "not applied". :func:`central_setting_problem` is that one rule: a setting
that stays on the store PC (:data:`LOCAL_ONLY`: the agent's data, its trust anchors, its central URL,
who on the shop network sees the cashier panel), a name the agent does not know, or a value of the
wrong type or out of range is refused, with the reason. (The agent further ignores a setting whose
environment variable is set on the PC: a technician's override wins on site, which central cannot
know.)
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.settings import PATH, PATH_OR_NAME, PATH_OR_URL, ConfigError, load, setting, specs, suggest

ENV_PREFIX = "EDGE_"
LOCAL_ONLY = frozenset(
    {
        "agent.data_dir",
        "capture.staging_dir",
        "pos.port",
        "panel.host",  # who on the shop network may see the panel: decided at the PC, not from HQ
        "panel.screen_address",
        "sync.central_url",
        "sync.ca_file",
        "sync.tls_fingerprint",
    }
)
LOCAL_ONLY_REASON = "set on the store PC only; central may not change it"

# Why the agent does not apply a setting central sent, as a code: what leaves the PC (its heartbeat,
# status.json, central's fleet view) names the setting and one of these, never the value sent.
LOCAL_ONLY_CODE = "local_only"  # LOCAL_ONLY: decided at the PC
UNKNOWN_SETTING = "unknown_setting"  # a name the agent does not know (a typo, or a setting of another release)
INVALID_VALUE = "invalid_value"  # the wrong type, or out of range
SET_ON_PC = "set_on_pc"  # its environment variable is set on the PC, and the technician's value wins
IGNORED_REASONS = (LOCAL_ONLY_CODE, UNKNOWN_SETTING, INVALID_VALUE, SET_ON_PC)
MAX_IGNORED_REPORTED = 32
UNNAMED_SETTING = "(not a setting name)"
_SETTING_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+\Z")


def _text_encoding(name: str) -> None:
    """``pos.encoding``: ``auto`` or a codec Python decodes bytes to text with."""
    if name == "auto":
        return
    try:
        codecs.lookup(name)
        b"x".decode(name, "replace")  # refuses the codecs that are not text encodings too (base64, rot13)
    except LookupError:
        raise ValueError(f"{name!r} is not a text encoding Python knows (auto, utf-8, gb18030, gbk, big5...)") from None


@dataclass(frozen=True)
class AgentConfig:
    """Every setting of the edge agent; the README's configuration reference lists each one."""

    agent_data_dir: Path = setting(
        "agent.data_dir",
        Path("/var/lib/edge-agent"),
        "Directory for the outbox database, its key, the device credentials and the capture journal.",
    )
    agent_log_level: str = setting(
        "agent.log_level", "info", "Log level.", choices=("debug", "info", "warning", "error")
    )
    agent_heartbeat_interval: float = setting(
        "agent.heartbeat_interval",
        60.0,
        "Seconds between `agent.heartbeat` events that tell central the agent is alive.",
        minimum=1,
        maximum=86400,
    )
    pos_port: str = setting(
        "pos.port",
        "",
        "pyserial URL of the POS output: `/dev/ttyUSB0`, a pty path, `socket://host:port`, `loop://`.",
        required=True,
        path=PATH_OR_URL,
    )
    pos_baudrate: int = setting("pos.baudrate", 9600, "Serial speed in baud.", minimum=50, maximum=4_000_000)
    pos_mode: str = setting(
        "pos.mode",
        "line",
        "How the POS stream is read: `line` is one JSON or key=value record per line; `escpos` is the byte "
        "stream a POS sends its receipt printer, split into receipts and read by the receipt profiles.",
        choices=("line", "escpos"),
    )
    pos_profile: str = setting(
        "pos.profile",
        "",
        "In `escpos` mode, the receipt profile to read receipts with (a built-in name such as `cn-supermarket`, "
        "or one from pos.profiles_dir); empty tries every profile, highest priority first.",
    )
    pos_profiles_dir: str = setting(
        "pos.profiles_dir",
        "",
        "A TOML receipt profile, or a folder of them, added to the built-in ones (one of the same name "
        "replaces the built-in); check it with `edge-agent parse CAPTURE --profiles PATH` first.",
        path=PATH,
    )
    pos_idle_gap: float = setting(
        "pos.idle_gap",
        2.0,
        "In `escpos` mode, seconds without a byte from the port that end the receipt in progress "
        "(for tills that print neither a cut nor a reset).",
        minimum=0.1,
        maximum=3600,
    )
    pos_max_receipt_pause: float = setting(
        "pos.max_receipt_pause",
        600.0,
        "In `escpos` mode, for a till that ends its receipts with a cut: seconds of quiet after which a receipt "
        "held open across a pause (a card terminal waiting for a PIN) ends without its cut; it is quarantined "
        "as `receipt_pause_too_long`, and `edge-agent reparse` joins it with the rest of it.",
        minimum=1,
        maximum=86400,
    )
    pos_max_receipt_bytes: int = setting(
        "pos.max_receipt_bytes",
        1024 * 1024,
        "In `escpos` mode, printer bytes one receipt may span (a 2,600-item receipt is about 250 KB); a longer "
        "one is cut into pieces this size, each quarantined as `receipt_too_large` with its printer bytes, "
        "never read as a sale: raise it and run `edge-agent reparse` to read them as one.",
        minimum=4096,
        maximum=64 * 1024 * 1024,
    )
    pos_kanji: str = setting(
        "pos.kanji",
        "auto",
        "In `escpos` mode, the printer's Chinese double-byte mode after a reset: `on` (Chinese models), "
        "`off` (Epson), `auto` (decided per receipt: Chinese unless the receipt cancels it with `FS .`, or "
        "chose a code page with `ESC t` and its text is not GB18030; see docs/decisions/0084).",
        choices=("auto", "on", "off"),
    )
    pos_encoding: str = setting(
        "pos.encoding",
        "auto",
        "Text encoding of POS lines: `auto` tries UTF-8 then GB18030; or any Python codec name.",
        check=_text_encoding,
    )
    pos_max_line_bytes: int = setting(
        "pos.max_line_bytes",
        65536,
        "A line longer than this is quarantined as `line_too_long` and skipped up to the next newline.",
        minimum=64,
        maximum=16_777_216,
    )
    pos_reconnect_max_delay: float = setting(
        "pos.reconnect_max_delay",
        30.0,
        "Longest wait, in seconds, between attempts to reopen a port that failed or was unplugged.",
        minimum=0.1,
        maximum=3600,
    )
    till_register: str = setting(
        "till.register",
        "1",
        "This till's register id as the store numbers them (款台/机号); sent with every scan.",
    )
    scanner_port: str = setting(
        "scanner.port",
        "",
        "pyserial URL of a serial or USB-CDC barcode scanner (`/dev/ttyACM0`); empty: none.",
        path=PATH_OR_URL,
    )
    scanner_baudrate: int = setting(
        "scanner.baudrate", 9600, "Serial speed of the scanner in baud.", minimum=50, maximum=4_000_000
    )
    scanner_evdev_device: str = setting(
        "scanner.evdev_device",
        "",
        "Input device of a keyboard-wedge scanner (`/dev/input/by-id/usb-...-event-kbd`); empty: none.",
        path=PATH,
    )
    scanner_keyboard_layout: str = setting(
        "scanner.keyboard_layout",
        "us",
        "Keyboard layout the wedge scanner types in (set on the scanner itself).",
        choices=("us", "de", "fr"),
    )
    scanner_grab: bool = setting(
        "scanner.grab",
        False,
        "Take the wedge scanner's input device exclusively, so scans do not also type into the focused window.",
    )
    scanner_idle_flush: float = setting(
        "scanner.idle_flush",
        0.3,
        "Seconds of silence after which a wedge scanner's keys so far count as one scan (for scanners set to "
        "send no Enter).",
        minimum=0.05,
        maximum=10,
    )
    panel_port: int = setting(
        "panel.port",
        0,
        "TCP port of the cashier panel, a page showing each scan as it happens (`http://127.0.0.1:PORT/`); 0: off.",
        minimum=0,
        maximum=65535,
    )
    panel_card_seconds: float = setting(
        "panel.card_seconds",
        120.0,
        "Seconds the cashier panel shows a scan (a member's masked name, phone and coupons) before it goes back "
        "to waiting; a page opened later gets the last scan only within this time.",
        minimum=5,
        maximum=3600,
    )
    panel_host: str = setting(
        "panel.host",
        "127.0.0.1",
        "Address the cashier panel listens on: a loopback address, unless panel.screen_address names another PC "
        "that shows the panel (then this PC's address on that network, or `0.0.0.0`).",
    )
    panel_screen_address: str = setting(
        "panel.screen_address",
        "",
        "IP address of another PC whose browser shows the cashier panel; the panel then answers that PC and this "
        "one, no other. Empty: this PC only. The scans (masked names, phones, coupons) cross the network "
        "unencrypted: use a cable or VLAN the shop's guests cannot reach.",
    )
    capture_fsync: bool = setting(
        "capture.fsync",
        True,
        "fsync the capture journal after each read, so a power cut loses no bytes already read.",
    )
    capture_max_unjournaled_bytes: int = setting(
        "capture.max_unjournaled_bytes",
        8 * 1024 * 1024,
        "While the disk refuses journal writes, bytes read from the port are held in memory up to this; "
        "past it, input is dropped, counted and reported to central as an `agent.gap`.",
        minimum=4096,
        maximum=1024**3,
    )
    capture_staging_dir: str = setting(
        "capture.staging_dir",
        "",
        "RAM-backed directory where bytes just read wait for the journal, so a kill cannot lose them; "
        "empty means $RUNTIME_DIRECTORY (systemd RuntimeDirectory=), else /dev/shm. It must exist and be "
        "writable: the agent creates none.",
        path=PATH,
    )
    outbox_commit_interval: float = setting(
        "outbox.commit_interval",
        0.2,
        "The writer groups events into one commit for at most this many seconds.",
        minimum=0.0,
        maximum=10,
    )
    outbox_max_group: int = setting(
        "outbox.max_group", 2000, "Most events committed in one transaction.", minimum=1, maximum=100_000
    )
    outbox_keep_delivered_hours: float = setting(
        "outbox.keep_delivered_hours",
        72.0,
        "Hours to keep events central acknowledged, for resync after central restores a backup.",
        minimum=0,
        maximum=8760,
    )
    outbox_max_bytes: int = setting(
        "outbox.max_bytes",
        1024**3,
        "Byte quota of the outbox's rows; past it, delivered rows, then presence data, then heartbeats "
        "are let go, oldest first. Sales, scans and identity events are never shed.",
        minimum=1024 * 1024,
        maximum=1024**4,
    )
    outbox_max_age_hours: float = setting(
        "outbox.max_age_hours",
        168.0,
        "Presence data and heartbeats still unsent after this many hours are shed (and reported as a gap).",
        minimum=1,
        maximum=24 * 365,
    )
    outbox_reserve_bytes: int = setting(
        "outbox.reserve_bytes",
        8 * 1024 * 1024,
        "Size of the reserve file kept in agent.data_dir and deleted when the disk fills, so sales already "
        "read can still be committed; re-created when space returns. 0 turns it off.",
        minimum=0,
        maximum=1024**3,
    )
    quarantine_max_rows: int = setting(
        "quarantine.max_rows",
        10000,
        "Most quarantined inputs kept; the oldest beyond this are purged (and counted).",
        minimum=100,
        maximum=10_000_000,
    )
    quarantine_max_age_days: float = setting(
        "quarantine.max_age_days",
        30.0,
        "Quarantined inputs older than this many days are purged.",
        minimum=1,
        maximum=3650,
    )
    sync_interval: float = setting(
        "sync.interval", 2.0, "Seconds between sync runs; each run drains the backlog.", minimum=0.05, maximum=3600
    )
    sync_batch_size: int = setting(
        "sync.batch_size",
        2000,
        "Most events in one batch sent to central (central accepts at most 5000 by default); sync.batch_bytes"
        " also bounds each batch.",
        minimum=1,
        maximum=5000,
    )
    sync_batch_bytes: int = setting(
        "sync.batch_bytes",
        1_048_576,
        "Most bytes of event JSON in one batch, before compression; a single larger event goes alone.",
        minimum=4096,
        maximum=33_554_432,
    )
    sync_connect_timeout: float = setting(
        "sync.connect_timeout",
        5.0,
        "Seconds to wait for a connection to central (TCP and TLS handshake).",
        minimum=0.1,
        maximum=120,
    )
    sync_timeout: float = setting(
        "sync.timeout",
        30.0,
        "Seconds to wait for central's answer to one batch once connected.",
        minimum=0.1,
        maximum=600,
    )
    sync_min_backoff: float = setting(
        "sync.min_backoff",
        1.0,
        "Wait ceiling, in seconds, after a first failure; it doubles per failure up to sync.max_backoff.",
        minimum=0.01,
        maximum=600,
    )
    sync_max_backoff: float = setting(
        "sync.max_backoff",
        300.0,
        "Longest wait, in seconds, between attempts while central is unreachable or failing "
        "(each wait is drawn at random below the current ceiling).",
        minimum=0.1,
        maximum=3600,
    )
    sync_central_url: str = setting(
        "sync.central_url",
        "",
        "Central's base URL; empty means the URL the agent was enrolled against.",
    )
    sync_ca_file: str = setting(
        "sync.ca_file", "", "CA bundle for central's TLS certificate; empty means the system's.", path=PATH
    )
    sync_tls_fingerprint: str = setting(
        "sync.tls_fingerprint",
        "",
        "SHA-256 fingerprint of central's certificate (hex, colons allowed); when set, only that "
        "certificate is accepted, whoever signed it.",
    )
    health_interval: float = setting(
        "health.interval",
        10.0,
        "Seconds between updates of status.json in the data directory (and systemd watchdog checks).",
        minimum=0.5,
        maximum=300,
    )
    health_stall_minutes: float = setting(
        "health.stall_minutes",
        15.0,
        "The agent reports itself degraded when it has events waiting and none delivered for this long.",
        minimum=0.1,
        maximum=1440,
    )
    health_summary_interval: float = setting(
        "health.summary_interval",
        60.0,
        "Seconds between one-line summaries in the log (captured, delivered, backlog, last error).",
        minimum=1,
        maximum=86400,
    )
    presence_wifi: str = setting(
        "presence.wifi",
        "",
        "Wi-Fi probe requests: a monitor-mode interface (`wlan1mon`, raw socket, needs CAP_NET_RAW), or the path of "
        "a pcap/pcapng file or FIFO written by a capture tool, with a `/` (`./floor.pcapng` for one beside the "
        "settings file); empty turns Wi-Fi presence off.",
        path=PATH_OR_NAME,
    )
    presence_ble_adapter: str = setting(
        "presence.ble_adapter", "", "Bluetooth adapter to scan for BLE presence (`hci0`); empty turns BLE presence off."
    )
    presence_ble_scanning: str = setting(
        "presence.ble_scanning",
        "passive",
        "BLE scanning mode; `passive` falls back to `active` where BlueZ cannot scan passively.",
        choices=("passive", "active"),
    )
    presence_ble_watchdog: float = setting(
        "presence.ble_watchdog",
        60.0,
        "Seconds without any BLE advertisement after which the scanner is restarted (BlueZ can stall silently).",
        minimum=5,
        maximum=3600,
    )
    presence_reader: str = setting(
        "presence.reader",
        "reader",
        "Name of this PC's radios as a presence anchor (a pcapng naming its interfaces uses those names instead).",
    )
    presence_zones: str = setting(
        "presence.zones",
        "",
        "Zone of each anchor, as `anchor=zone` pairs separated by commas (`entrance=entrance, aisles=aisles`); "
        "an anchor not listed is in zone `store`.",
    )
    presence_timezone: str = setting(
        "presence.timezone",
        "",
        "IANA time zone of the store (`Asia/Shanghai`) for local days (pseudonym salts) and hours; "
        "empty means the PC's own.",
    )
    presence_enter_dbm: float = setting(
        "presence.enter_dbm", -70.0, "Signal at which a device counts as inside the store.", minimum=-120, maximum=0
    )
    presence_exit_dbm: float = setting(
        "presence.exit_dbm",
        -78.0,
        "Signal under which an inside device starts leaving (at most presence.enter_dbm).",
        minimum=-120,
        maximum=0,
    )
    presence_floor_dbm: float = setting(
        "presence.floor_dbm",
        -90.0,
        "Weaker readings are ignored (the far street, another floor).",
        minimum=-127,
        maximum=0,
    )
    presence_min_dwell: float = setting(
        "presence.min_dwell", 120.0, "Seconds inside that make a device a visitor.", minimum=1, maximum=7200
    )
    presence_exit_after: float = setting(
        "presence.exit_after",
        60.0,
        "Seconds weak or unheard after which a visit ends (at its last moment heard inside).",
        minimum=5,
        maximum=3600,
    )
    presence_tick_interval: float = setting(
        "presence.tick_interval",
        5.0,
        "Seconds between presence housekeeping runs (visits ended, hours emitted) while nothing is heard.",
        minimum=0.1,
        maximum=300,
    )

    @property
    def outbox_path(self) -> Path:
        return self.agent_data_dir / "outbox.db"

    @property
    def key_path(self) -> Path:
        return self.agent_data_dir / "outbox.key"

    @property
    def credentials_path(self) -> Path:
        return self.agent_data_dir / "credentials.json"

    @property
    def journal_dir(self) -> Path:
        return self.agent_data_dir / "journal"

    @property
    def status_path(self) -> Path:
        return self.agent_data_dir / "status.json"

    @property
    def presence_secret_path(self) -> Path:
        return self.agent_data_dir / "presence.secret"


def central_setting_refusal(key: str, value: Any) -> tuple[str, str] | None:
    """Why the agent will not take ``value`` for setting ``key`` from central, as (reason code, words);
    None if it will. The words may quote the value; the code never does."""
    if key in LOCAL_ONLY:
        return LOCAL_ONLY_CODE, LOCAL_ONLY_REASON
    names = [spec.name for spec in specs(AgentConfig)]
    if key not in names:
        return UNKNOWN_SETTING, "unknown setting" + suggest(key, names)
    try:
        # Loaded as the agent loads central's overrides: text is read as an environment value ("5" is 5).
        load(AgentConfig, path=None, env_prefix=ENV_PREFIX, environ={}, overrides={key: value}, check_required=False)
    except ConfigError as exc:
        return INVALID_VALUE, exc.problem
    return None


def central_setting_problem(key: str, value: Any) -> str | None:
    """Why the agent will not take ``value`` for setting ``key`` from central, in words; None if it will."""
    refusal = central_setting_refusal(key, value)
    return None if refusal is None else refusal[1]


def ignored_settings_report(codes: Mapping[str, str]) -> dict[str, str]:
    """Settings the agent ignores as reported beyond the PC: ``{setting name: reason code}``.

    Bounded for a heartbeat (at most :data:`MAX_IGNORED_REPORTED`, by name) and for privacy: a name
    that is not shaped like a setting (a document written by hand may hold anything) is reported as
    :data:`UNNAMED_SETTING`, and a reason that is not one of :data:`IGNORED_REASONS` as ``invalid_value``.
    Central reads its devices' reports with the same function.
    """
    report: dict[str, str] = {}
    for name, code in sorted(codes.items()):
        shown = name if isinstance(name, str) and len(name) <= 64 and _SETTING_NAME.match(name) else UNNAMED_SETTING
        if shown in report:
            continue
        if len(report) == MAX_IGNORED_REPORTED:
            break
        report[shown] = code if code in IGNORED_REASONS else INVALID_VALUE
    return report


def settings_document_problems(document: Mapping[str, Any]) -> dict[str, str]:
    """Each setting of a ``settings`` document the agent would not apply, with why (empty: it applies all)."""
    return {key: problem for key, value in document.items() if (problem := central_setting_problem(key, value))}
