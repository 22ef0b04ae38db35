"""Central's declared settings: one table, loaded from TOML then ``CENTRAL_*`` environment variables.

A file such as ``/etc/central-server/central.toml``::

    [server]
    host = "0.0.0.0"
    port = 8000

    [database]
    url = "postgresql+psycopg://cdp@db.internal/cdp"
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from central.accounts.roles import ROLES
from central.config_tags import TagSettings
from shared.settings import PATH, setting

MIB = 1024 * 1024


def _known_roles(value: str) -> None:
    unknown = [part.strip() for part in value.split(",") if part.strip() and part.strip() not in ROLES]
    if unknown:
        raise ValueError(f"unknown role {unknown[0]!r}; roles are {', '.join(ROLES)}")


@dataclass(frozen=True)
class _BeforeTags:
    """The settings listed before the tags' (server to customers)."""

    server_host: str = setting("server.host", "127.0.0.1", "Address the HTTP server listens on.")
    server_port: int = setting("server.port", 8000, "TCP port the HTTP server listens on.", minimum=1, maximum=65535)
    server_threads: int = setting("server.threads", 8, "Worker threads serving requests.", minimum=1, maximum=256)
    server_trusted_proxy: str = setting(
        "server.trusted_proxy",
        "",
        "IP address of the reverse proxy in front of central (127.0.0.1 for nginx on the same machine): requests"
        " from it come from the client its X-Forwarded-For names, for login throttling, sessions and the audit"
        " log. Empty: no proxy is trusted and X-Forwarded-* headers are ignored.",
    )
    server_access_log: bool = setting(
        "server.access_log",
        True,
        "Log one line per request (logger central.access): client, device, source or console user, method,"
        " path, query parameter names (never their values), status, bytes and milliseconds.",
    )
    server_data_dir: Path = setting(
        "server.data_dir",
        Path("/var/lib/central-server"),
        "Directory for the SQLite database file and secret.key, the key central signs with"
        " (the same file on every instance).",
    )
    database_url: str = setting(
        "database.url",
        "",
        "SQLAlchemy URL of the database (a SQLite file by its absolute path: `sqlite:////srv/cdp/central.db`);"
        " empty means a SQLite file in server.data_dir.",
        env_aliases=("DATABASE_URL",),
    )
    database_auto_migrate: bool = setting(
        "database.auto_migrate", True, "Run database migrations when the server starts."
    )
    ingest_max_body_bytes: int = setting(
        "ingest.max_body_bytes",
        8 * MIB,
        "Largest accepted batch request body, as sent (compressed).",
        minimum=1,
        maximum=1024**3,
    )
    ingest_max_decompressed_bytes: int = setting(
        "ingest.max_decompressed_bytes", 16 * MIB, "Largest batch body after gunzip.", minimum=1, maximum=1024**3
    )
    ingest_max_events: int = setting(
        "ingest.max_events", 5000, "Most events accepted in one batch.", minimum=1, maximum=100_000
    )
    ingest_max_event_bytes: int = setting(
        "ingest.max_event_bytes",
        4 * 1024 * 1024,
        "Largest event payload, in bytes of compact JSON, unknown fields included; a bigger one is rejected.",
        minimum=1024,
        maximum=16 * 1024**2,
    )
    ingest_decode_budget_bytes: int = setting(
        "ingest.decode_budget_bytes",
        48 * MIB,
        "Bytes of inflated gzip bodies (agents' batches, sources' events, member uploads) that all requests "
        "together may hold while they are decoded; a body that would exceed it is answered 503 with Retry-After.",
        minimum=1,
        maximum=4 * 1024**3,
    )
    sources_max_ahead_minutes: float = setting(
        "sources.max_ahead_minutes",
        60.0,
        "How far past central's clock an online source's or a backfill's event may be dated; a later one is"
        " rejected as observed_at_in_future (agents' events are kept: their clocks are reported instead).",
        minimum=0.0,
        maximum=7 * 24 * 60,
    )
    auth_max_clock_skew: float = setting(
        "auth.max_clock_skew",
        300.0,
        "Seconds a signed request's timestamp may differ from central's clock; nonces are kept twice as long.",
        minimum=1.0,
        maximum=3600,
    )
    fleet_offline_after: float = setting(
        "fleet.offline_after",
        300.0,
        "Seconds without a heartbeat after which the fleet view shows a device as offline.",
        minimum=1.0,
        maximum=86400,
    )
    enroll_token_ttl_hours: float = setting(
        "enroll.token_ttl_hours",
        24.0,
        "How long a new enrollment token stays valid, in hours.",
        minimum=0.01,
        maximum=24 * 30,
    )
    console_session_hours: float = setting(
        "console.session_hours",
        12.0,
        "Absolute lifetime of a console login, in hours, however active it is.",
        minimum=0.01,
        maximum=24,
    )
    console_idle_minutes: float = setting(
        "console.idle_minutes",
        30.0,
        "Minutes without a request after which a console session ends.",
        minimum=1.0,
        maximum=24 * 60,
    )
    console_secure_cookie: bool = setting(
        "console.secure_cookie",
        True,
        "Send the session cookie as __Host- with Secure (HTTPS only); false only for a plain-HTTP demo.",
    )
    console_login_failures_per_account: int = setting(
        "console.login_failures_per_account",
        5,
        "Failed logins for one username within console.login_window_minutes before it is refused.",
        minimum=1,
        maximum=1000,
    )
    console_login_failures_per_address: int = setting(
        "console.login_failures_per_address",
        30,
        "Failed logins from one client address within console.login_window_minutes before it is refused.",
        minimum=1,
        maximum=100_000,
    )
    console_login_window_minutes: float = setting(
        "console.login_window_minutes",
        15.0,
        "Window, from the first failure, in which failed logins are counted and after which a refusal lifts.",
        minimum=1.0,
        maximum=24 * 60,
    )
    console_two_step_roles: str = setting(
        "console.two_step_roles",
        "admin",
        "Roles, comma-separated, whose users must give a one-time code from an authenticator app after the"
        " password (two-step sign-in); one who has not set it up is led to set it up at the next login and can"
        " do nothing else until then. Empty: required of no one (anyone may still turn it on).",
        check=_known_roles,
    )
    identity_registry_file: str = setting(
        "identity.registry_file",
        "",
        "TOML file changing the identifier registry (types, limits, blocked values, staff phones); empty: the"
        " built-in retail defaults.",
        path=PATH,
    )
    receipts_reprint_window: float = setting(
        "receipts.reprint_window",
        21600.0,
        "Seconds within which a receipt repeating a store, register and receipt number is a reprint of the first"
        " (counted once); one that also repeats the printed date and time is a reprint up to 31 days later.",
        minimum=0.0,
        maximum=86400,
    )
    members_link_window: float = setting(
        "members.link_window",
        120.0,
        "Seconds after a member's code is scanned within which the register's next sale (not a refund) is attached"
        " to that member; a later sale stays anonymous.",
        minimum=5.0,
        maximum=86400,
    )
    members_certificate_days: float = setting(
        "members.certificate_days",
        365.0,
        "Days a member app's key stays certified before the app needs a new certificate.",
        minimum=1.0,
        maximum=3650,
    )
    members_cards_days: float = setting(
        "members.cards_days",
        90.0,
        "Days after a member's last purchase or code scan at a store during which the store's cashier panel"
        " keeps the member's masked card and coupons (downlink document member_cards).",
        minimum=1.0,
        maximum=3650,
    )
    scheduler_enabled: bool = setting(
        "scheduler.enabled",
        True,
        "Run scheduled jobs (trigger evaluation, webhook delivery) in this serve process; each job runs on one"
        " instance at a time however many serve the database.",
    )
    scheduler_instance: str = setting(
        "scheduler.instance",
        "",
        "Name of this instance in job runs and leases; empty: host name and process id.",
    )
    scheduler_lease_seconds: float = setting(
        "scheduler.lease_seconds",
        300.0,
        "SQLite: seconds a job lease lasts unless renewed by the job's progress; a crashed instance's lease"
        " lapses after this.",
        minimum=5.0,
        maximum=86400,
    )
    scheduler_tags_hour: int = setting(
        "scheduler.tags_hour",
        3,
        "Hour of the day, in the chain's local time (customers.utc_offset_minutes), at which the tags job"
        " recomputes every built-in tag; -1: never (run `central-server recompute-tags` yourself).",
        minimum=-1,
        maximum=23,
    )
    scheduler_triggers_interval: float = setting(
        "scheduler.triggers_interval",
        3600.0,
        "Seconds between evaluations of the triggers (every kind; a complaint is followed up within one).",
        minimum=1.0,
        maximum=86400,
    )
    scheduler_webhooks_interval: float = setting(
        "scheduler.webhooks_interval",
        30.0,
        "Seconds between passes delivering due webhook calls.",
        minimum=0.5,
        maximum=3600,
    )
    triggers_timezone: str = setting(
        "triggers.timezone",
        "Asia/Shanghai",
        "IANA time zone whose calendar decides birthdays and other dated occasions.",
    )
    webhooks_max_attempts: int = setting(
        "webhooks.max_attempts",
        8,
        "Attempts at delivering one webhook call before it is dead-lettered.",
        minimum=1,
        maximum=100,
    )
    webhooks_backoff_seconds: float = setting(
        "webhooks.backoff_seconds",
        30.0,
        "Wait before the first retry of a failed webhook call; doubled for each further attempt.",
        minimum=0.0,
        maximum=86400,
    )
    webhooks_backoff_max_seconds: float = setting(
        "webhooks.backoff_max_seconds",
        3600.0,
        "Longest wait between two attempts at one webhook call.",
        minimum=0.0,
        maximum=7 * 86400,
    )
    webhooks_timeout_seconds: float = setting(
        "webhooks.timeout_seconds",
        10.0,
        "How long one webhook call may take before it counts as failed.",
        minimum=0.1,
        maximum=300,
    )
    webhooks_allow_private_addresses: bool = setting(
        "webhooks.allow_private_addresses",
        False,
        "Let webhook calls reach private, loopback and link-local addresses (receivers on HQ's own network, or an"
        " egress proxy there); otherwise only public addresses are called.",
    )
    scheduler_segments_interval: float = setting(
        "scheduler.segments_interval",
        3600.0,
        "Seconds between evaluations of every segment (membership, entries and exits, consent applied).",
        minimum=10.0,
        maximum=7 * 86400,
    )
    scheduler_reports_interval: float = setting(
        "scheduler.reports_interval",
        3600.0,
        "Seconds between refreshes of the campaign pages' reports (each trigger's effect, each coupon campaign's"
        " redemptions by value tier); the pages show when each was computed.",
        minimum=60.0,
        maximum=7 * 86400,
    )
    segments_webhook_chunk: int = setting(
        "segments.webhook_chunk",
        500,
        "Members per webhook call when a segment is exported to its webhook.",
        minimum=1,
        maximum=10_000,
    )
    customers_utc_offset_minutes: int = setting(
        "customers.utc_offset_minutes",
        480,
        "Minutes the chain's local time is ahead of UTC; days, times of day and weekdays of purchases are"
        " counted in it, and the console shows and reads times in it.",
        minimum=-720,
        maximum=840,
    )
    customers_marks_per_batch: int = setting(
        "customers.marks_per_batch",
        500,
        "Customers marked by a merge or split whose statistics one ingest transaction recomputes; the rest"
        " wait for the next one or for recompute-tags.",
        minimum=1,
        maximum=100_000,
    )


