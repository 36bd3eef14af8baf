"""Configuration from environment variables, read once by the factory."""

from __future__ import annotations

import logging
import os
import re
import secrets
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from registry.db import LOCK_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS
from registry.lookup import DEFAULT_MAX_ENTRIES
from verification.digital_link import host_of, same_host

__all__ = ["load_config", "server_settings", "ConfigError", "MIN_KEY_PASSPHRASE"]

log = logging.getLogger(__name__)

MiB = 1024 * 1024
MIN_KEY_PASSPHRASE = 16  # characters: production's KEY_PASSPHRASE, and a new one given to `keys rewrap`


class ConfigError(RuntimeError):
    """The configuration is unsafe or inconsistent; the service refuses to start."""


def _dev_secret(instance: Path, name: str) -> str:
    path = instance / name
    if not path.exists():
        instance.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float, whole: bool = True) -> Any:
    """A numeric setting, or a ConfigError that names it and says what it takes."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        value = None
    if value is None or not value >= minimum:  # also refuses NaN
        kind = "a whole number" if whole else "a number"
        raise ConfigError(f"{name} must be {kind} of at least {minimum:g}, not {raw!r}")
    return value


def _rate_limit(env: Mapping[str, str], name: str, default: str) -> str:
    """A rate-limit setting (``120/minute``; several joined by ``;``), parsed now as the limiter will
    parse it at each request (``limits.parse_many``), or a ConfigError that names it."""
    from limits import parse_many

    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        parse_many(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a rate limit such as {default!r} (a number per second, minute, "
                          f"hour or day), not {raw!r}") from None
    return raw


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (any case), or a ConfigError that names the setting and its values."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise ConfigError(f"{name} must be {' or '.join(choices)}, not {raw!r}")
    return value


_REDIS_SCHEMES = ("redis://", "rediss://", "redis+unix://")


def _redis_url(env: Mapping[str, str]) -> str | None:
    """``REDIS_URL``: unset, or a Redis URL (its scheme checked here: the rate limits' storage is
    chosen by it, and ``localhost:6379`` had stopped the app with a traceback)."""
    raw = (env.get("REDIS_URL") or "").strip()
    if not raw:
        return None
    if not raw.lower().startswith(_REDIS_SCHEMES):
        raise ConfigError(f"REDIS_URL must be a Redis URL ({', '.join(s + '...' for s in _REDIS_SCHEMES)}), "
                          f"not {raw.split('@')[-1]!r}")
    return raw


def _base_url(env: Mapping[str, str]) -> str:
    """``BASE_URL``, the address printed in every code on goods: an http(s) URL of a host, perhaps
    with a path, without a query, a fragment, a password or a space (``https:// x.vn`` or
    ``https://x.vn/?a=1`` had been printed into codes as they were), or a ConfigError naming it."""
    raw = (env.get("BASE_URL") or "").strip()
    if not raw:
        return _served_at(env)
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname or "#" in raw or "?" in raw
            or parts.username is not None or any(c.isspace() for c in raw)):
        raise ConfigError(f"BASE_URL must be the http:// or https:// address of the service's host, perhaps with a "
                          f"path (https://verify.example.vn), without a query, fragment or space: it is printed in "
                          f"every code; not {raw!r}")
    return raw.rstrip("/")


_HOST = re.compile(r"^[a-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9a-f:.]+\](:[0-9]{1,5})?$")


def _code_hosts(env: Mapping[str, str], base_url: str) -> frozenset[str]:
    """The hosts this registry's codes are printed under: ``BASE_URL``'s, and ``OTHER_CODE_HOSTS``
    (comma-separated ``host[:port]``: an earlier ``BASE_URL``'s, another name of the service). A
    Digital Link on any other host is noted ``OTHER_HOST`` (verification.verdicts.Verifier)."""
    hosts = {host_of(base_url)}
    for raw in (env.get("OTHER_CODE_HOSTS") or "").split(","):
        host = raw.strip().lower()
        if not host:
            continue
        if not _HOST.match(host):
            raise ConfigError(f"OTHER_CODE_HOSTS takes host names, perhaps with a port, separated by commas "
                              f"(verify.example.vn, old.example.vn:8443), not {raw.strip()!r}")
        hosts.add(same_host(host))
    return frozenset(hosts)


