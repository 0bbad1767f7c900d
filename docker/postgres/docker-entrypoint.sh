#!/bin/sh
# Initialise PGDATA on first start (trust or password auth), then run the server as postgres.
set -eu
if [ "${1:-}" = "postgres" ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 0700 "$PGDATA"
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
        pwfile=""
        if [ -n "${POSTGRES_PASSWORD:-}" ]; then
            pwfile="$(mktemp)"
            printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
            chown postgres "$pwfile"
        elif [ "$auth" != "trust" ]; then
            echo "docker-entrypoint: set POSTGRES_PASSWORD or POSTGRES_HOST_AUTH_METHOD=trust" >&2
            exit 1
        fi
        runuser -u postgres -- initdb -D "$PGDATA" -U "${POSTGRES_USER:-postgres}" \
            --encoding=UTF8 --locale=C ${pwfile:+--pwfile="$pwfile"} >/dev/null
        [ -z "$pwfile" ] || rm -f "$pwfile"
        printf 'listen_addresses = '"'"'*'"'"'\n' >>"$PGDATA/postgresql.conf"
        printf 'host all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
    fi
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$@"
fi
exec "$@"
