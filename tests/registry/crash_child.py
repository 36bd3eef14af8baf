"""Child process for the crash-safety test: starts a long write and is killed half way by the parent."""

from __future__ import annotations

import json
import sys

from app import create_app
from registry.services import SYSTEM, Registry


def main() -> None:
    config, task = json.loads(sys.argv[1]), sys.argv[2]
    app = create_app(config)
    with app.app_context():
        session = app.extensions["session_factory"]()
        registry = Registry(session, keystore=app.extensions["keystore"], base_url="https://x.example")
        print("begin", flush=True)
        if task == "serials":
            registry.issue_serials(SYSTEM, sys.argv[3], sys.argv[4], 100_000)
        else:
            with open(sys.argv[3], encoding="utf-8") as fh:
                rows = json.load(fh)
            registry.register_batches(SYSTEM, rows, producer_id=sys.argv[4])
        print("flushed", flush=True)
        session.commit()
        print("committed", flush=True)


if __name__ == "__main__":
    main()
