#!/usr/bin/env bash
# Make a Docker engine answer: reuse a reachable daemon, else (as root) install
# Debian's docker.io and start dockerd for host networking only. Also installs
# docker-compose, which the unit tests use to check docker-compose.yml. Idempotent.
set -euo pipefail

log=${DOCKERD_LOG:-/var/log/dockerd.log}
timeout=${DOCKERD_START_TIMEOUT:-60}

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v docker-compose >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "docker-compose: installing Debian's docker-compose"
        apt_install docker-compose
    else
        echo "docker-compose: not installed; the unit tests need it (as root: apt-get install docker-compose)" >&2
    fi
fi

if docker info >/dev/null 2>&1; then
    echo "docker engine: reachable"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "docker engine: not reachable and not root; start one, or run this as root" >&2
    exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
    echo "docker engine: installing Debian's docker.io"
    apt_install docker.io
fi

# No iptables and no bridge on these machines: every container uses the host network.
echo "docker engine: starting dockerd (log: $log)"
nohup dockerd --iptables=false --bridge=none >"$log" 2>&1 &

for _ in $(seq "$timeout"); do
    if docker info >/dev/null 2>&1; then
        echo "docker engine: ready"
        exit 0
    fi
    sleep 1
done
echo "docker engine: dockerd did not answer within ${timeout}s; last log lines:" >&2
tail -n 20 "$log" >&2
exit 1
