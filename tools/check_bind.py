"""Stop ``make run`` before it touches the demo when its address is taken.

    python tools/check_bind.py        # checks BIND (default 127.0.0.1:8000), as gunicorn.conf.py reads it

``make run`` loads the demo (fresh tokens and portal passwords) and only then starts gunicorn: with
a server already listening there, the new passwords were printed, the running server's accounts
changed under it, and gunicorn then failed with "Connection in use". Exit status 1, with the
address and what to do, when the address cannot be bound; 0 when it can.
"""

from __future__ import annotations

import os
import socket
import sys


def main() -> int:
    bind = os.environ.get("BIND", "127.0.0.1:8000")
    if bind.startswith("unix:"):
        return 0  # a socket file: gunicorn itself says whether it is free
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit():
        print(f"Error: BIND must be host:port, got {bind!r}", file=sys.stderr)
        return 1
    host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host, int(port)))
        except OSError as exc:
            print(f"Error: {bind} is in use ({exc.strerror}): stop the server there, or choose another "
                  f"address, e.g. BIND=127.0.0.1:8001 make run", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