def _database_url(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    """``DATABASE_URL`` or ``READ_DATABASE_URL``: SQLite or PostgreSQL. PostgreSQL's own forms
    (``postgresql://``, ``postgres://``) are taken for psycopg, the driver installed (SQLAlchemy
    reads the first as psycopg2's, and the second not at all: tracebacks); anything else is a
    ConfigError naming the setting, without the URL's password."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    text = re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", raw)
    try:
        url = make_url(text)
    except ArgumentError:
        url = None
    if url is None or url.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        shown = re.sub(r"//[^@/]*@", "//", raw)  # without a password
        raise ConfigError(f"{name} must be a SQLite or PostgreSQL URL (sqlite:///path/registry.db, "
                          f"postgresql+psycopg://user@host/db), not {shown!r}")
    return text


def _spool_dir(env: Mapping[str, str], instance: Path) -> Path:
    """``SCAN_SPOOL_DIR``, made if it is not there (0700) and writable, or a ConfigError naming it:
    a folder that could not be made had been found only when a stopping worker needed it, and its
    scan events were lost."""
    path = Path(env["SCAN_SPOOL_DIR"]).resolve() if env.get("SCAN_SPOOL_DIR") else instance / "scan-spool"
    try:
        if path.is_relative_to(instance):  # the instance is its owner's alone, as init makes it
            instance.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"SCAN_SPOOL_DIR {str(path)!r} cannot be made: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"SCAN_SPOOL_DIR {str(path)!r} is not writable by this server")
    return path


def server_settings(env: Mapping[str, str] | None = None) -> dict[str, int | bool]:
    """gunicorn's settings (gunicorn.conf.py): ``workers`` (``WEB_CONCURRENCY``, default the cores),
    ``threads`` (``GUNICORN_THREADS``, default 1) and ``access_log`` (``ACCESS_LOG``: on or off, 1
    or 0; default on), or a ConfigError that names the setting."""
    import multiprocessing

    env = os.environ if env is None else env
    return {"workers": _number(env, "WEB_CONCURRENCY", multiprocessing.cpu_count(), minimum=1),
            "threads": _number(env, "GUNICORN_THREADS", 1, minimum=1),
            "access_log": _choice(env, "ACCESS_LOG", "on", ("on", "off", "1", "0")) in ("on", "1")}


def _served_at(env: Mapping[str, str]) -> str:
    """Where a development server is reached when ``BASE_URL`` is not set: gunicorn's ``BIND``
    (``BIND=127.0.0.1:8123 make run`` had printed demo codes for port 8000, where nothing
    answered), unless it is a Unix socket."""
    bind = env.get("BIND") or "127.0.0.1:8000"
    return "http://127.0.0.1:8000" if bind.startswith(("unix:", "fd://")) else f"http://{bind}"


def load_config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if env is None else env
    instance = Path(env.get("INSTANCE_DIR", "instance")).resolve()
    production = _choice(env, "APP_ENV", "development", ("development", "production")) == "production"
    cfg: dict[str, Any] = {
        "APP_ENV": "production" if production else "development",
        "INSTANCE_DIR": instance,
        "DATABASE_URL": _database_url(env, "DATABASE_URL", f"sqlite:///{instance / 'registry.db'}"),
        "BASE_URL": _base_url(env),
        "REDIS_URL": _redis_url(env),
        "RATE_LIMITS": _choice(env, "RATE_LIMITS", "on", ("on", "off")),
        "RATELIMIT_KEY_PREFIX": env.get("RATELIMIT_KEY_PREFIX", "pov"),
        "VERIFY_RATE_LIMIT": _rate_limit(env, "VERIFY_RATE_LIMIT", "120/minute"),
        "REPORT_RATE_LIMIT": _rate_limit(env, "REPORT_RATE_LIMIT", "20/hour"),
        "FOLLOWUP_RATE_LIMIT": _rate_limit(env, "FOLLOWUP_RATE_LIMIT", "30/minute"),
        "REPORTS_PER_CLIENT_PER_HOUR": _number(env, "REPORTS_PER_CLIENT_PER_HOUR", 5, minimum=0),
        "LOGIN_RATE_LIMIT": _rate_limit(env, "LOGIN_RATE_LIMIT", "10/minute"),
        "MAX_CONTENT_LENGTH": _number(env, "MAX_UPLOAD_BYTES", 10 * MiB, minimum=1),
        "MAX_IMAGE_PIXELS": _number(env, "MAX_IMAGE_PIXELS", 50_000_000, minimum=1),
        "CLONE_MAX_CLIENTS": _number(env, "CLONE_MAX_CLIENTS", 10, minimum=1),
        "CLONE_MAX_SPEED_KMH": _number(env, "CLONE_MAX_SPEED_KMH", 900.0, minimum=1, whole=False),
        "CLONE_MAX_NETWORKS": _number(env, "CLONE_MAX_NETWORKS", 5, minimum=0),
        "DB_POOL_SIZE": _number(env, "DB_POOL_SIZE", 5, minimum=1),
        "READ_DATABASE_URL": _database_url(env, "READ_DATABASE_URL", None),
        "DB_LOCK_TIMEOUT_SECONDS": _number(env, "DB_LOCK_TIMEOUT_SECONDS", LOCK_TIMEOUT_SECONDS, minimum=0.1,
                                           whole=False),
        "DB_READ_TIMEOUT_SECONDS": _number(env, "DB_READ_TIMEOUT_SECONDS", READ_TIMEOUT_SECONDS, minimum=0.1,
                                           whole=False),
        "SCAN_FLUSH_SECONDS": _number(env, "SCAN_FLUSH_SECONDS", 0.5, minimum=0.01, whole=False),
        "LOOKUP_CACHE_ENTRIES": _number(env, "LOOKUP_CACHE_ENTRIES", DEFAULT_MAX_ENTRIES, minimum=0),
        "TRUSTED_PROXIES": _number(env, "TRUSTED_PROXIES", 0, minimum=0),
        "METRICS_TOKEN": env.get("METRICS_TOKEN") or None,
        "KEY_DIR": instance / "keys",
        "SCAN_SPOOL_DIR": _spool_dir(env, instance),
    }
    cfg["CODE_HOSTS"] = _code_hosts(env, cfg["BASE_URL"])
    passphrase = env.get("KEY_PASSPHRASE")
    secret_key = env.get("SECRET_KEY")
    scan_salt = env.get("SCAN_SALT")
    if production:
        missing = [name for name, value in (("KEY_PASSPHRASE", passphrase), ("SECRET_KEY", secret_key),
                                             ("SCAN_SALT", scan_salt), ("BASE_URL", env.get("BASE_URL")))
                   if not value]
        if missing:
            raise ConfigError(f"APP_ENV=production refuses to start without {', '.join(missing)}")
        if len(passphrase) < MIN_KEY_PASSPHRASE or len(secret_key) < 32:
            raise ConfigError(f"APP_ENV=production needs KEY_PASSPHRASE of {MIN_KEY_PASSPHRASE}+ and SECRET_KEY of "
                              "32+ characters")
        if cfg["METRICS_TOKEN"] is not None and len(cfg["METRICS_TOKEN"]) < 32:
            raise ConfigError("APP_ENV=production needs a METRICS_TOKEN of 32+ characters when one is set")
        if not cfg["BASE_URL"].startswith("https://"):
            raise ConfigError("APP_ENV=production needs an https:// BASE_URL (it is printed on goods)")
    cfg["KEY_PASSPHRASE"] = passphrase.encode() if passphrase else None  # None: development default
    # the secret settings this instance was not given, and runs on values it generated in files of
    # its folder (registry.backup carries those files alone: one left from before a setting was
    # given opens nothing)
    cfg["GENERATED_SECRETS"] = tuple(name for name, given in (("KEY_PASSPHRASE", passphrase),
                                                              ("SECRET_KEY", secret_key), ("SCAN_SALT", scan_salt))
                                     if not given)
    cfg["SECRET_KEY"] = secret_key or _dev_secret(instance, "dev-secret-key")
    cfg["SCAN_SALT"] = scan_salt or _dev_secret(instance, "dev-scan-salt")
    cfg["SESSION_COOKIE_SECURE"] = production
    cfg["SESSION_COOKIE_HTTPONLY"] = True
    cfg["SESSION_COOKIE_SAMESITE"] = "Lax"
    return cfg


def main() -> None:
    """``python -m app.config``: check gunicorn's settings before gunicorn reads them (``make serve``).
    gunicorn reads ``WEB_CONCURRENCY`` itself when it is imported, before gunicorn.conf.py, and a
    value that is not a number failed there with its own traceback."""
    try:
        server_settings()
    except ConfigError as exc:
        raise SystemExit(f"Error: {exc}") from None


if __name__ == "__main__":
    main()
