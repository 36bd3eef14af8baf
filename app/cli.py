"""``python -m app <command>``: the one command line (Flask's CLI underneath)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from rfc8785 import CanonicalizationError

from keys.encoding import MalformedEncoding, b64url_decode, parse_rfc3339, rfc3339
from registry.errors import RegistryError
from registry.models import MAX_ROW_ID
from registry.services import AUTHORITY_KEY_NAME, SYSTEM, Registry, Role

__all__ = ["register_cli", "register_verify_cli", "register_evidence_cli", "register_import_cli", "init_instance",
           "require_instance"]


def _registry(session) -> Registry:
    return Registry(session, keystore=current_app.extensions["keystore"], base_url=current_app.config["BASE_URL"])


def _session():
    return current_app.extensions["session_factory"]()


def init_instance(app: Flask) -> str:
    """Create the schema (Alembic, to head) and the authority key; idempotent. Returns the authority kid."""
    from app.migrations import upgrade_to_head

    from registry.services import private_key

    engine, keystore = app.extensions["engine"], app.extensions["keystore"]
    upgrade_to_head(engine)
    signed_by = _log_signed_by(engine)
    if signed_by is not None and not keystore.has(AUTHORITY_KEY_NAME):
        # another server's database, or a database without its key folder: a new key would sign
        # checkpoints and records no one can check against the authority key the log was signed by
        raise _error("AUTHORITY_KEY_MISSING",
                     f"this registry's log is signed by authority key {signed_by}, which this server's key folder "
                     f"({app.config['KEY_DIR']}) does not hold: copy the instance's key folder (INSTANCE_DIR/keys) "
                     "here, with its KEY_PASSPHRASE; no new authority key was made")
    kid = private_key(keystore, AUTHORITY_KEY_NAME, create=True).kid
    if signed_by is not None and kid != signed_by:
        raise _error("AUTHORITY_KEY_MISMATCH",
                     f"this registry's log is signed by authority key {signed_by}, this server's key folder "
                     f"({app.config['KEY_DIR']}) holds {kid}: it is another instance's key folder")
    return kid


def _log_signed_by(engine: Any) -> str | None:
    """The key id that signed the log's latest checkpoint; None for a log never signed (a new registry)."""
    from sqlalchemy import select

    from registry.models import Checkpoint

    with engine.connect() as connection:
        signed = connection.execute(select(Checkpoint.signed).order_by(Checkpoint.size.desc()).limit(1)).scalar()
    return str((signed.get("sig") or {}).get("kid")) if isinstance(signed, dict) else None


# Commands that need no initialised instance: init and demo make it, verify checks for itself (its
# --offline needs none), and evidence-check needs only the authority's public key (or this instance's).
_WITHOUT_INSTANCE = frozenset({"init", "demo", "verify", "evidence-check"})


def _require_instance() -> None:
    """``NOT_INITIALISED`` unless ``init`` has made this instance (the schema, with Alembic's version
    table, and the authority key); creates nothing (an SQLite file is not opened when it does not
    exist, since opening would create it)."""
    from sqlalchemy import inspect, text

    from app.health import schema_state

    engine = current_app.extensions["engine"]
    database = engine.url.database or ""
    revision = None
    if engine.url.get_backend_name() == "sqlite":
        made = database in ("", ":memory:") or database.startswith("file:") or Path(database).exists()
        if made:  # read outside a transaction: the engine's would be BEGIN IMMEDIATE, waiting for any writer
            raw = engine.raw_connection()
            try:
                cursor = raw.cursor()
                made = cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                      "AND name = 'alembic_version'").fetchone() is not None
                if made:
                    revision = (cursor.execute("SELECT version_num FROM alembic_version").fetchone() or (None,))[0]
                cursor.close()
            finally:
                raw.close()
    else:
        with engine.connect() as connection:
            made = inspect(connection).has_table("alembic_version")
            if made:
                revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    if not (made and current_app.extensions["keystore"].has(AUTHORITY_KEY_NAME)):
        raise _error("NOT_INITIALISED", "run python -m app init")
    behind = schema_state(current_app, revision) == "migrations to apply"
    if behind and click.get_current_context().info_name != "backup":
        # a command run before the upgrade (cron) had met columns it knows and the database not:
        # "busy or unreachable" on SQLite, a traceback on PostgreSQL (a backup first is right, though)
        raise _error("MIGRATIONS_PENDING", f"the database's schema is at revision {revision}, older than this "
                     "version's: apply the migrations first (.venv/bin/alembic upgrade head, or python -m app init)")


