"""An in-process S3 server (moto) for tests that need a real S3 endpoint.

Not a conftest: import it where needed, e.g. the storage tests and the
end-to-end test.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from moto.server import ThreadedMotoServer

# moto in server mode accepts any credentials.
S3_TEST_CREDENTIALS = ("testing", "testing")


@contextmanager
def moto_s3_server() -> Iterator[str]:
    """Run moto's S3 on 127.0.0.1 and a free port; yield ``"127.0.0.1:PORT"``.

    The server binds port 0 itself (the OS picks a free port) and reports it,
    so no other process can grab the port between choosing and binding it.
    Buckets live in process memory (shared by every moto server in the
    process); the server is stopped on exit.
    """
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"{host}:{port}"
    finally:
        server.stop()
