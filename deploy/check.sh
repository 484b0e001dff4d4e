#!/usr/bin/env bash
# Static checks of the deployment files on this machine, without installing anything into /etc or /opt
# and without starting a service:
#   * `nginx -t` on deploy/nginx/grievance-triage.conf, inside a copy of the system's /etc/nginx
#     (Debian layout: conf.d included from the http block), with a throw-away self-signed certificate;
#   * `systemd-analyze verify` on the units, in a temporary root holding this checkout's venv scripts
#     at /opt/grievance-triage/.venv/bin and the system's unit files (so dependencies resolve).
# Needs nginx, openssl and systemd-analyze; skips (exit 0, with a message) what is missing.
# Usage: deploy/check.sh   (from anywhere; run as a user who can read /etc/nginx)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
status=0

if command -v nginx >/dev/null && command -v openssl >/dev/null && [ -d /etc/nginx ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=triage.example.gov.cn" \
        -keyout "$WORK/privkey.pem" -out "$WORK/fullchain.pem" 2>/dev/null
    cp -r /etc/nginx "$WORK/nginx"
    sed -i -e "s#/etc/nginx/#$WORK/nginx/#g" -e "s#^pid .*#pid $WORK/nginx.pid;#" "$WORK/nginx/nginx.conf"
    sed "s#/etc/ssl/grievance-triage/#$WORK/#" "$HERE/nginx/grievance-triage.conf" \
        > "$WORK/nginx/conf.d/grievance-triage.conf"
    if nginx -t -c "$WORK/nginx/nginx.conf"; then echo "nginx: ok"; else echo "nginx: FAILED"; status=1; fi
else
    echo "nginx: skipped (nginx, openssl or /etc/nginx missing; apt-get install nginx-light openssl)"
fi

if command -v systemd-analyze >/dev/null; then
    R="$WORK/root"
    mkdir -p "$R/opt/grievance-triage/.venv/bin" "$R/usr/bin" "$R/etc/systemd/system" "$R/usr/lib/systemd"
    cp "$ROOT/.venv/bin/uvicorn" "$ROOT/.venv/bin/mlflow" "$ROOT/.venv/bin/triage" "$R/opt/grievance-triage/.venv/bin/"
    cp "$(command -v curl)" "$R/usr/bin/curl"
    cp -r /usr/lib/systemd/system "$R/usr/lib/systemd/"
    cp "$HERE"/systemd/*.service "$HERE"/systemd/*.timer "$R/etc/systemd/system/"
    # verify only warns (exit 0) about a line it cannot parse and then ignores it: any output fails here.
    if out=$(systemd-analyze verify --man=no --root="$R" \
        grievance-triage@8001.service grievance-triage@8002.service mlflow.service \
        grievance-triage-retrain.service grievance-triage-retrain.timer \
        triage-report.service triage-report.timer 2>&1) && [ -z "$out" ]; then
        echo "systemd units: ok"
    else
        printf '%s\n' "$out"; echo "systemd units: FAILED"; status=1
    fi
else
    echo "systemd units: skipped (no systemd-analyze)"
fi
exit $status
