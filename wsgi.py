"""The WSGI entry point (gunicorn -c gunicorn.conf.py wsgi:app).

gunicorn loads this module once in its master (``preload_app``) and forks the workers from it.
"""

import contextlib
import gc
import os

from app import create_app
from keys.errors import KeyStoreError
from registry.services import AUTHORITY_KEY_NAME

app = create_app()

# The authority key, opened here in the master: every worker forked from it has it open. While
# `keys rewrap` moves the key folder to a new passphrase (README, "Configuration"), a worker that
# restarts on a server still given the old one (max_requests, a timeout) then still signs and is
# ready, as the workers it replaces were, until the server itself restarts with the new one. A key
# missing or not opened here is /readyz's to report (signing_keys), as without this.
_keystore = app.extensions["keystore"]
if _keystore.has(AUTHORITY_KEY_NAME):
    with contextlib.suppress(KeyStoreError):
        _keystore.load(AUTHORITY_KEY_NAME)


def _in_each_worker() -> None:
    """A forked worker opens its own database connections: the pools' connections (none are
    opened at start-up, this is the guard) stay the parent's (SQLAlchemy, "Using Connection Pools
    with Multiprocessing")."""
    for name in ("engine", "read_engine"):
        app.extensions[name].dispose(close=False)


os.register_at_fork(after_in_child=_in_each_worker)

# Move everything built at start-up (the GS1 dictionary, SQLAlchemy's metadata, Flask's routes:
# some 150,000 objects) out of the garbage collector's reach. Without this, each full collection
# walked them all and stalled a worker for about 100 ms, which set the p99 latency of GET /verify
# (bench/http_load.py); with it, the longest in-process pause measured was under 7 ms. Frozen
# before the fork, those pages also stay shared between the workers.
gc.collect()
gc.freeze()
