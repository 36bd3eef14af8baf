"""The reference for the HTTP load test: a minimal Flask JSON endpoint, nothing else.

Served by the same gunicorn configuration as the service (bench/http_load.py starts it with
``gunicorn -c gunicorn.conf.py --pythonpath bench minimal_app:app``). It answers the same path as
the verification endpoint, so one wrk script drives both, and it reads the query string as the
real endpoint does; it touches no database and checks no signature.
"""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/api/v1/verify")
def verify():
    return jsonify({"verdict": "genuine", "code_length": len(request.args.get("code", ""))})
