"""An SMTP server on 127.0.0.1 that takes mail only after a login (AUTH PLAIN or LOGIN
with one user and password), over plain text: a test of the client's login, not of TLS.
It keeps the logins tried and the messages accepted; it delivers nowhere."""

from __future__ import annotations

import threading
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.services import free_port

HOST = "127.0.0.1"


class LoginSmtpServer:
    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password
        self.logins: list[str] = []  # the user names tried, in order
        self.accepted: list[Envelope] = []
        self._lock = threading.Lock()
        self._controller = Controller(
            self,
            hostname=HOST,
            port=free_port(),
            authenticator=self._authenticate,
            auth_required=True,
            auth_require_tls=False,  # a loopback test server: the login is what is tested
        )
        self.host, self.port = HOST, int(self._controller.port)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        # handled=False: aiosmtpd answers a refusal with its 535 (True: we would have).
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        with self._lock:
            self.logins.append(data.login.decode())
        ok = data.login.decode() == self.username and data.password.decode() == self.password
        return AuthResult(success=ok, handled=False)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            self.accepted.append(envelope)
        return "250 OK"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
