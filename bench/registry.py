"""Registrations and serial issuance per second, beside the raw Ed25519 signing rate of this run.

    python bench/registry.py [--postgres URL] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date, timedelta

from common import ed25519_rates, pin_one_core, temp_instance_config

from app import create_app
from app.cli import init_instance
from registry.db import Base
from registry.services import SYSTEM, Registry


def _batch(i: int) -> dict:
    today = date.today()
    return {"gtin": "08936000010010", "lot": f"B{i:07d}", "product": {"name": "Cà phê"},
            "facility": {"name": "Xưởng"}, "production_date": (today - timedelta(days=1)).isoformat(),
            "expiry_date": (today + timedelta(days=365)).isoformat(), "quantity": 10}


def measure(database_url: str | None, *, registrations: int = 500, serials: int = 100_000) -> dict:
    cfg = temp_instance_config(database_url)
    app = create_app(cfg)
    engine = app.extensions["engine"]
    if database_url:
        with engine.begin() as conn:
            Base.metadata.drop_all(conn)
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    init_instance(app)
    factory = app.extensions["session_factory"]
    with factory() as session:
        reg = Registry(session, keystore=app.extensions["keystore"], base_url=cfg["BASE_URL"])
        producer = reg.admit_producer(SYSTEM, name="Bench", tax_code="0312345673", gs1_prefixes=["893600001"],
                                      country="VN")
        reg.certify_key(SYSTEM, producer.id)
        session.commit()
        start = time.perf_counter()
        for i in range(registrations):  # one request's work each: sign, log, checkpoint, commit
            reg.register_batch(SYSTEM, _batch(i), producer_id=producer.id)
            session.commit()
        reg_rate = registrations / (time.perf_counter() - start)
        start = time.perf_counter()
        reg.issue_serials(SYSTEM, "08936000010010", "B0000000", serials)
        session.commit()
        serial_rate = serials / (time.perf_counter() - start)
    if database_url:
        with engine.begin() as conn:
            Base.metadata.drop_all(conn)
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    engine.dispose()
    return {"registrations_per_s": reg_rate, "serials_per_s": serial_rate, "serials_in_one_request": serials}


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", default=None, help="also measure on this PostgreSQL URL")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    pin_one_core()
    results = {"ed25519": ed25519_rates(), "sqlite": measure(None)}
    if args.postgres:
        results["postgresql"] = measure(args.postgres)
    sign = results["ed25519"]["sign_per_s"]
    print(f"raw Ed25519 (pyca/cryptography, one core): {sign:,.0f} signs/s, "
          f"{results['ed25519']['verify_per_s']:,.0f} verifies/s")
    print("| database | registrations/s | serials/s (100,000 in one request) | serials / raw signing |")
    print("|---|---|---|---|")
    for db in ("sqlite", "postgresql"):
        if db in results:
            r = results[db]
            print(f"| {db} | {r['registrations_per_s']:,.0f} | {r['serials_per_s']:,.0f} | "
                  f"{r['serials_per_s'] / sign:.2f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return results


if __name__ == "__main__":
    main()
