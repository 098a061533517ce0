#!/usr/bin/env bash
# Docker for the image tests (tests/images) on a machine with no Docker daemon
# and no container registry: Debian's docker.io engine, run as a private
# daemon under .work/images/dockerd, and a Python base image made locally with
# debootstrap instead of pulled.
#
# Usage: scripts/test-setup/docker.sh [install|start|stop|status|base-image] [--dry-run]
#
#   scripts/test-setup/docker.sh [install]   apt-get install docker.io debootstrap shellcheck
#   scripts/test-setup/docker.sh start       start the private dockerd; prints DOCKER_HOST=...
#   scripts/test-setup/docker.sh stop        stop it (only the one started from this folder)
#   scripts/test-setup/docker.sh status      exit 0 when it answers
#   scripts/test-setup/docker.sh base-image  debootstrap bookworm + python3 and `docker import` it
#
# Environment: MODELPLANE_DOCKERD_DIR (default .work/images/dockerd),
# DOCKERD_STORAGE_DRIVER (default: overlay2, falling back to vfs),
# BASE_IMAGE_TAG (default localhost/modelplane-base:bookworm-python3),
# DEBIAN_MIRROR (default http://deb.debian.org/debian), DRY_RUN=1.
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

IMAGES_DIR="${MODELPLANE_ROOT}/.work/images"
DOCKERD_DIR="${MODELPLANE_DOCKERD_DIR:-${IMAGES_DIR}/dockerd}"
SOCKET="${DOCKERD_DIR}/docker.sock"
PIDFILE="${DOCKERD_DIR}/dockerd.pid"
LOGFILE="${DOCKERD_DIR}/dockerd.log"
BASE_IMAGE_TAG="${BASE_IMAGE_TAG:-localhost/modelplane-base:bookworm-python3}"
BASE_TARBALL="${IMAGES_DIR}/base/bookworm-python3.tar"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

docker_cli() { docker -H "unix://${SOCKET}" "$@"; }

daemon_answers() {
    [ -S "${SOCKET}" ] && docker_cli version >/dev/null 2>&1
}

cmd_install() {
    local wanted=()
    has_tool dockerd || wanted+=(docker.io)
    has_tool debootstrap || wanted+=(debootstrap)
    has_tool shellcheck || wanted+=(shellcheck)
    if [ "${#wanted[@]}" -eq 0 ]; then
        log "docker.io, debootstrap and shellcheck are installed"
        return 0
    fi
    apt_install "${wanted[@]}"
}

# Unix sockets are limited to 108 bytes; containerd puts its own sockets a few
# levels below exec-root, so a deep checkout moves exec-root to /tmp.
exec_root() {
    local root="${DOCKERD_DIR}/exec"
    if [ "${#root}" -gt 60 ]; then
        root="/tmp/modelplane-dockerd-$(printf '%s' "${DOCKERD_DIR}" | cksum | cut -d' ' -f1)"
    fi
    printf '%s\n' "${root}"
}

launch_dockerd() {
    local driver="$1"
    # No bridge, no iptables: this sandbox (and CI) may not allow changing the
    # host's network, and the tests use --network host / --network none only.
    local args=(
        dockerd
        --data-root "${DOCKERD_DIR}/data"
        --exec-root "$(exec_root)"
        --pidfile "${PIDFILE}"
        --host "unix://${SOCKET}"
        --storage-driver "${driver}"
        --bridge none
        --iptables=false
        --ip6tables=false
        --ip-masq=false
        --log-level warn
    )
    if is_dry_run; then
        show_cmd "${args[@]}"
        return 0
    fi
    mkdir -p "${DOCKERD_DIR}/data" "$(exec_root)"
    show_cmd "${args[@]}" >&2
    # setsid: the daemon must outlive this script and not get the caller's
    # terminal signals; `stop` ends it through the pidfile.
    setsid "${args[@]}" >"${LOGFILE}" 2>&1 </dev/null &
    local i
    for i in $(seq 1 60); do
        daemon_answers && return 0
        # Gave up early: the process is gone.
        if [ "${i}" -gt 2 ] && ! pid_alive; then
            return 1
        fi
        sleep 0.5
    done
    return 1
}

pid_alive() {
    [ -f "${PIDFILE}" ] && kill -0 "$(cat "${PIDFILE}")" 2>/dev/null
}

