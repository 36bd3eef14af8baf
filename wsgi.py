"""The WSGI entry point (gunicorn -c gunicorn.conf.py wsgi:app)."""

import gc

from app import create_app

app = create_app()

# Move everything built at start-up (the GS1 dictionary, SQLAlchemy's metadata, Flask's routes:
# some 150,000 objects) out of the garbage collector's reach. Without this, each full collection
# walked them all and stalled a worker for about 100 ms, which set the p99 latency of GET /verify
# (bench/http_load.py); with it, the longest in-process pause measured was under 7 ms.
gc.collect()
gc.freeze()
