"""A private Dovecot 2.3 (IMAP and LMTP) for the suite: its own configuration, ports, users
and mail, all under one directory; nothing under /etc/dovecot is read.

IMAP listens in plain text on 127.0.0.1, LMTP on another port of the same host; given a
certificate (`TlsFiles`), also implicit TLS on a third port (and STARTTLS on the first).
Every account has Sent, Archive, Trash, Drafts and Junk, marked with their special-use flag
and created on first login. `add_user` adds users while Dovecot runs, so each test can log
in as a user of its own; `seed` writes a user's INBOX straight to disk before their first
login (50,000 messages in seconds, where APPEND takes minutes). Stdlib only (Dovecot is
installed by scripts/ensure-services.sh).
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.support.wait import wait_for

HOST = "127.0.0.1"
# Folder -> its special-use flag (RFC 6154); Dovecot creates and subscribes them on login.
SPECIAL_FOLDERS = {
    "Sent": "\\Sent",
    "Archive": "\\Archive",
    "Trash": "\\Trash",
    "Drafts": "\\Drafts",
    "Junk": "\\Junk",
}
# User names: lower case, as Dovecot lower-cases logins and recipients (%Ln) before looking
# them up, and safe as the names of the user's passwd-file and mail directory.
_USER_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


@dataclass(frozen=True)
class TlsFiles:
    """A PEM certificate (chain) and its private key, for Dovecot's TLS listener."""

    cert: Path
    key: Path


