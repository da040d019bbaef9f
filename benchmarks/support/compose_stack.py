"""A 4-service compose application made of local images (no registry), as the compose benchmark and the
end-to-end test deploy it with Berth and with ``docker compose up -d --wait``.

- ``db``: busybox httpd serving a named volume (``db-data``), reachable as ``db`` and ``database``; it
  writes a random id into the volume the first time it starts (``/created``: the same id while its volume
  is kept) and is healthy once it serves ``/ready`` (a Docker healthcheck every 500 ms).
- ``migrate``: a one-shot service (``restart: "no"``) that reads ``db`` once it is healthy, then exits 0.
- ``web``: busybox httpd on 8080 serving ``$VERSION`` at ``/`` and the db's id at ``/db.txt`` (read
  through the alias ``database``), started once the db is healthy and the migration completed.
- ``worker``: asks ``web`` every 2 s, started once ``web`` is started.
"""

from __future__ import annotations

WEB = 'mkdir -p /www && wget -q -O /www/db.txt http://database:8080/created && printf %s "$$VERSION" > /www/index.html && exec httpd -f -p 8080 -h /www'
DB = "mkdir -p /data/www && (test -f /data/www/created || cat /proc/sys/kernel/random/uuid > /data/www/created) && echo ok > /data/www/ready && exec httpd -f -p 8080 -h /data/www"
WORKER = "while true; do wget -q -O /dev/null http://web:8080/ || true; sleep 2; done"
SERVICES = 4


def compose_file(web_image: str, base_image: str, version: str) -> str:
    """The compose file; ``web_image`` runs the web service (the others run ``base_image``)."""
    return f"""services:
  web:
    image: {web_image}
    command: ["sh", "-c", {_quoted(WEB)}]
    environment:
      VERSION: "{version}"
    ports: ["8080"]
    depends_on:
      db:
        condition: service_healthy
      migrate:
        condition: service_completed_successfully
    restart: unless-stopped
  worker:
    image: {base_image}
    command: ["sh", "-c", {_quoted(WORKER)}]
    depends_on: [web]
    restart: unless-stopped
  db:
    image: {base_image}
    command: ["sh", "-c", {_quoted(DB)}]
    volumes: ["db-data:/data"]
    networks:
      default:
        aliases: [database]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/ready"]
      interval: 500ms
      timeout: 2s
      retries: 20
      start_period: 10s
    restart: unless-stopped
  migrate:
    image: {base_image}
    command: ["wget", "-q", "-O", "/dev/null", "http://db:8080/ready"]
    depends_on:
      db:
        condition: service_healthy
    restart: "no"
volumes:
  db-data:
"""


def _quoted(text: str) -> str:
    """``text`` as a YAML double-quoted scalar."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
