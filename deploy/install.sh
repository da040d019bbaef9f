#!/usr/bin/env bash
# Install what a fresh Debian/Ubuntu machine lacks for Berth, then the workspace into .venv.
#   deploy/install.sh            python venv + workspace (from requirements.lock)
#   deploy/install.sh --test     also the system tools the tests use (git, busybox-static, debootstrap,
#                                docker-registry and htpasswd for the registry tests, pebble and
#                                pebble-challtestsrv for the ACME tests, Debian's chromium for the
#                                dashboard's browser tests and axe-core from the npm registry for its
#                                accessibility test, ...)
#   deploy/install.sh --docker   also make sure a Docker engine answers (installs docker.io as root)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0; want_docker=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1; want_docker=1 ;;
    --docker) want_docker=1 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
is_root() { [ "$(id -u)" = 0 ]; }
apt_updated=0
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! is_root || ! command -v apt-get >/dev/null; then
    echo "missing system packages: ${missing[*]} (install them with apt-get as root)" >&2; return 1
  fi
  if [ $apt_updated = 0 ]; then apt-get update -qq; apt_updated=1; fi
  say "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# 1. Python 3.11+ with venv
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  apt_install python3 python3-venv
fi
"$PY" -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
command -v git >/dev/null || apt_install git

# 2. The virtual environment and the workspace, pinned by requirements.lock
if [ ! -x .venv/bin/python ]; then say "creating .venv"; "$PY" -m venv .venv; fi
if [ ! -x .venv/bin/uv ]; then .venv/bin/python -m pip install -q --disable-pip-version-check uv; fi
stamp=.venv/.berth-installed
if [ ! -f "$stamp" ] || [ requirements.lock -nt "$stamp" ] || [ -n "$(find . -name pyproject.toml -newer "$stamp" -not -path './.venv/*' | head -1)" ]; then
  say "installing the workspace (requirements.lock)"
  VIRTUAL_ENV="$PWD/.venv" .venv/bin/uv pip install -q --compile-bytecode -r requirements.lock
  touch "$stamp"
fi

# 3. System tools the tests use
if [ $want_test = 1 ]; then
  had_registry=0; dpkg -s docker-registry >/dev/null 2>&1 && had_registry=1
  had_sshd=0; dpkg -s openssh-server >/dev/null 2>&1 && had_sshd=1
  apt_install git busybox-static debootstrap ca-certificates iproute2 procps docker-registry apache2-utils \
    openssh-server iptables util-linux pebble
  # The dashboard's browser tests: the playwright wheel (requirements.lock) drives Debian's chromium
  # (tests/support/browser.py); Playwright's own browser download is never used (`playwright install` is not run).
  apt_install chromium
  # The remote Traefik hand-over's AArch64 programs run under qemu-user (tests/proxy/test_handover_programs.py).
  apt_install qemu-user-static
  # axe-core for the dashboard's accessibility test (tests/support/axe.py): the exact version that
  # tests/dashboard/package.json names, from the npm registry into tests/dashboard/node_modules (ignored by
  # git; no lock file is written). Skipped when that version is already there.
  command -v npm >/dev/null || apt_install npm
  npm_dir=tests/dashboard
  npm_want=$(node -p "require('./$npm_dir/package.json').dependencies['axe-core']")
  npm_have=$(node -p "try { require('./$npm_dir/node_modules/axe-core/package.json').version } catch (e) { '' }")
  if [ "$npm_want" != "$npm_have" ]; then
    say "npm install axe-core@$npm_want ($npm_dir/package.json)"
    npm install --prefix "$npm_dir" --no-package-lock --no-audit --no-fund --ignore-scripts --omit=dev \
      --loglevel=error >/dev/null
  fi
  # The registry tests start their own on 127.0.0.1; the service the package starts (on :5000) is not wanted.
  if [ $had_registry = 0 ] && is_root && command -v systemctl >/dev/null; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
  # sshd is for the tests' namespace servers (each starts its own); the machine's own one is not wanted.
  if [ $had_sshd = 0 ] && is_root && command -v systemctl >/dev/null; then
    systemctl disable --now ssh ssh.socket >/dev/null 2>&1 || true
  fi
fi

# 4. A Docker engine that answers
if [ $want_docker = 1 ]; then
  bash deploy/ensure-docker.sh
fi