@dataclass
class Dovecot:
    """A running Dovecot: IMAP on host:port, LMTP on host:lmtp_port, its log at log_path;
    implicit TLS on host:tls_port when it was started with a certificate."""

    host: str
    port: int
    lmtp_port: int
    base_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    output: IO[bytes] = field(repr=False)  # the master's stdout and stderr (config errors)
    tls_port: int | None = None

    def maildir(self, name: str) -> Path:
        return self.base_dir / "mail" / name

    def seed(self, name: str, messages: Iterable[tuple[bytes, float, bool]]) -> int:
        """Write (message, arrival time, read) into the user's INBOX, as files Dovecot
        finds on the user's next login; returns how many. For a user who has not logged
        in yet: Dovecot reads a new Maildir whole on first use, but a running session
        would not expect files it did not write. Owned by the mail user, as Dovecot's own
        files are (root runs Dovecot's mail processes as another user)."""
        inbox = self.maildir(name)
        owner = (self.base_dir / "mail").stat()
        chown = os.getuid() == 0 and owner.st_uid != 0
        made = [inbox, *(inbox / sub for sub in ("cur", "new", "tmp"))]
        for directory in made:
            directory.mkdir(parents=True, exist_ok=True)
        count = 0
        for count, (data, arrived, read) in enumerate(messages, 1):
            flags = "S" if read else ""
            path = inbox / "cur" / f"{int(arrived)}.M{count}P{os.getpid()}.seed:2,{flags}"
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(descriptor, data)
                if chown:
                    os.fchown(descriptor, owner.st_uid, owner.st_gid)
            finally:
                os.close(descriptor)
            os.utime(path, (arrived, arrived))  # the message's INTERNALDATE
        if chown:
            for directory in made:
                os.chown(directory, owner.st_uid, owner.st_gid)
        return count

    def add_user(self, name: str, password: str) -> None:
        """Add a user who can log in over IMAP and receive mail over LMTP at once.

        Each user has a passwd-file of their own, users/<name>. One file for all would not
        do: Dovecot looks at a passwd-file at most once a second, so a user added in the
        second of the last lookup would be unknown until the next. A file Dovecot has not
        seen is read on its first lookup; a missing one is not remembered."""
        if not _USER_NAME.fullmatch(name):
            raise ValueError(f"user name {name!r} must match {_USER_NAME.pattern}")
        if any(character in password for character in ":\n\r"):
            raise ValueError("a passwd-file password cannot hold ':' or a line break")
        path = self.base_dir / "users" / name
        if path.exists():
            raise ValueError(f"user {name!r} already exists")
        # uid and gid left empty: mail_uid and mail_gid apply (passwd-file refuses uid 0).
        _replace_file(path, f"{name}:{{PLAIN}}{password}::::{self.maildir(name)}\n")

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the log, and whatever the master printed (configuration errors
        are printed before the log is opened)."""
        parts = []
        for path in (self.log_path, Path(self.output.name)):
            tail = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
            if tail:
                parts.append(f"--- {path}\n" + "\n".join(tail))
        return "\n".join(parts) or "(Dovecot wrote nothing)"

    def greets(self) -> bool:
        """Whether IMAP answers with its `* OK` greeting; fails at once if Dovecot is dead.

        A connect alone is not enough: when the login processes cannot start, the master
        keeps the port open and restarts them, but nothing ever greets."""
        if not self.alive():
            raise AssertionError(f"dovecot exited with code {self.process.returncode}")
        if self.log_path.exists() and b"Fatal:" in self.log_path.read_bytes():
            raise AssertionError("dovecot logged a Fatal error")
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as connection:
                connection.settimeout(1)
                greeting = connection.recv(1024)
                connection.sendall(b"a LOGOUT\r\n")
        except OSError:
            return False
        return greeting.startswith(b"* OK")

    def stop(self) -> None:
        """SIGTERM to the master, which takes its children down; SIGKILL if it hangs."""
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        # Whatever of its group outlived the master (it runs in a session of its own).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.output.close()


def start_dovecot(base_dir: Path, timeout: float = 15.0, *, tls: TlsFiles | None = None) -> Dovecot:
    """Write a configuration under base_dir, start `dovecot -F` and wait for its greeting."""
    version = installed_version()
    base_dir = base_dir.resolve()
    for name in ("run", "state", "mail", "users"):
        (base_dir / name).mkdir(parents=True, exist_ok=True)
    accounts = _accounts(base_dir)
    port, lmtp_port = _free_port(), _free_port()
    tls_port = _free_port() if tls is not None else None
    config = base_dir / "dovecot.conf"
    config.write_text(_config(base_dir, version, port, lmtp_port, accounts, tls, tls_port))

    output = (base_dir / "dovecot.out").open("ab")
    process = subprocess.Popen(
        [_binary(), "-F", "-c", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stop() signals only Dovecot
    )
    log_path = base_dir / "dovecot.log"
    dovecot = Dovecot(HOST, port, lmtp_port, base_dir, log_path, process, output, tls_port)
    try:
        wait_for(dovecot.greets, timeout=timeout, what=f"Dovecot to greet on {HOST}:{port}")
    except AssertionError as error:
        dovecot.stop()
        raise AssertionError(f"Dovecot did not start: {error}\n{dovecot.log_tail()}") from None
    except BaseException:
        dovecot.stop()
        raise
    return dovecot


def installed_version() -> str:
    """Dovecot's version ("2.3.19.1"); refuses 2.4 and later, whose settings differ."""
    result = subprocess.run([_binary(), "--version"], capture_output=True, text=True, check=True)
    version = result.stdout.split()[0]
    major, minor = (int(part) for part in version.split(".")[:2])
    if (major, minor) >= (2, 4):
        raise RuntimeError(
            f"Dovecot {version} is installed, but tests/support/dovecot.py writes a 2.3 "
            "configuration (2.4 renamed mail_location, disable_plaintext_auth and the "
            "passdb/userdb blocks): install Dovecot 2.3 (Debian 12's dovecot-imapd and "
            "dovecot-lmtpd), or port the configuration"
        )
    return version


@dataclass(frozen=True)
class _Accounts:
    """Who Dovecot's processes run as."""

    internal_user: str  # the master's helpers (auth, anvil, ...)
    internal_group: str
    login_user: str  # imap-login
    mail_uid: int  # imap and lmtp, once a user is known
    mail_gid: int


