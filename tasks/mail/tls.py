"""The TLS contexts that mail connections verify their servers with: IMAP and SMTP
(`client_context`, the system's CA certificates) and the Microsoft Graph API
(`http_context`, httpx's own choice: certifi's).

Making one loads the CA certificates: about 28 ms of CPU, more than a whole IMAP job's
own work when each job made its own. Each is made once per trust setting instead: what
it reads of the environment (SSL_CERT_FILE and SSL_CERT_DIR) keys the context kept. A
context is shared by any number of connections and threads.
"""

from __future__ import annotations

import os
import ssl
from functools import lru_cache

import httpx


def client_context() -> ssl.SSLContext:
    return _client_context(*_trust_setting())


def http_context() -> ssl.SSLContext:
    """What `httpx.Client()` would make for itself (verify=True, trust_env=True)."""
    return _http_context(*_trust_setting())


def _trust_setting() -> tuple[str | None, str | None]:
    return os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")


# The arguments only key the caches: the functions read the environment themselves.
@lru_cache(maxsize=4)
def _client_context(_cert_file: str | None, _cert_dir: str | None) -> ssl.SSLContext:
    return ssl.create_default_context()


@lru_cache(maxsize=4)
def _http_context(_cert_file: str | None, _cert_dir: str | None) -> ssl.SSLContext:
    return httpx.create_ssl_context()