def require_instance(app: Flask) -> None:
    """Every command of ``app`` (but those in ``_WITHOUT_INSTANCE``) first checks that ``init`` has
    run: before it they were tracebacks (RuntimeError, OperationalError) that left an empty
    registry.db behind. Called once every command is registered."""
    import functools

    def guard(command: click.Command) -> None:
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                guard(sub)
            return
        callback = command.callback

        @functools.wraps(callback)
        def checked(*args: Any, **kwargs: Any) -> Any:
            _require_instance()
            return callback(*args, **kwargs)

        command.callback = with_appcontext(checked)

    for name, command in app.cli.commands.items():
        if name not in _WITHOUT_INSTANCE:
            guard(command)


def _fail(exc: RegistryError) -> NoReturn:
    """The registry's refusal; when several fields were at fault (``InvalidFields``), each on a
    line of its own first, as the API lists them all in ``problems``."""
    raise _refusal(exc.code, exc.message, [(p.code, p.message) for p in getattr(exc, "problems", [])])


def _schema_refusal(messages: Any, *, where: str = "", context: str = "") -> click.ClickException:
    """``VALIDATION_FAILED`` for what the API's schema refused (marshmallow's ``messages``): each
    field at fault listed as ``_fail`` lists the registry's, the first on the Error line after
    ``context``; ``where`` (a file, an import's line) begins each."""
    from app.errors import field_problems

    fields = field_problems(messages) or [str(messages)]
    return _refusal("VALIDATION_FAILED", f"{where}{context}{fields[0]}",
                    [("VALIDATION_FAILED", f"{where}{field}") for field in fields])


def _refusal(code: str, message: str, problems: list[tuple[str, str]]) -> click.ClickException:
    """``Error: CODE: message``; when several ``problems`` (code, message) led to it, each is first
    printed on a ``PROBLEM: CODE: message`` line, and the Error line says how many more there are."""
    if len(problems) < 2:
        return _error(code, message)
    for problem_code, problem_message in problems:
        click.echo(f"PROBLEM: {problem_code}: {problem_message}", err=True)
    return _error(code, f"{message} (and {len(problems) - 1} more problem(s), listed above)")


def _error(code: str, message: str) -> click.ClickException:
    """``Error: CODE: message``, the shape of every refusal on the command line."""
    return click.ClickException(f"{code}: {message}")


def stdin_line(what: str, code: str) -> str:
    """The first line of stdin, UTF-8 strictly, without its line ending: a secret, which an argument
    would show in the process list. Refused as ``code`` naming ``what`` when it is not UTF-8."""
    line = sys.stdin.buffer.readline()
    try:
        return line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise _error(code, f"the {what} on stdin is not UTF-8 text (byte 0x{line[exc.start]:02x} at offset "
                           f"{exc.start})") from None


def _refuse_impossible_id(row_id: int, what: str, code: str) -> None:
    """An id no row can have (below 1, or past ``MAX_ROW_ID``, where the query would overflow the
    database's integer: a traceback) is refused with ``code``, the registry's answer for an id it
    does not hold (``TOKEN_UNKNOWN``...), saying which ids there can be."""
    if not 1 <= row_id <= MAX_ROW_ID:
        raise _error(code, f"no {what} {row_id} ({what} ids go from 1 to {MAX_ROW_ID})")


def _read_json_text(stream, name: str) -> str:
    """The whole of a JSON (or JSON-lines) file as text: JSON is UTF-8 (RFC 8259)."""
    data = stream.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _error("MALFORMED_JSON", f"{name} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                                       f"{exc.start}); save it as UTF-8") from None


def _parse_json(text: str, where: str) -> Any:
    """Strict JSON, read as the API reads request bodies (``app.responses.OrjsonProvider``: no NaN or
    Infinity, bounded nesting, no NUL in a string); ``where`` names the file or line in errors."""
    try:
        return current_app.json.loads(text)
    except ValueError as exc:  # orjson's JSONDecodeError is a ValueError
        raise _error("MALFORMED_JSON", f"{where} is not valid JSON: {exc}") from None
    except RegistryError as exc:  # a NUL in a string (app.text_input)
        raise _error(exc.code, f"{where}: {exc.message}") from None