@dataclass(frozen=True)
class CentralConfig(TagSettings, _BeforeTags):
    """Every setting of the central server, with its default.

    Fields come in the order of the configuration reference: the bases' (``_BeforeTags``, then
    ``TagSettings``), then these.
    """

    overview_alert_drop_percent: float = setting(
        "overview.alert_drop_percent",
        50.0,
        "A store's new members on a day that fell by at least this percentage against the mean of the same"
        " weekday in the four weeks before raise an alert.",
        minimum=1.0,
        maximum=100.0,
    )
    overview_alert_min_baseline: float = setting(
        "overview.alert_min_baseline",
        1.0,
        "Least mean of new members on the same weekday in the four weeks before for a store's drop to count"
        " (keeps quiet stores from alerting on noise).",
        minimum=0.0,
        maximum=100000.0,
    )
    overview_alert_webhook_url: str = setting(
        "overview.alert_webhook_url",
        "",
        "URL that receives each store alert once, as a signed POST; empty: alerts are shown on the overview only.",
    )
    overview_alert_webhook_secret: str = setting(
        "overview.alert_webhook_secret",
        "",
        "Secret the store alert calls are signed with (X-CDP-Signature, HMAC-SHA256).",
        secret=True,
    )
    scheduler_store_alerts_interval: float = setting(
        "scheduler.store_alerts_interval",
        3600.0,
        "Seconds between checks for stores whose new members dropped on the last full day (each store's day"
        " is recorded and sent once).",
        minimum=1.0,
        maximum=86400,
    )
    retention_interval: float = setting(
        "retention.interval",
        3600.0,
        "Seconds between runs of the retention job, which deletes what central keeps only for a while"
        " (never the audit log or customer data).",
        minimum=60.0,
        maximum=7 * 86400,
    )
    retention_heartbeat_days: float = setting(
        "retention.heartbeat_days",
        14.0,
        "Days an agent's heartbeat events are kept; each device's newest is kept whatever its age.",
        minimum=1.0,
        maximum=36500,
    )
    retention_job_run_days: float = setting(
        "retention.job_run_days",
        30.0,
        "Days a scheduled job's run records are kept; each job's latest run is kept whatever its age.",
        minimum=1.0,
        maximum=36500,
    )
    retention_webhook_days: float = setting(
        "retention.webhook_days",
        90.0,
        "Days a webhook call is kept after it was delivered, dead-lettered or cancelled (pending calls stay).",
        minimum=1.0,
        maximum=36500,
    )
    retention_enroll_token_days: float = setting(
        "retention.enroll_token_days",
        90.0,
        "Days an enrollment token is kept after it was used, revoked or expired.",
        minimum=1.0,
        maximum=36500,
    )
    retention_chunk: int = setting(
        "retention.chunk",
        5000,
        "Rows the retention job deletes per transaction, so that no deletion holds locks for long.",
        minimum=100,
        maximum=100000,
    )
    log_level: str = setting(
        "log.level", "info", "Least severe log level written.", choices=("debug", "info", "warning", "error")
    )

    @property
    def effective_database_url(self) -> str:
        """The database URL in use: ``database.url``, else the SQLite file in the data directory."""
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite:///{self.server_data_dir / 'central.db'}"

    @property
    def secret_key_path(self) -> Path:
        """Where central's signing secret lives (mode 0600; created only for a database without one, decision 0092)."""
        return self.server_data_dir / "secret.key"


def normalize_database_url(url: str) -> str:
    """Spell a plain ``postgresql://`` or ``postgres://`` URL with the psycopg 3 driver central ships."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url