cmd_start() {
    require_tools dockerd docker
    if daemon_answers; then
        log "dockerd already running (pid $(cat "${PIDFILE}" 2>/dev/null || echo '?'))"
        printf 'DOCKER_HOST=unix://%s\n' "${SOCKET}"
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || is_dry_run || die "dockerd needs root here (rootless Docker is not set up by this script)"
    local driver="${DOCKERD_STORAGE_DRIVER:-overlay2}"
    if ! launch_dockerd "${driver}"; then
        cmd_stop >/dev/null 2>&1 || true
        if [ -z "${DOCKERD_STORAGE_DRIVER:-}" ] && [ "${driver}" = overlay2 ]; then
            # overlay2 fails where the data root itself is on overlayfs (a
            # container); vfs is slow but works everywhere.
            warn "dockerd did not start with overlay2 (see ${LOGFILE}); retrying with vfs"
            driver=vfs
            launch_dockerd "${driver}" || {
                tail -n 20 "${LOGFILE}" >&2 || true
                die "dockerd did not start (log: ${LOGFILE})"
            }
        else
            tail -n 20 "${LOGFILE}" >&2 || true
            die "dockerd did not start (log: ${LOGFILE})"
        fi
    fi
    is_dry_run || log "dockerd started (pid $(cat "${PIDFILE}"), storage driver ${driver})"
    printf 'DOCKER_HOST=unix://%s\n' "${SOCKET}"
}

cmd_stop() {
    if ! pid_alive; then
        log "no dockerd running from ${DOCKERD_DIR}"
        return 0
    fi
    local pid
    pid="$(cat "${PIDFILE}")"
    run kill -TERM "${pid}"
    is_dry_run && return 0
    local i
    # dockerd stops its containers and its containerd before it exits.
    for i in $(seq 1 60); do
        kill -0 "${pid}" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "${pid}" 2>/dev/null; then
        warn "dockerd ${pid} did not stop in 30 s; killing it"
        kill -KILL "${pid}" 2>/dev/null || true
    fi
    # dockerd leaves its default network namespace mounted under exec-root;
    # unmount it so the folder can be deleted like any other.
    local ns
    for ns in "$(exec_root)"/netns/*; do
        if mountpoint -q "${ns}" 2>/dev/null; then
            umount "${ns}" 2>/dev/null || warn "could not unmount ${ns}"
        fi
    done
    rm -f "${SOCKET}" "${PIDFILE}"
    log "dockerd stopped"
}

cmd_status() {
    if daemon_answers; then
        printf 'DOCKER_HOST=unix://%s\n' "${SOCKET}"
        return 0
    fi
    log "no dockerd answers on ${SOCKET}"
    return 1
}

cmd_base_image() {
    require_tools docker
    if daemon_answers && docker_cli image inspect "${BASE_IMAGE_TAG}" >/dev/null 2>&1; then
        log "base image ${BASE_IMAGE_TAG} exists"
        return 0
    fi
    if [ ! -f "${BASE_TARBALL}" ]; then
        require_tools debootstrap
        [ "$(id -u)" -eq 0 ] || is_dry_run || die "debootstrap needs root"
        local rootfs="${IMAGES_DIR}/base/rootfs"
        run rm -rf "${rootfs}"
        run mkdir -p "${rootfs}"
        # minbase + python3-venv: the same Python 3.11 that python:3.11-slim-bookworm
        # has, plus ensurepip for `python3 -m venv`.
        run debootstrap --variant=minbase --include=python3,python3-venv bookworm "${rootfs}" "${DEBIAN_MIRROR}"
        run_sh "rm -rf '${rootfs}'/var/cache/apt/archives/*.deb '${rootfs}'/var/lib/apt/lists/*"
        run_sh "tar -C '${rootfs}' --numeric-owner -cf '${BASE_TARBALL}.tmp' . && mv '${BASE_TARBALL}.tmp' '${BASE_TARBALL}'"
        run rm -rf "${rootfs}"
    else
        log "using cached ${BASE_TARBALL}"
    fi
    # An imported image has no config: give it the PATH and locale a Debian
    # image has.
    run docker -H "unix://${SOCKET}" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        "${BASE_TARBALL}" "${BASE_IMAGE_TAG}"
}

main() {
    local sub="install"
    while [ "$#" -gt 0 ]; do
        common_flag "$1" && { shift; continue; }
        case "$1" in
            install | start | stop | status | base-image) sub="$1" ;;
            *) die "unknown argument: $1 (see --help)" ;;
        esac
        shift
    done
    case "${sub}" in
        install) cmd_install ;;
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        base-image) cmd_base_image ;;
    esac
}

main "$@"