def _options(schema: Any, values: dict[str, Any], options: dict[str, str] | None = None) -> dict[str, Any]:
    """Command-line options checked by the API's schema for the same input (its limits, lengths and
    patterns): ``VALIDATION_FAILED`` naming each option at fault, each on a ``PROBLEM`` line when
    there are several (``options`` maps a field to the option or argument where the names differ,
    ``--producer``; ``None`` values are left out, as an absent member)."""
    from marshmallow import ValidationError

    try:
        schema = schema() if isinstance(schema, type) else schema  # a schema class, or an instance (exclude=...)
        return schema.load({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        named = {(options or {}).get(k) or f"--{k.replace('_', '-')}": v for k, v in exc.messages.items()}
        raise _schema_refusal(named) from None


def _batch_body(raw: Any, where: str = "", *, correction: bool = False) -> dict[str, Any]:
    """A batch body checked exactly as ``POST /batches`` (or, for a ``correction``, ``POST
    /batches/{gtin}/{lot}/corrections``) checks it: the API's schema (unknown fields, wrong types,
    missing fields and out-of-range numbers refused), each field at fault named."""
    from marshmallow import ValidationError

    from app.api.schemas import BatchInSchema, CorrectionInSchema

    schema, route = (CorrectionInSchema, "POST /batches/{gtin}/{lot}/corrections") if correction else (
        BatchInSchema, "POST /batches")
    try:
        return schema().load(raw)
    except ValidationError as exc:
        raise _schema_refusal(exc.messages, where=where,
                              context=f"the batch does not match the schema of {route}: ") from None


# What canonical JSON (RFC 8785) cannot hold, should a value the schema lets through reach the
# signing: a clear refusal rather than a traceback (the transaction is rolled back).
def _unsignable(exc: Exception) -> click.ClickException:
    return _error("BAD_RECORD", f"the record cannot be signed: {exc}")


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: a new file beside it, then renamed over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        if not isinstance(exc, FileExistsError):  # the leftover is ours: remove it
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise _error("WRITE_FAILED", f"cannot write {path}: {exc.strerror or exc}") from None


def register_cli(app: Flask) -> None:
    from app.cli_audit import register_audit_cli
    from app.cli_keys import register_keys_cli
    from app.cli_publications import register_publication_cli

    register_publication_cli(app)
    register_audit_cli(app)
    register_keys_cli(app)

    @app.cli.command("init")
    def init_command() -> None:
        """Create the database schema and the authority key (idempotent)."""
        kid = init_instance(current_app)  # KEYS_UNAVAILABLE: refused by python -m app (app.__main__)
        click.echo(f"database ready; authority key {kid}")

    token = AppGroup("token", help="API tokens.")

    @token.command("create")
    @click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
    @click.option("--producer", "producer_id", default=None, help="producer id (producer tokens)")
    @click.option("--label", default="", help="a note for whom the token is")
    @click.option("--days", type=int, default=None,
                  help="expire after this many days (1 to 730, as through the API); default: never")
    def token_create(role: str, producer_id: str | None, label: str, days: int | None) -> None:
        """Create a bearer token; the token itself is printed once, as the last line."""
        from registry.accounts import TokenAdmin

        from app.api.portal_schemas import TokenInSchema

        # the API's schema for the role and the label (--days is the registry's BAD_EXPIRY, as through the API)
        label = _options(TokenInSchema, {"role": role, "producer_id": producer_id, "label": label},
                         {"producer_id": "--producer"})["label"]
        with _session() as session:
            try:
                # the API's path, audited: 1 to MAX_TOKEN_DAYS days, or without --days the operator's own
                # token that does not expire
                plain, row = TokenAdmin(session).create(SYSTEM, role=role, producer_id=producer_id, label=label,
                                                        days=days)
            except RegistryError as exc:
                _fail(exc)
            session.commit()
            click.echo(f"token {row.id} role={role}" + (f" producer={producer_id}" if producer_id else ""), err=True)
        click.echo(plain)

    @token.command("revoke")
    @click.argument("token_id", type=int)
    def token_revoke(token_id: int) -> None:
        """Revoke a token by its id, and the tokens it created."""
        from registry.accounts import TokenAdmin

        _refuse_impossible_id(token_id, "token", "TOKEN_UNKNOWN")
        with _session() as session:
            try:
                TokenAdmin(session).revoke(SYSTEM, token_id)  # with the tokens it created
            except RegistryError as exc:
                _fail(exc)
            session.commit()
        click.echo(f"token {token_id} revoked")

    app.cli.add_command(token)

    producer = AppGroup("producer", help="Authority tasks: producers and their keys.")

    @producer.command("admit")
    @click.option("--name", required=True)
    @click.option("--tax-code", required=True)
    @click.option("--prefix", "prefixes", multiple=True, required=True, help="GS1 company prefix (repeatable)")
    @click.option("--country", default="VN")
    def producer_admit(name: str, tax_code: str, prefixes: tuple[str, ...], country: str) -> None:
        """Admit a producer; prints its id."""
        from app.api.schemas import ProducerInSchema

        data = _options(ProducerInSchema, {"name": name, "tax_code": tax_code, "gs1_prefixes": list(prefixes),
                                           "country": country}, {"gs1_prefixes": "--prefix"})
        with _session() as session:
            try:
                p = _registry(session).admit_producer(SYSTEM, **data)
            except RegistryError as exc:
                _fail(exc)
            session.commit()
            click.echo(p.id)

    @producer.command("certify-key")
    @click.argument("producer_id")
    @click.option("--public-key", default=None, help="the producer's own raw public key, base64url")
    def producer_certify(producer_id: str, public_key: str | None) -> None:
        """Certify a key for a producer (custodial unless --public-key); prints the certificate."""
        with _session() as session:
            try:
                key = _registry(session).certify_key(SYSTEM, producer_id, public_key=public_key)
            except RegistryError as exc:
                _fail(exc)
            session.commit()
            click.echo(json.dumps(key.certificate, ensure_ascii=False))

    @producer.command("revoke-key")
    @click.argument("kid")
    @click.option("--compromised-at", default=None, help="RFC 3339 time of compromise (default now)")
    def producer_revoke(kid: str, compromised_at: str | None) -> None:
        """Revoke a producer key."""
        when = None
        if compromised_at is not None:
            try:
                when = parse_rfc3339(compromised_at)
            except MalformedEncoding as exc:
                raise _error("BAD_DATE", f"--compromised-at: {exc}") from None
            except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00 is before the first UTC time there is
                raise _error("BAD_DATE", f"--compromised-at: {compromised_at!r} is out of range") from None
        with _session() as session:
            try:
                key = _registry(session).revoke_key(SYSTEM, kid, compromised_at=when)
            except RegistryError as exc:
                _fail(exc)
            session.commit()
            click.echo(f"key {key.kid} revoked")

    app.cli.add_command(producer)

    batch = AppGroup("batch", help="Producer tasks: batches, serials, recalls.")

    @batch.command("register")
    @click.argument("producer_id")
    @click.argument("record_file", type=click.File("rb"))
    def batch_register(producer_id: str, record_file) -> None:
        """Register a batch from a JSON file shaped like POST /batches; prints its URL."""
        data = _batch_body(_parse_json(_read_json_text(record_file, record_file.name), record_file.name))
        with _session() as session:
            reg = _registry(session)
            try:
                b = reg.register_batch(SYSTEM, data, producer_id=producer_id)
                url = reg.batch_url(b)
            except RegistryError as exc:
                _fail(exc)
            except (CanonicalizationError, MalformedEncoding) as exc:
                raise _unsignable(exc) from None
            session.commit()
            click.echo(url)

    @batch.command("correct")
    @click.argument("gtin")
    @click.argument("lot")
    @click.argument("record_file", type=click.File("rb"))
    @click.option("--reason", help="why (logged with the record, for good); a signed record carries its own")
    def batch_correct(gtin: str, lot: str, record_file, reason: str | None) -> None:
        """Correct a batch's origin record from a JSON file shaped like POST /batches (the whole
        corrected record; GTIN, lot and expiry date cannot change); prints the new version's log index."""
        raw = _parse_json(_read_json_text(record_file, record_file.name), record_file.name)
        if reason is not None and isinstance(raw, dict):
            raw = {**raw, "reason": reason}
        data = _batch_body(raw, f"{record_file.name}: ", correction=True)
        with _session() as session:
            reg = _registry(session)
            try:
                b = reg.correct_batch(SYSTEM, gtin, lot, data, reason=data.get("reason"))
            except RegistryError as exc:
                _fail(exc)
            except (CanonicalizationError, MalformedEncoding) as exc:
                raise _unsignable(exc) from None
            version, index = b.record["version"], b.log_index
            session.commit()
            click.echo(f"batch {gtin}/{lot} corrected: version {version}, log index {index}")

    @batch.command("serials")
    @click.argument("gtin")
    @click.argument("lot")
    @click.option("--count", type=int, required=True)
    def batch_serials(gtin: str, lot: str, count: int) -> None:
        """Issue serials; prints one signed URL per line."""
        from app.api.schemas import SerialsInSchema

        count = _options(SerialsInSchema, {"count": count})["count"]  # the API's rule: 1 to 100,000
        with _session() as session:
            reg = _registry(session)
            try:
                issued = reg.issue_serials(SYSTEM, gtin, lot, count)
                b = reg.batch(gtin, lot)
            except RegistryError as exc:
                _fail(exc)
            session.commit()
            for serial, s in issued:
                click.echo(reg.serial_url(b, serial, s))

    @batch.command("recall")
    @click.argument("gtin")
    @click.argument("lot")
    @click.option("--reason", required=True)
    def batch_recall(gtin: str, lot: str, reason: str) -> None:
        """Recall a batch (the reason goes into the transparency log: at most 1,000 characters)."""
        from app.api.schemas import RecallInSchema

        reason = _options(RecallInSchema, {"reason": reason})["reason"]  # the API's rule for the reason
        with _session() as session:
            try:
                _registry(session).recall(SYSTEM, gtin, lot, reason=reason)
            except RegistryError as exc:
                _fail(exc)
            session.commit()
        click.echo(f"batch {gtin}/{lot} recalled")

    app.cli.add_command(batch)

    scans = AppGroup("scans", help="The scan history.")

    @scans.command("purge")
    @click.option("--keep-days", type=int, required=True,
                  help="the days of scan events to keep (at least 30); older ones are deleted")
    def scans_purge(keep_days: int) -> None:
        """Delete the scan events older than --keep-days, a batch of rows per transaction; the
        counters of serials and batches, and which clients saw each serial, are kept."""
        from registry.retention import ScanRetention

        with _session() as session:
            retention = ScanRetention(session)
            try:
                before = retention.cutoff(SYSTEM, keep_days=keep_days)
            except RegistryError as exc:
                _fail(exc)
            deleted = 0
            while True:
                gone = retention.purge_batch(before)
                deleted += gone
                if not gone:
                    break
                session.commit()  # each batch its own transaction: writers never wait long
            retention.record(SYSTEM, before, deleted)
            session.commit()
        click.echo(f"{deleted} scan event(s) recorded before {rfc3339(before)} deleted; the counters of "
                   "serials and batches are kept")

    @scans.command("write-spool")
    def scans_write_spool() -> None:
        """Write now the scan events this server's stopped workers kept in SCAN_SPOOL_DIR (its
        running workers do so by themselves within 30 s): before a server is retired, say."""
        from registry.scan_spool import ScanSpool

        writer = current_app.extensions["scan_writer"]
        written = writer.replay_spool()  # the database down: DATABASE_UNAVAILABLE (app.__main__), the files stay
        folder = current_app.config["SCAN_SPOOL_DIR"]
        left, aside = writer.spooled(), ScanSpool(folder).set_aside_files()
        click.echo(f"{written} scan event(s) written from {folder}")
        if left or aside:  # the server is not yet one to retire: a script must not go on as if it were
            raise _error("SPOOL_NOT_EMPTY", "; ".join(
                ([f"{left} file(s) left, held by a process still running: run this again once it has ended"]
                 if left else [])
                + ([f"{len(aside)} file(s) set aside, which the database refused or which cannot be read (named "
                    f"in the log): {', '.join(p.name for p in aside[:5])}{' ...' if len(aside) > 5 else ''}"]
                   if aside else [])))

    app.cli.add_command(scans)

    reports = AppGroup("reports", help="Shoppers' reports.")

    @reports.command("forget-contacts")
    @click.option("--closed-days", type=int, required=True,
                  help="the days a case stays decided before its shopper's contact is removed (at least 30)")
    def reports_forget_contacts(closed_days: int) -> None:
        """Remove the shopper's contact and client hash from the reports whose case was confirmed or
        dismissed more than --closed-days ago; what was reported, and the case, stay."""
        from registry.retention import ContactRetention

        with _session() as session:
            try:
                before, forgotten = ContactRetention(session).forget(SYSTEM, closed_days=closed_days)
            except RegistryError as exc:
                _fail(exc)
            session.commit()
        click.echo(f"{forgotten} report(s) decided before {rfc3339(before)}: the shopper's contact removed")

    app.cli.add_command(reports)

    logcmd = AppGroup("log", help="The transparency log.")

    @logcmd.command("verify")
    @click.option("--checkpoint", "checkpoint_file", type=click.File("rb"), default=None,
                  help="a checkpoint kept from earlier (GET /api/v1/log/checkpoint): the log must extend it")
    def log_verify(checkpoint_file) -> None:
        """Recompute the tree from the database and check it against the latest signed checkpoint
        (and a kept one: ``--checkpoint``); replay the log and compare it with the keys, batches and
        recalls that verification serves, and the publications."""
        from registry.append_only import unguarded
        from registry.log_replay import compare_state

        kept = None
        if checkpoint_file is not None:
            kept = _parse_json(_read_json_text(checkpoint_file, checkpoint_file.name), checkpoint_file.name)
        with _session() as session:
            reg = _registry(session)
            tlog = reg.log()
            check = tlog.verify_all(reg.authority.public_raw)
            for problem in check.problems:
                click.echo(f"PROBLEM: {problem}", err=True)
            if not check.ok:
                raise _error("LOG_INVALID", f"log check failed ({len(check.problems)} problem(s), listed above)")
            if kept is not None:
                try:
                    tlog.check_kept_checkpoint(kept, reg.authority.public_raw, check)
                except RegistryError as exc:
                    _fail(exc)
            state = compare_state(session)
            guards = unguarded(session.connection())
        for difference in state.differences:
            click.echo(f"DIFFERS: {difference}", err=True)
        if state.total > len(state.differences):
            click.echo(f"DIFFERS: ... and {state.total - len(state.differences)} more", err=True)
        if not state.ok:
            raise _error("STATE_DIFFERS", f"{state.total} difference(s) between the tables verification serves "
                                          "and the log replayed (listed above)")
        for problem in guards:
            click.echo(f"UNGUARDED: {problem}", err=True)
        if guards:
            raise _error("LOG_UNGUARDED", f"the log and the audit trail are not append-only in the database "
                                          f"({len(guards)} problem(s), listed above): someone who owns the schema "
                                          "lifted a guard; check the log against a kept checkpoint (--checkpoint), "
                                          "then put the guards back: python -m app log guard")
        click.echo(f"log OK: {check.size} entries; checkpoint of size {check.checkpoint_size} "
                   f"matches the recomputed root and its signature verifies")
        if kept is not None:
            click.echo(f"the log extends the kept checkpoint of size {kept['size']}")
        click.echo(f"the {state.producers} producers, {state.keys} producer keys, {state.batches} batches and "
                   f"{state.publications} publications in the tables match the log replayed")

    @logcmd.command("producers")
    def log_producers() -> None:
        """Log the admission of each producer admitted before admissions were logged (once, after
        upgrading): the log vouches for their rows from now on. Check the rows it lists."""
        with _session() as session:
            late = _registry(session).log_unlogged_producers(SYSTEM)
            session.commit()
            for producer in late:
                click.echo(f"logged {producer.id}: {producer.name} ({producer.country}, tax code {producer.tax_code}, "
                           f"GS1 prefixes {', '.join(producer.gs1_prefixes)})")
        click.echo(f"{len(late)} producer(s) logged" if late else "every producer's admission is already logged")

    @logcmd.command("guard")
    def log_guard() -> None:
        """Put back the triggers that keep the log and the audit trail append-only (migration 0015),
        after someone who owns the schema lifted them. Check the log first: log verify --checkpoint."""
        from sqlalchemy import text
        from sqlalchemy.exc import ProgrammingError

        from registry.append_only import create_statements, drop_statements, unguarded

        with _session() as session:
            connection = session.connection()
            try:
                for statement in drop_statements(connection.dialect.name) + create_statements(connection.dialect.name):
                    connection.execute(text(statement))
            except ProgrammingError as exc:  # PostgreSQL: this account does not own the schema
                session.rollback()
                raise _error("PERMISSION_DENIED", f"only the schema's owner can put the guards back "
                                                  f"({str(exc.orig).splitlines()[0]}); run this as the account "
                                                  "that applies the migrations") from None
            left = unguarded(connection)
            if left:  # cannot happen unless the statements and the check disagree: say so, change nothing
                session.rollback()
                raise _error("LOG_UNGUARDED", "; ".join(left))
            session.commit()
        click.echo("the log and the audit trail are append-only again")

    app.cli.add_command(logcmd)

    @app.cli.command("backup")
    @click.argument("target", type=click.Path(file_okay=False, path_type=Path))
    def backup_command(target: Path) -> None:
        """Copy the instance (the database, with SQLite's online backup or pg_dump; encrypted keys,
        generated secrets) into a new folder, while it serves."""
        from registry.backup import backup

        try:
            done = backup(current_app.config["DATABASE_URL"], instance_dir=current_app.config["INSTANCE_DIR"],
                          key_dir=current_app.config["KEY_DIR"], target=target,
                          generated=current_app.config["GENERATED_SECRETS"])
        except RegistryError as exc:
            _fail(exc)
        except OSError as exc:  # a file that cannot be read or written (a full disk): the folder is removed
            raise _error("BACKUP_FAILED", f"{exc}; nothing was kept in {target}") from None
        manifest = done.manifest
        click.echo(f"backup written to {target}: the database with a log of {manifest['log']['size']} entries and "
                   f"{manifest['batches']} batches, {sum(name.startswith('keys/') for name in manifest['files'])} "
                   f"keys; MANIFEST.json lists each file's SHA-256")
        if "KEY_PASSPHRASE" in manifest["needs"]:
            click.echo("it holds private keys encrypted under KEY_PASSPHRASE: keep it apart from the passphrase")
        else:  # a development instance: its generated passphrase is in its folder, and so in the copy
            click.echo("it holds private keys and the development passphrase they are encrypted under: keep it "
                       "as private as the instance")
        click.echo("restoring needs " + (", ".join(manifest["needs"]) + " as configured" if manifest["needs"]
                                         else "nothing more"))

    @app.cli.command("trust-list")
    @click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None)
    def trust_list_command(output: Path | None) -> None:
        """Write the signed trust list (for offline verification)."""
        with _session() as session:
            body = json.dumps(_registry(session).trust_list(), ensure_ascii=False, indent=1)
        if output:
            _write_atomically(output, body)
            click.echo(f"trust list written to {output}")
        else:
            click.echo(body)

    @app.cli.command("demo")
    def demo_command() -> None:
        """Load a demo producer with a certified key, batches and serials; print tokens and URLs."""
        from app.demo import load_demo

        init_instance(current_app)
        with _session() as session:
            lines = load_demo(_registry(session))
            session.commit()
        for line in lines:
            click.echo(line)


def _print_verification(body: dict, *, lang: str = "en") -> None:
    click.echo(f"verdict: {body['verdict']}")
    for reason in body.get("reasons", []):
        click.echo(f"  - {reason['code']}: {reason['message'][lang]}" + (f" ({reason['detail']})" if reason.get("detail") else ""))
    for note in body.get("notes", []):
        click.echo(f"  note {note['code']}: {note['message'][lang]}")
    code = body.get("code")
    if code:
        click.echo("  code: " + ", ".join(f"{k}={v}" for k, v in code.items() if v not in (None, "")))
    if body.get("product"):
        click.echo(f"  product: {body['product'].get('name')}")
    if body.get("scans"):
        click.echo(f"  verified {body['scans']['count']} times, first on {body['scans']['first_seen']}")


#: The endings of a photo's file name: an argument ending so that names no file is a mistyped path.
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic"})


def register_verify_cli(app: Flask) -> None:
    @app.cli.command("verify")
    @click.argument("image_or_text")
    @click.option("--json", "as_json", is_flag=True, help="print the same JSON as the API")
    @click.option("--offline", is_flag=True, help="no database, no network: check against a trust list")
    @click.option("--trust-list", "trust_list_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--authority-key", default=None,
                  help="the authority public key (base64url) the trust list must be signed with; "
                       "default: this instance's own authority key")
    def verify_command(image_or_text: str, as_json: bool, offline: bool, trust_list_file: Path | None,
                       authority_key: str | None) -> None:
        """Verify a photo (a file path) or a decoded text, online or --offline."""
        from verification.decoding import ImageRejected
        from verification.offline import TrustListError, TrustListLookup
        from verification.services import verify_image
        from verification.verdicts import ScanContext, Verifier

        from app.api.verify_routes import VerifyArgsSchema
        from app.presenters import image_verification_json, verification_json

        path = Path(image_or_text)
        try:
            is_file = path.is_file()
        except OSError:  # no file can have that name (a segment longer than 255 bytes): it is a text
            is_file = False
        if not is_file:  # the API's rule for a code (GET /verify): 1 to 4,096 characters
            _options(VerifyArgsSchema, {"code": image_or_text}, {"code": "IMAGE_OR_TEXT"})
            if path.suffix.lower() in PHOTO_SUFFIXES:  # a photo's name mistyped: not a code to read as text
                raise _error("READ_FAILED", f"no file {image_or_text}: to verify a photo, give its path; "
                                            "a code's text is not a file name")
        if trust_list_file is not None and not offline:  # it would have been ignored, the check run online
            raise click.UsageError("--trust-list is for --offline: add --offline, or leave the list out")
        if offline:
            if trust_list_file is None:
                raise click.UsageError("--offline needs --trust-list FILE (get it with `python -m app trust-list`)")
            # Never the list's own key: a list signed by anyone would be trusted (a forged list
            # made counterfeits 'genuine' offline). This instance's authority, or an explicit pin.
            authority_key = _trusted_authority_key(authority_key, "--offline needs the authority's public key "
                                                                  "to trust a list")
            try:
                document = json.loads(trust_list_file.read_text(encoding="utf-8"))
                lookup = TrustListLookup.from_document(document, pinned_authority_key=authority_key)
            except TrustListError as exc:
                raise _error(exc.code, f"trust list refused: {exc}") from None
            except (ValueError, AttributeError, OverflowError, RecursionError) as exc:
                # not JSON, not UTF-8, or a member of the wrong shape or range the reader does not expect
                raise _error(TrustListError.code, f"trust list refused: the trust list is malformed: "
                                                  f"{type(exc).__name__}: {exc}") from None
            except OSError as exc:
                raise _error("READ_FAILED", f"cannot read {trust_list_file}: {exc.strerror or exc}") from None
            verifier = Verifier(lookup=lookup, offline=True)
        else:
            from app.services import verification_reader
            from app.services import verifier as online_verifier

            _require_instance()
            verification_reader()
            verifier = online_verifier()
        context = ScanContext(channel="cli")
        if is_file:
            try:
                data = path.read_bytes()
            except OSError as exc:  # no permission, a disk error
                raise _error("READ_FAILED", f"cannot read {path}: {exc.strerror or exc}") from None
            if not data:  # as POST /verify/image answers an empty upload
                raise _error("IMAGE_EMPTY", f"{path} is empty")
            try:
                result = verify_image(verifier, data, context=context,
                                      max_pixels=current_app.config["MAX_IMAGE_PIXELS"])
            except ImageRejected as exc:
                raise click.ClickException(f"{exc.code.value}: {exc.message}") from None
            body = image_verification_json(result)
        else:
            body = verification_json(verifier.verify_text(image_or_text, context=context))
        if not offline:
            from app.services import close_session

            close_session()  # give back the reader's connection, then write the scan events before exiting
            current_app.extensions["scan_writer"].flush()
        if as_json:
            click.echo(json.dumps(body, ensure_ascii=False, indent=1))
            return
        if "codes" in body:
            click.echo(f"overall: {body['verdict']} ({len(body['codes'])} code(s))")
            for reason in body.get("reasons", []):
                click.echo(f"  - {reason['code']}: {reason['message']['en']}")
            for item in body["codes"]:
                click.echo(f"[{item['symbology']}] {item['text']}")
                _print_verification(item)
        else:
            _print_verification(body)
        if offline:
            click.echo(f"checked offline against the trust list issued {lookup.issued_at.isoformat()}; "
                       "recalls and key revocations made since then, and cloned serials, cannot be known offline")


def register_evidence_cli(app: Flask) -> None:
    @app.cli.command("evidence-check")
    @click.argument("evidence_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--authority-key", default=None,
                  help="the authority public key (base64url) the file must be signed with; "
                       "default: this instance's own authority key")
    @click.option("--json", "as_json", is_flag=True, help="print what the file attests as JSON")
    def evidence_check(evidence_file: Path, authority_key: str | None, as_json: bool) -> None:
        """Check an inspection's evidence file: its signature and its log checkpoint's, with the
        authority's key (never a key the file names). Exit status 0 only when both verify."""
        from registry.evidence import EvidenceRefused, check_evidence

        raw = b64url_decode(_trusted_authority_key(authority_key, "checking an evidence file needs the "
                                                                  "authority's public key"))
        try:
            document = json.loads(evidence_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise _error("READ_FAILED", f"cannot read {evidence_file}: {exc.strerror or exc}") from None
        except ValueError as exc:  # not UTF-8, not JSON
            raise _error(EvidenceRefused.code, f"{evidence_file} is not a JSON file: {exc}") from None
        try:
            attested = check_evidence(document, raw)
        except EvidenceRefused as exc:
            raise _error(exc.code, str(exc)) from None
        if as_json:
            click.echo(json.dumps({"valid": True, **attested}, ensure_ascii=False, indent=1))
            return
        tally = ", ".join(f"{n} {verdict}" for verdict, n in sorted(attested["verdicts"].items())) or "none"
        checkpoint = attested["checkpoint"] or {}
        click.echo(f"valid: signed by the authority; inspection {attested['inspection']} by "
                   f"{attested['inspector']} ({attested['started_at']} to {attested['closed_at'] or 'still open'}), "
                   f"{attested['checks']} checks ({tally}), {len(attested['photos'])} photos by SHA-256; "
                   f"issued {attested['issued_at']} against the log of size {checkpoint.get('size')}")
        if attested["received_after_close"]:
            click.echo("made offline before the close and received after it (absent from a file issued at the "
                       "close): checks " + ", ".join(str(i) for i in attested["received_after_close"]))


def _trusted_authority_key(given: str | None, why: str) -> str:
    """The authority public key (base64url) a command checks signatures with: ``--authority-key``,
    refused unless it is an Ed25519 public key, else this instance's own (``AUTHORITY_KEY_REQUIRED``
    without one, ``why`` saying what for)."""
    if given is None:
        own = _instance_authority_key()
        if own is None:
            raise _error("AUTHORITY_KEY_REQUIRED", f"{why}: give --authority-key (base64url; "
                                                   "authority.public_key in GET /api/v1/trust-list of the real service)")
        return own
    from keys.signing import public_key_from_raw

    try:
        public_key_from_raw(b64url_decode(given))
    except ValueError as exc:  # MalformedEncoding: not base64url, or not 32 bytes
        raise _error("BAD_AUTHORITY_KEY", "--authority-key is malformed: it must be the authority's "
                                          f"Ed25519 public key, 32 bytes in base64url ({exc})") from None
    return given


def _instance_authority_key() -> str | None:
    """This instance's authority public key (base64url), or None when it has none it can open."""
    from keys.encoding import b64url_encode
    from keys.errors import KeyStoreError

    try:
        return b64url_encode(current_app.extensions["keystore"].load(AUTHORITY_KEY_NAME).public_raw)
    except KeyStoreError:
        return None


def register_import_cli(app: Flask) -> None:
    @app.cli.command("import-batches")
    @click.argument("producer_id")
    @click.argument("jsonl_file", type=click.File("rb"))
    def import_batches(producer_id: str, jsonl_file) -> None:
        """Register many batches from a JSON-lines file (one POST /batches body per line): all or none."""
        text = _read_json_text(jsonl_file, jsonl_file.name)
        rows, names = [], []
        # Only "\n" ends a line: JSON text may hold U+2028 and the like unescaped.
        for number, line in enumerate(text.split("\n"), start=1):
            if line.strip():
                rows.append(_batch_body(_parse_json(line, f"line {number}"), f"line {number}: "))
                names.append(f"line {number}")  # what the registry's refusal names: blank lines skipped
        with _session() as session:
            click.echo(f"importing {len(rows)} batches", err=True)
            try:
                batches = _registry(session).register_batches(SYSTEM, rows, producer_id=producer_id, row_names=names)
            except RegistryError as exc:
                _fail(exc)
            except (CanonicalizationError, MalformedEncoding) as exc:
                raise _unsignable(exc) from None
            session.commit()
        click.echo(f"imported {len(batches)} batches")
