"""Flask application factory: nothing is built at import time."""

from __future__ import annotations

import logging
import sys
from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter

from app.request_ids import LOG_FORMAT
from keys.storage import KeyStore, development_passphrase
from registry.db import ReadConnections, make_engine, make_read_engine, make_session_factory
from registry.models import MAX_ROW_ID

__all__ = ["create_app"]


def _configure_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)  # stdout is a command's answer (JSON, a trust list)
        handler.setFormatter(logging.Formatter(LOG_FORMAT, defaults={"request_id": "-"}))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)


class RowId(IntegerConverter):
    """``<int:...>`` in a URL: at most ``MAX_ROW_ID``, the largest id the databases hold; a larger
    number matches no route (404) instead of overflowing the query (a 500)."""

    def __init__(self, map: Any, fixed_digits: int = 0, min: int | None = None,  # noqa: A002 (werkzeug's names)
                 max: int | None = MAX_ROW_ID, signed: bool = False) -> None:  # noqa: A002
        super().__init__(map, fixed_digits, min, max, signed)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app. ``test_config`` holds environment-style settings that override the
    process environment (``{"INSTANCE_DIR": ..., "DATABASE_URL": ..., "RATE_LIMITS": "off"}``)."""
    import os

    from app.config import load_config

    _configure_logging()
    from app.responses import OrjsonProvider
    from app.text_input import TextRequest, refuse_nul_in_address

    class App(Flask):
        json_provider_class = OrjsonProvider
        request_class = TextRequest  # no NUL in a form field (and, by the JSON provider, in a body)

    app = App(__name__, static_folder="../static", static_url_path="/static")
    app.url_map.converters["int"] = RowId
    overrides = {k: str(v) for k, v in (test_config or {}).items()}
    app.config.update(load_config({**os.environ, **overrides}))
    if app.config["METRICS_TOKEN"]:  # prometheus_client is loaded only then (37 ms at each start)
        from app.metrics import init_metrics

        init_metrics(app)  # first: its route hook runs before any other
    app.before_request(refuse_nul_in_address)  # nor in a path segment or a query parameter
    app.config["TESTING"] = overrides.get("TESTING", "").lower() in ("1", "true", "yes")
    if app.config["TRUSTED_PROXIES"]:
        # Behind nginx (README): the client's address and scheme from the proxies' X-Forwarded-For
        # and -Proto, trusting that many hops and no more; otherwise every client would share the
        # proxy's address, and with it one rate-limit bucket and one anonymous client hash.
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    app.config.update(
        API_TITLE="Product-origin verification API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        WTF_CSRF_TIME_LIMIT=None,
        BABEL_DEFAULT_LOCALE="vi",
        BABEL_TRANSLATION_DIRECTORIES="translations",
        RATELIMIT_ENABLED=app.config["RATE_LIMITS"] == "on",
        RATELIMIT_STORAGE_URI=app.config["REDIS_URL"] or "memory://",
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False
    app.json.ensure_ascii = False

    instance = app.config["INSTANCE_DIR"]
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)  # keys, secrets, the SQLite file: the owner's
    passphrase = app.config["KEY_PASSPHRASE"] or development_passphrase(instance)
    app.extensions["keystore"] = KeyStore(app.config["KEY_DIR"], passphrase)
    engine = make_engine(app.config["DATABASE_URL"], pool_size=app.config["DB_POOL_SIZE"],
                         lock_timeout=app.config["DB_LOCK_TIMEOUT_SECONDS"])
    app.extensions["engine"] = engine
    app.extensions["session_factory"] = make_session_factory(engine)
    # Verification's reads: the same database, or a read replica (README, "Running several app servers").
    app.extensions["read_engine"] = make_read_engine(app.config["READ_DATABASE_URL"] or app.config["DATABASE_URL"],
                                                     pool_size=app.config["DB_POOL_SIZE"],
                                                     statement_timeout=app.config["DB_READ_TIMEOUT_SECONDS"])
    app.extensions["read_connections"] = ReadConnections(app.extensions["read_engine"])
    from registry.lookup import LookupCache

    app.extensions["lookup_cache"] = LookupCache(app.config["LOOKUP_CACHE_ENTRIES"])
    from registry.scan_spool import ScanSpool
    from registry.scans import NetworkCache, ScanWriter

    observer = None
    if app.config["METRICS_TOKEN"]:
        from app.metrics import ScanMetrics

        observer = ScanMetrics()
    app.extensions["scan_writer"] = ScanWriter(app.extensions["session_factory"],
                                               interval=app.config["SCAN_FLUSH_SECONDS"],
                                               spool=ScanSpool(app.config["SCAN_SPOOL_DIR"]), observer=observer)
    app.extensions["network_cache"] = NetworkCache()

    from app.extensions import api, babel, csrf, init_rate_limits
    from app.i18n import select_locale

    babel.init_app(app, locale_selector=select_locale)
    csrf.init_app(app)
    init_rate_limits(app)
    api.init_app(app)
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})

    from app.api import bp as api_bp

    api.register_blueprint(api_bp)
    csrf.exempt(api_bp)

    from app.pages import bp as pages_bp

    app.register_blueprint(pages_bp)

    from app.portal import bp as portal_bp

    app.register_blueprint(portal_bp)

    from app.health import bp as health_bp

    app.register_blueprint(health_bp)

    from app.errors import register_error_handlers
    from app.request_ids import init_request_ids
    from app.services import close_session
    from app.security import ApiWithoutCookies, security_headers

    register_error_handlers(app)
    init_request_ids()
    app.teardown_appcontext(close_session)
    app.after_request(security_headers(app))
    app.session_interface = ApiWithoutCookies()

    from app.cli import register_cli, register_evidence_cli, register_import_cli, register_verify_cli

    register_cli(app)
    register_verify_cli(app)
    register_evidence_cli(app)
    register_import_cli(app)
    from app.cli_accounts import register_accounts_cli

    register_accounts_cli(app)
    from app.cli import require_instance

    require_instance(app)  # every command but init, demo and verify --offline needs `init` first
    return app
