#!/usr/bin/env bash
# The Debian packages `make test-system` needs: Chromium (the UI test, driven by Playwright),
# PostgreSQL (the production instance) and Redis (the Celery broker). Installs only what is
# missing, so a machine that has them is not touched. Needs root (or sudo) and apt-get.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)

if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages: chromium, postgresql and redis-server are installed"
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "need root to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
# Debian starts the servers it installs; the tests start their own on free ports.
for svc in "${missing[@]}"; do
    case "$svc" in
        postgresql|redis-server) $sudo service "$svc" stop >/dev/null 2>&1 || true ;;
    esac
done
