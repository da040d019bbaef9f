#!/usr/bin/env bash
# Make sure a Docker engine answers on the local socket. As root with none installed: install Debian's
# docker.io and start dockerd without systemd. Otherwise say what to do.
set -euo pipefail
DOCKER=/usr/bin/docker; [ -x "$DOCKER" ] || DOCKER=$(command -v docker || true)
answers() { [ -n "$DOCKER" ] && timeout 10 "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }
answers && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "No Docker engine answers on /var/run/docker.sock. Install Docker (Debian: apt-get install docker.io)," >&2
  echo "start it (systemctl start docker) and add your user to the docker group, then run this again." >&2
  exit 1
fi
if ! command -v dockerd >/dev/null; then
  echo "==> installing Debian's docker.io"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
  DOCKER=/usr/bin/docker
fi
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl start docker || true
fi
if ! answers; then
  echo "==> starting dockerd"
  mkdir -p /var/log
  # its own session: the engine outlives the shell (and process group) that started it
  setsid nohup dockerd >>/var/log/dockerd.log 2>&1 < /dev/null &
fi
for _ in $(seq 1 60); do answers && { echo "==> docker engine answers"; exit 0; }; sleep 0.5; done
echo "dockerd did not answer within 30 s; see /var/log/dockerd.log" >&2
tail -20 /var/log/dockerd.log >&2 || true
exit 1
