"""Run localstripe on 127.0.0.1 only, in memory only.

    python tests/localstripe_server.py --port 8420

Differences from ``localstripe`` / ``python -m localstripe``:

* ``localstripe.resources.Store.dump_to_disk`` is replaced by a no-op (upstream pickles the
  whole store to /tmp/localstripe.pickle after every POST/DELETE) and nothing is loaded from
  disk, so every run starts empty and concurrent runs never share state;
* the socket is IPv4 bound to 127.0.0.1 only (upstream binds ``::`` on all interfaces);
* no access log.

Use ``tests.servers.localstripe()`` to run it from tests.
"""

from __future__ import annotations

import argparse
import logging
import socket


def patch_store() -> None:
    from localstripe import resources

    resources.Store.dump_to_disk = lambda self: None
    resources.Store.try_load_from_disk = lambda self: None


def make_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--host", default="127.0.0.1",
                        help="IPv4 address to bind (default 127.0.0.1)")
    args = parser.parse_args(argv)

    patch_store()
    from aiohttp import web
    from localstripe.server import app

    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    sock = make_socket(args.host, args.port)
    web.run_app(app, sock=sock, print=None, access_log=None, handle_signals=True)


if __name__ == "__main__":
    main()
