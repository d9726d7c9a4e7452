# Shared set-up for scripts/run and scripts/test: find Python >= 3.12, install
# what is missing (Debian packages when root, the Python dependencies into
# .venv), idempotently and fast when everything is already there.
# shellcheck shell=bash

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
warn() { printf '\033[33m!!  %s\033[0m\n' "$*" >&2; }
die() { printf '\033[31mxx  %s\033[0m\n' "$*" >&2; exit 1; }

python_ok() {
  "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null
}

find_python() {
  local candidate
  for candidate in "${FARM_PYTHON:-}" python3.13 python3.12 \
      /root/.pyenv/versions/3.13*/bin/python3.13 /root/.pyenv/versions/3.12*/bin/python3.12 \
      "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

# Debian packages the panel and its tests use. Only installed when missing,
# only when we are root on a Debian-like system; otherwise we say what to do.
apt_install_missing() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    warn "Missing Debian packages: ${missing[*]} (install them with apt-get as root)."
    return 1
  fi
  say "Installing Debian packages: ${missing[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; then
    apt-get update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

PANEL_PACKAGES=(libmariadb-dev pkg-config gcc mariadb-client redis-server)
FARM_PACKAGES=(docker.io debootstrap restic mariadb-backup)
MULTINODE_PACKAGES=(glusterfs-client)
BROWSER_PACKAGES=(chromium)

ensure_system_packages() {
  if command -v dpkg-query >/dev/null 2>&1; then
    apt_install_missing "$@" || true
  fi
}

ensure_venv() {
  local python
  python="$(find_python)" || die "No Python 3.12 or newer found. Install one (e.g. pyenv install 3.12) or set FARM_PYTHON=/path/to/python3.12."
  if [ -x "$VENV/bin/python" ] && ! python_ok "$VENV/bin/python"; then
    warn "Existing .venv uses an old Python; recreating it."
    rm -rf "$VENV"
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    say "Creating .venv with $python ($("$python" --version))"
    "$python" -m venv "$VENV"
  fi
  # Reinstall only when pyproject.toml changed since the last install.
  local stamp="$VENV/.installed-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    say "Installing Python dependencies into .venv"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT[dev,panel]" 2>&1 | grep -v "is ignored" || true
    "$VENV/bin/python" -c "import django, django_q, allauth, docker, MySQLdb, whitenoise, gunicorn" \
      || die "Python dependencies did not install (see the pip output above)."
    rm -f "$VENV"/.installed-*
    touch "$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
}

mariadb_reachable() {
  "$VENV/bin/python" - "$1" <<'PY' 2>/dev/null
import sys
from urllib.parse import urlsplit, unquote
import MySQLdb
u = urlsplit(sys.argv[1])
MySQLdb.connect(host=u.hostname or "127.0.0.1", port=u.port or 3306,
                user=unquote(u.username or "root"), passwd=unquote(u.password or ""),
                connect_timeout=3).close()
PY
}
