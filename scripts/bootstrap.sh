# Sourced by scripts/demo, scripts/test and scripts/ui: make .venv with the project installed (once per pyproject
# change); for the tests also espeak-ng, Chromium, PostgreSQL and Redis from Debian's packages (as root, apt-get).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

find_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "error: Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

VENV="$ROOT/.venv"
STAMP="$VENV/.installed-$( (cat pyproject.toml; echo "${EXTRAS:-dev}") | sha256sum | cut -c1-16)"
if [ ! -x "$VENV/bin/python" ]; then
  PY="$(find_python)"
  echo "==> creating .venv with $("$PY" --version)"
  "$PY" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ]; then
  echo "==> installing the project and its dependencies into .venv (first run takes a minute or two)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e ".[${EXTRAS:-dev}]"
  rm -f "$VENV"/.installed-*
  touch "$STAMP"
fi
# Debian packages that are not wheels: install them where we can (root with apt-get), say how where we cannot.
apt_install() {  # apt_install <command> <package> <why>
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing $2 ($3)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null; } \
      || echo "warning: could not install $2; $3"
  else
    echo "note: $2 is not installed ($3): sudo apt-get install $2"
  fi
}
apt_install espeak-ng espeak-ng "the offline narration voice; narrated videos need it offline, or a live TTS key"
if [ "${BOOTSTRAP_FOR:-}" = tests ]; then
  apt_install chromium chromium "headless browser for the report and UI screenshot tests"
  # the production tests start private servers from these programs (a temporary directory, a free port each);
  # a PostgreSQL or Redis already running on the machine is neither needed nor touched
  PATH="$PATH:$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)" \
    apt_install initdb postgresql "the PostgreSQL server the production tests run privately"
  apt_install redis-server redis-server "the Redis server the Celery tests run privately"
fi
export PATH="$VENV/bin:$PATH"
export DAGSTER_HOME="${DAGSTER_HOME:-$ROOT/.dagster}"
mkdir -p "$DAGSTER_HOME"   # its dagster.yaml is written by the first command that opens it (assets/instance.py)
