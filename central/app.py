"""The central server's Flask application factory: ``create_app(config)`` wires every blueprint."""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask, Response, jsonify, redirect, url_for
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers.response import Response as BaseResponse

from central import access_log, clock, db, errors, readiness, scheduler, secret_key
from central.campaigns import api as campaigns_api
from central.campaigns import coupons_api
from central.clock import system_clock
from central.config import CentralConfig
from central.config_loader import default_config_path, load_config
from central.customers import api as customers_api
from central.customers import consent_api
from central.fleet import api as fleet_api
from central.identity import api as identity_api
from central.ingest import api as ingest_api
from central.ingest import budget
from central.params import CONVERTERS
from central.presence import api as presence_api
from central.segments import api as segments_api
from central.sources import api as sources_api
from shared.crypto import KEY_BYTES, read_secret_file

log = logging.getLogger(__name__)


def create_app(config: CentralConfig | None = None, *, test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app for ``config`` (default: the config file and environment).

    ``test_config`` updates Flask's own ``app.config`` last (``TESTING``, ``CLOCK`` for a fixed clock).
    """
    if config is None:
        config = load_config(default_config_path())
    app = Flask(__name__)
    # Every <int:...> or <int32:...> in a path names a row: past what its id column holds (a BIGINT,
    # an INTEGER) no row exists, so no route matches (404), where the database would refuse to bind
    # the number (a 500).
    app.url_map.converters.update(CONVERTERS)
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    # The directory holds the session secret and, with SQLite, personal data: owner only.
    config.server_data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    app.config.update(
        CENTRAL=config,
        CLOCK=system_clock,
        # The ingest view enforces its own, larger limit on the raw body; forms stay small.
        MAX_FORM_MEMORY_SIZE=64 * 1024,
    )
    from central.identity.registry import load_registry

    app.config["IDENTITY_REGISTRY"] = load_registry(config)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if test_config:
        app.config.update(test_config)

    db.init_app(app, config.effective_database_url)
    # Signs login forms, coupon codes, member certificates and downlink documents: the key the
    # database was set up with, or none (decision 0092).
    app.config["SECRET_KEY"] = _secret_key(db.engine_for(app), config)
    errors.init_app(app)
    budget.init_app(app, config.ingest_decode_budget_bytes)

    from central import console
    from central.accounts import web

    web.init_app(app)
    app.register_blueprint(ingest_api.bp)
    app.register_blueprint(fleet_api.bp)
    app.register_blueprint(customers_api.bp)
    app.register_blueprint(identity_api.bp)
    app.register_blueprint(sources_api.bp)
    app.register_blueprint(presence_api.bp)
    app.register_blueprint(consent_api.bp)
    app.register_blueprint(campaigns_api.bp)
    app.register_blueprint(scheduler.bp)
    app.register_blueprint(coupons_api.bp)
    app.register_blueprint(segments_api.bp)
    console.init_app(app)
    if config.server_access_log:
        access_log.init_app(app)

    @app.get("/healthz")
    def healthz() -> tuple[Response, int, dict[str, str]] | tuple[Response, int]:
        """Readiness, without authentication: the database is reachable and can take writes now."""
        state = readiness.state(app, db.engine_for(app), clock.now())
        if state != readiness.READY:
            retry = {"Retry-After": str(errors.RETRY_AFTER_SECONDS)}
            return jsonify({"status": "unavailable", "database": state}), 503, retry
        return jsonify({"status": "ok", "database": "ok"}), 200

    @app.get("/")
    def root() -> BaseResponse:
        """The console is the front page."""
        return redirect(url_for("console.index"))

    return app


def _secret_key(engine: Engine, config: CentralConfig) -> bytes:
    """``secret.key`` as the database knows it; refuses (``SecretKeyRefused``) any other key or none.

    With the database unreachable nothing this app signs could be stored or served, so it starts
    (its pages answer 503) with the key on disk unchecked, or a key it never writes down; ``serve``
    reaches the database before it builds the app.
    """
    path = config.secret_key_path
    try:
        return secret_key.load(engine, path)
    except SQLAlchemyError as exc:
        log.warning("cannot check %s against database %s: %s", path, secret_key.label(engine), type(exc).__name__)
    return read_secret_file(path) if path.exists() else os.urandom(KEY_BYTES)
