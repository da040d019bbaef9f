#!/bin/sh
# The entry point of Berth's local Redis image (Debian's redis-server package): the contract of the
# official image, so that the image map can stand in for ``redis:7``. The data directory is /data (the
# official image's volume); the arguments are the server's (``redis-server --requirepass PASSWORD`` or
# ``--appendonly yes``: the official image has no password variable, a password is a server option). The
# server runs as the redis user and listens on every address with protected mode off, as in the official
# image.
set -eu
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  set -- redis-server "$@"
fi
if [ "$1" != redis-server ]; then
  exec "$@"
fi
shift
if [ "$(id -u)" = 0 ]; then
  mkdir -p /data
  chown -R redis:redis /data
  exec setpriv --reuid=redis --regid=redis --init-groups "$0" redis-server "$@"
fi
cd /data
exec redis-server --bind 0.0.0.0 --protected-mode no --dir /data --daemonize no "$@"
