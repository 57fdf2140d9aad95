#!/usr/bin/env bash
# The services the target tests need: the Docker daemon (docker.io) and the OpenSSH server binary.
#   scripts/services.sh start   install them if missing, start dockerd unless one answers
#   scripts/services.sh stop    stop the dockerd this script started (never one it did not start)
# sshd itself is started by the tests (their own config, keys and port on 127.0.0.1) and stopped by them.
set -uo pipefail
STATE="${TMPDIR:-/tmp}/stackcert-dockerd.pid"
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

start() {
  if ! command -v dockerd >/dev/null 2>&1 || ! [ -x /usr/sbin/sshd ]; then
    $SUDO apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends docker.io openssh-server \
      || echo "[services] could not install docker.io/openssh-server: the target tests will fail"
  fi
  if docker info >/dev/null 2>&1; then
    echo "[services] a Docker daemon already answers"
    return 0
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "[services] no dockerd: the docker target tests will fail"
    return 0
  fi
  $SUDO setsid dockerd >"${TMPDIR:-/tmp}/stackcert-dockerd.log" 2>&1 < /dev/null &
  echo $! > "$STATE"
  for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then echo "[services] dockerd started (pid $(cat "$STATE"))"; return 0; fi
    sleep 0.5
  done
  echo "[services] dockerd did not answer within 30 s: see ${TMPDIR:-/tmp}/stackcert-dockerd.log"
}

stop() {
  [ -f "$STATE" ] || return 0
  pid="$(cat "$STATE")"
  rm -f "$STATE"
  if kill -0 "$pid" 2>/dev/null; then
    $SUDO kill -TERM "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
    $SUDO kill -KILL "$pid" 2>/dev/null || true
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: scripts/services.sh start|stop" >&2; exit 2 ;;
esac
