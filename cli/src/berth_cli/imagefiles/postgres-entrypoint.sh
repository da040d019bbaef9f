#!/bin/sh
# The entry point of Berth's local PostgreSQL image (Debian's postgresql package): the contract of the
# official image, so that the image map can stand in for ``postgres:15``. POSTGRES_PASSWORD (required on
# first start), POSTGRES_USER (postgres), POSTGRES_DB (the user's name), PGDATA (/var/lib/postgresql/data);
# arguments starting with "-" are options for the server.
set -eu
BIN=$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)
export PATH="$BIN:$PATH"
export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
  exec "$@"
fi
shift
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" postgres "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required to initialise the database}" > "$pwfile"
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" > /dev/null
  rm -f "$pwfile"
  printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    postgres -D "$PGDATA" -c listen_addresses='' -k /var/run/postgresql &
    pid=$!
    until pg_isready -q -h /var/run/postgresql; do sleep 0.2; done
    echo 'CREATE DATABASE :"db";' | psql -q -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres \
      -v ON_ERROR_STOP=1 -v db="$POSTGRES_DB"
    kill "$pid"
    wait "$pid" || true
  fi
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -k /var/run/postgresql "$@"
