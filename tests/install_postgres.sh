#!/usr/bin/env bash
# PostgreSQL server binaries for the shared-gallery tests (Debian packages). No-op when present.
# Nothing is started here: benchmarks/postgres_server.py starts a private, throw-away cluster per test run
# (initdb in a temporary folder, Unix socket only, no TCP), and stops it afterwards.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null; then
    exit 0
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
# postgresql-common's postinst would create and start a system-wide cluster: suppress it, ours is private.
$SUDO mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/facelab-tests.conf >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
