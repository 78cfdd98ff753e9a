#!/usr/bin/env bash
# Make sure Redis (127.0.0.1:6379), PostgreSQL (127.0.0.1:5432, trust auth) and RabbitMQ
# (127.0.0.1:5672, guest/guest) answer. Starts them if installed but stopped; installs them
# from Debian's packages if missing (needs root, as in CI; the RabbitMQ tests also run
# rabbitmqctl, which needs root). Dovecot is only installed: each test session starts its
# own (tests/support/dovecot.py). Prints one line per service.
set -euo pipefail

redis_up() { python3 - <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", 6379), timeout=1); s.sendall(b"PING\r\n")
    sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
PY
}
postgres_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
# Up means it speaks AMQP, not merely that the port is open: it answers the protocol
# header with a method frame (Connection.Start).
rabbitmq_up() { python3 - <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", 5672), timeout=1); s.settimeout(2)
    s.sendall(b"AMQP\x00\x00\x09\x01")
    sys.exit(0 if s.recv(1) == b"\x01" else 1)
except OSError:
    sys.exit(1)
PY
}
# Up to $2 tries (default 60), half a second apart.
wait_for() { for _ in $(seq 1 "${2:-60}"); do "$1" && return 0; sleep 0.5; done; return 1; }
apt_install() {
  if [ "$(id -u)" != 0 ]; then echo "need root to install $*" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "$@" >/dev/null
}
# Install without the packages starting their service: a policy-rc.d that answers 101
# forbids it (Docker images ship one; elsewhere one is put in place for the install).
apt_install_without_starting() {
  if [ -e /usr/sbin/policy-rc.d ]; then apt_install "$@"; return; fi
  if [ "$(id -u)" != 0 ]; then echo "need root to install $*" >&2; exit 1; fi
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt_install "$@"
  rm -f /usr/sbin/policy-rc.d
  trap - EXIT
}
dovecot_installed() {
  for package in dovecot-imapd dovecot-lmtpd; do
    [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" = "install ok installed" ] || return 1
  done
}

if ! redis_up; then
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for redis_up || { echo "redis did not start" >&2; exit 1; }
fi
echo "redis: up on 127.0.0.1:6379"

if ! postgres_up; then
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  version=$(ls /etc/postgresql | sort -n | tail -1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  # Tests connect as postgres over TCP without a password, as on the prepared machines.
  grep -q "^host all all 127.0.0.1/32 trust" "$hba" || \
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for postgres_up || { echo "postgresql did not start" >&2; exit 1; }
fi
echo "postgresql: up on 127.0.0.1:5432"

if ! rabbitmq_up; then
  # Installed without starting: the package's own start needs an init system.
  command -v rabbitmq-server >/dev/null || apt_install_without_starting rabbitmq-server
  RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 rabbitmq-server -detached
  # An Erlang node takes a few seconds to boot, more on a loaded machine.
  wait_for rabbitmq_up 120 || { echo "rabbitmq did not start" >&2; exit 1; }
fi
echo "rabbitmq: up on 127.0.0.1:5672"

if ! dovecot_installed; then
  apt_install_without_starting --no-install-recommends dovecot-imapd dovecot-lmtpd
fi
dovecot=$(command -v dovecot || echo /usr/sbin/dovecot)
echo "dovecot: installed ($("$dovecot" --version | cut -d' ' -f1))"
