#!/bin/sh
# The entry point of Berth's local MariaDB image (Debian's mariadb-server package): the contract of the
# official image, so that the image map can stand in for ``mariadb:10.11``. On first start (an empty
# /var/lib/mysql): MARIADB_ROOT_PASSWORD (or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD, MARIADB_RANDOM_ROOT_PASSWORD;
# the MYSQL_* names are accepted too), MARIADB_DATABASE, MARIADB_USER and MARIADB_PASSWORD (the user gets
# every privilege on that database). root@localhost also logs in through the unix socket, as in the
# official image. Arguments starting with "-" are options for the server.
set -eu
DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/mysqld.sock
ROOT_PASSWORD="${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}"
DATABASE="${MARIADB_DATABASE:-${MYSQL_DATABASE:-}}"
USER_NAME="${MARIADB_USER:-${MYSQL_USER:-}}"
USER_PASSWORD="${MARIADB_PASSWORD:-${MYSQL_PASSWORD:-}}"
ALLOW_EMPTY="${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-${MYSQL_ALLOW_EMPTY_PASSWORD:-}}"
RANDOM_ROOT="${MARIADB_RANDOM_ROOT_PASSWORD:-${MYSQL_RANDOM_ROOT_PASSWORD:-}}"
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  set -- mariadbd "$@"
fi
if [ "$1" != mariadbd ] && [ "$1" != mysqld ]; then
  exec "$@"
fi
shift
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$DATADIR" /run/mysqld
  chown -R mysql:mysql "$DATADIR" /run/mysqld
  exec setpriv --reuid=mysql --regid=mysql --init-groups "$0" mariadbd "$@"
fi
sql_string() {  # a value as the body of a single-quoted SQL string literal
  printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g"
}
sql_name() {  # a value as the body of a backquoted SQL identifier
  printf '%s' "$1" | sed -e 's/`/``/g'
}
if [ ! -d "$DATADIR/mysql" ]; then
  if [ -z "$ROOT_PASSWORD" ] && [ -z "$ALLOW_EMPTY" ] && [ -z "$RANDOM_ROOT" ]; then
    echo "MARIADB_ROOT_PASSWORD is required to initialise the database" >&2
    exit 1
  fi
  if [ -n "$RANDOM_ROOT" ]; then
    ROOT_PASSWORD=$(tr -dc 'A-Za-z0-9' < /dev/urandom | head -c 32)
  fi
  mariadb-install-db --datadir="$DATADIR" --auth-root-authentication-method=normal \
    --skip-test-db --skip-name-resolve > /dev/null
  mariadbd --datadir="$DATADIR" --skip-networking --socket="$SOCKET" &
  pid=$!
  until mariadb-admin --socket="$SOCKET" -uroot ping > /dev/null 2>&1; do sleep 0.2; done
  {
    root_pw=$(sql_string "$ROOT_PASSWORD")
    # mariadb-install-db's other root accounts have no password: only root@localhost and root@'%' stay
    printf "DROP USER IF EXISTS 'root'@'127.0.0.1', 'root'@'::1';\n"
    printf "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@''', @@hostname, '''');\n"
    printf "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('%s');\n" "$root_pw"
    printf "CREATE USER 'root'@'%%' IDENTIFIED BY '%s';\n" "$root_pw"
    printf "GRANT ALL ON *.* TO 'root'@'%%' WITH GRANT OPTION;\n"
    if [ -n "$DATABASE" ]; then
      printf 'CREATE DATABASE IF NOT EXISTS `%s`;\n' "$(sql_name "$DATABASE")"
    fi
    if [ -n "$USER_NAME" ] && [ -n "$USER_PASSWORD" ]; then
      printf "CREATE USER '%s'@'%%' IDENTIFIED BY '%s';\n" "$(sql_string "$USER_NAME")" "$(sql_string "$USER_PASSWORD")"
      if [ -n "$DATABASE" ]; then
        printf "GRANT ALL ON \`%s\`.* TO '%s'@'%%';\n" "$(sql_name "$DATABASE")" "$(sql_string "$USER_NAME")"
      fi
    fi
    printf 'FLUSH PRIVILEGES;\n'
  } | mariadb --socket="$SOCKET" -uroot --binary-mode
  MYSQL_PWD="$ROOT_PASSWORD" mariadb-admin --socket="$SOCKET" -uroot shutdown
  wait "$pid" || true
fi
exec mariadbd --datadir="$DATADIR" --socket="$SOCKET" --bind-address=0.0.0.0 --skip-name-resolve "$@"
