"""The TLS context that IMAP and SMTP connections verify their servers with.

`ssl.create_default_context()` loads the system's CA certificates every time: about
28 ms of CPU, more than a whole IMAP job's own work when each job made one. It is made
once per trust setting instead: what it reads of the environment (OpenSSL's default
verify paths, SSL_CERT_FILE and SSL_CERT_DIR) keys the context kept. A context is
shared by any number of connections and threads.
"""

from __future__ import annotations

import os
import ssl
from functools import lru_cache


def client_context() -> ssl.SSLContext:
    return _context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@lru_cache(maxsize=4)
def _context(_cert_file: str | None, _cert_dir: str | None) -> ssl.SSLContext:
    """The arguments only key the cache: create_default_context reads them itself."""
    return ssl.create_default_context()
