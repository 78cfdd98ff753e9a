"""Hosts of their own on one machine, for drills: a network namespace per "host" on a
Linux bridge in the root namespace, and what they need to share one Redis and one
PostgreSQL.

`Network()` makes the bridge, with the root namespace's address on it (`gateway`), on a
/24 subnet that no other run holds; `add_host()` makes a namespace with a veth pair
from it to the bridge. A host's processes are started with `Host.command`
(`ip netns exec NAME ...`) and reach only what listens on the gateway: the machine's
own services listen on 127.0.0.1, so the drill starts a Redis bound to the gateway and
forwards PostgreSQL to it (`Forwarder`). `Host.cut()` takes the root end of the host's
veth down: its packets are dropped both ways, its TCP connections stay open but nothing
passes, as when a host's cable or switch port fails; `restore()` brings it back.

Names carry a token of the run, and each run claims its subnet with a directory under
CLAIMS (made atomically, with the owner's pid and start time), so two runs never share
a name or an address. `close()` removes everything, and a network whose owner died
without closing it (SIGKILL) is removed by the next run that creates one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.tcp_proxy import TcpProxy

CLAIMS = Path("/run/jobbridge-netns")
PREFIX = "jbd"  # every bridge, veth and namespace name starts with it (names <= 15 bytes)


def ip(*arguments: str) -> None:
    """Run `ip` with these arguments; fail with its own words."""
    result = subprocess.run(["ip", *arguments], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(arguments)}: {result.stderr.strip()}")


def unavailable_reason() -> str | None:
    """Why network namespaces cannot be made here, or None: tries `ip netns add` once."""
    if os.geteuid() != 0:
        return f"network namespaces need root (`ip netns add`); running as uid {os.geteuid()}"
    if shutil.which("ip") is None:
        return "network namespaces need iproute2's `ip`, which is not installed"
    probe = f"{PREFIX}probe{secrets.token_hex(3)}"
    try:
        ip("netns", "add", probe)
    except RuntimeError as error:
        return f"cannot create a network namespace: {error}"
    ip("netns", "del", probe)
    return None


@dataclass(frozen=True)
class Host:
    """A network namespace with one address on the drill's bridge."""

    namespace: str
    address: str
    link: str  # the veth end in the root namespace, on the bridge

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside this host's network namespace (ip execs it: same pid)."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def cut(self) -> None:
        """Drop every packet to and from the host, as a failed link does."""
        ip("link", "set", self.link, "down")

    def restore(self) -> None:
        ip("link", "set", self.link, "up")

    def reaches(self, address: str, port: int, timeout: float = 2.0) -> bool:
        """Whether a TCP connection from inside the host to address:port succeeds."""
        probe = (
            "import socket; "
            f"socket.create_connection(({address!r}, {port}), timeout={timeout}).close()"
        )
        result = subprocess.run(
            self.command([sys.executable, "-c", probe]), capture_output=True, check=False
        )
        return result.returncode == 0

    def runs(self, pid: int) -> bool:
        """Whether process `pid` lives in this host's network namespace."""
        try:
            theirs = os.readlink(f"/proc/{pid}/ns/net")
        except OSError:
            return False
        return theirs == f"net:[{os.stat(f'/run/netns/{self.namespace}').st_ino}]"


class Network:
    """A bridge in the root namespace and the hosts on it; a context manager."""

    def __init__(self) -> None:
        _remove_abandoned()
        self.token = secrets.token_hex(3)
        self.bridge = f"{PREFIX}{self.token}br"
        self.hosts: list[Host] = []
        self._claim, self._subnet = _claim_subnet(self.bridge)
        self.gateway = f"{self._subnet}.1"
        try:
            ip("link", "add", self.bridge, "type", "bridge")
            ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
        except BaseException:
            self.close()
            raise

    def add_host(self) -> Host:
        number = len(self.hosts) + 1
        host = Host(
            namespace=f"{PREFIX}{self.token}h{number}",
            address=f"{self._subnet}.{number + 1}",
            link=f"{PREFIX}{self.token}v{number}",
        )
        self.hosts.append(host)  # first: close() removes whatever of it was made
        _record(self._claim, self.bridge, self.hosts)
        ip("netns", "add", host.namespace)
        # The peer is made inside the namespace, where it is called eth0.
        ip(
            "link",
            "add",
            host.link,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            host.namespace,
        )
        ip("link", "set", host.link, "master", self.bridge)
        ip("link", "set", host.link, "up")
        ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
        ip("-n", host.namespace, "link", "set", "eth0", "up")
        ip("-n", host.namespace, "link", "set", "lo", "up")
        return host

    def close(self) -> None:
        """Remove every link, namespace and the bridge; what is already gone is skipped.
        Processes started in the namespaces are the caller's to stop first."""
        _remove(self.bridge, [(host.link, host.namespace) for host in self.hosts])
        shutil.rmtree(self._claim, ignore_errors=True)

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Forwarder(TcpProxy):
    """tests/support/tcp_proxy.py's proxy, listening on `bind_host` instead of 127.0.0.1:
    how the hosts reach a service of the machine that listens on loopback only."""

    def __init__(self, bind_host: str, target_host: str, target_port: int) -> None:
        self.bind_host = bind_host
        super().__init__(target_host, target_port)

    @property
    def address(self) -> str:
        return f"{self.bind_host}:{self.port}"

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._relay, self.bind_host, self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])


# Subnets and their claims ------------------------------------------------------------


def _claim_subnet(bridge: str) -> tuple[Path, str]:
    """A 10.x.y.0/24 no interface of the machine uses and no live run has claimed."""
    CLAIMS.mkdir(parents=True, exist_ok=True)
    in_use = subprocess.run(
        ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    for _ in range(200):
        subnet = f"10.{random.randint(200, 254)}.{random.randint(0, 255)}"
        if f" {subnet}." in in_use:
            continue
        claim = CLAIMS / subnet
        try:
            claim.mkdir()  # atomic: of two runs picking the same subnet, one gets it
        except FileExistsError:
            continue
        _record(claim, bridge, [])
        return claim, subnet
    raise RuntimeError(f"no free 10.x.y.0/24 subnet found to claim under {CLAIMS}")


def _record(claim: Path, bridge: str, hosts: list[Host]) -> None:
    owner = {
        "pid": os.getpid(),
        "started": _start_time(os.getpid()),
        "bridge": bridge,
        "links": [[host.link, host.namespace] for host in hosts],
    }
    partial = claim / "owner.tmp"
    partial.write_text(json.dumps(owner))
    os.replace(partial, claim / "owner.json")


def _start_time(pid: int) -> str | None:
    """The process's start time (field 22 of its stat), which tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _remove_abandoned() -> None:
    """Remove the networks of runs that died without closing theirs."""
    if not CLAIMS.is_dir():
        return
    for claim in CLAIMS.iterdir():
        try:
            owner = json.loads((claim / "owner.json").read_text())
        except (OSError, ValueError):
            continue  # being made right now, or not ours to judge
        if _start_time(int(owner["pid"])) == owner["started"]:
            continue  # its owner is alive
        _remove(str(owner["bridge"]), [(str(link), str(ns)) for link, ns in owner["links"]])
        shutil.rmtree(claim, ignore_errors=True)


def _remove(bridge: str, links: list[tuple[str, str]]) -> None:
    for link, namespace in links:
        with contextlib.suppress(RuntimeError):
            ip("link", "del", link)  # deletes its peer in the namespace too
        with contextlib.suppress(RuntimeError):
            ip("netns", "del", namespace)
    with contextlib.suppress(RuntimeError):
        ip("link", "del", bridge)