def _accounts(base_dir: Path) -> _Accounts:
    """Not root: everything runs as the current user. Root: Dovecot refuses root for its
    login processes ("This process must not be run as root") and for mail access ("Mail
    access not allowed for root"), so those run as dovenull and nobody, who own the mail."""
    uid, gid = os.getuid(), os.getgid()
    user, group = pwd.getpwuid(uid).pw_name, grp.getgrgid(gid).gr_name
    if uid != 0:
        return _Accounts(user, group, user, uid, gid)
    login = _first_user("dovenull", "nobody")
    mail = _first_user("nobody")
    _let_through(base_dir)
    os.chown(base_dir / "mail", mail.pw_uid, mail.pw_gid)
    return _Accounts(user, group, login.pw_name, mail.pw_uid, mail.pw_gid)


def _let_through(base_dir: Path) -> None:
    """Let the unprivileged processes reach base_dir: search permission (not read) on it
    and on every directory above it that lacks it, such as pytest's private temporary root
    (mode 0700). For the group too: Dovecot's mail processes keep root's supplementary
    group 0, so on root's directories the group bits are the ones that count for them."""
    for directory in (base_dir, *base_dir.parents):
        mode = directory.stat().st_mode
        if mode & 0o011 != 0o011:
            directory.chmod(mode | 0o011)


def _first_user(*names: str) -> pwd.struct_passwd:
    for name in names:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError(f"Dovecot run as root needs one of these users: {', '.join(names)}")


def _binary() -> str:
    found = shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/sbin")
    if found is None:
        raise RuntimeError("Dovecot is not installed: run scripts/ensure-services.sh")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _replace_file(path: Path, text: str) -> None:
    """Write path whole, mode 0600 (it holds a password), by a rename: never seen half written."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(descriptor, "w") as file:  # mkstemp creates it with mode 0600
        file.write(text)
    os.replace(temporary, path)


def _config(
    base: Path,
    version: str,
    port: int,
    lmtp_port: int,
    accounts: _Accounts,
    tls: TlsFiles | None = None,
    tls_port: int | None = None,
) -> str:
    mailboxes = "".join(
        f"  mailbox {name} {{\n    special_use = {flag}\n    auto = subscribe\n  }}\n"
        for name, flag in SPECIAL_FOLDERS.items()
    )
    # Dovecot reads the files when it starts ("<path"), as whoever starts it.
    ssl = f"yes\nssl_cert = <{tls.cert}\nssl_key = <{tls.key}" if tls is not None else "no"
    imaps = f"address = {HOST}\n    port = {tls_port}" if tls_port is not None else "port = 0"
    return f"""\
# Dovecot {version} for one test run: generated by tests/support/dovecot.py.
base_dir = {base}/run
state_dir = {base}/state
# Its own instance name: doveadm and a system Dovecot never mistake it for theirs.
instance_name = dovecot-test-{port}
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
debug_log_path = {base}/dovecot.log
protocols = imap lmtp
listen = {HOST}
shutdown_clients = yes
ssl = {ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {accounts.internal_user}
default_internal_group = {accounts.internal_group}
default_login_user = {accounts.login_user}
mail_uid = {accounts.mail_uid}
mail_gid = {accounts.mail_gid}
first_valid_uid = {accounts.mail_uid}
last_valid_uid = {accounts.mail_uid}
first_valid_gid = {accounts.mail_gid}
last_valid_gid = {accounts.mail_gid}
mail_location = maildir:{base}/mail/%u
# Logins and recipients name the user by the address's local part, lower-cased.
auth_username_format = %Ln
recipient_delimiter = +
lmtp_save_to_detail_mailbox = no

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {base}/users/%n
}}
userdb {{
  driver = passwd-file
  args = username_format=%n {base}/users/%n
}}

# No chroot: that needs root, and the tests run as any user.
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {HOST}
    port = {port}
  }}
  inet_listener imaps {{
    {imaps}
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0600
  }}
  inet_listener lmtp {{
    address = {HOST}
    port = {lmtp_port}
  }}
}}
service anvil {{
  chroot =
}}
service auth {{
  unix_listener auth-userdb {{
    mode = 0600
  }}
}}

namespace inbox {{
  inbox = yes
  separator = /
  prefix =
{mailboxes}}}

# Tests open many connections from one address.
protocol imap {{
  mail_max_userip_connections = 100
}}
"""
