#!/usr/bin/env bash
# Installs checkov into its own virtual environment, .venv-checkov at the repo
# root, for tests/charts (checkov's pins clash with the main .venv). Idempotent:
# does nothing when the pinned version is already there.
set -euo pipefail

CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${ROOT}/.venv-checkov"
PYTHON="${PYTHON:-python3}"

if [ -x "${VENV}/bin/checkov" ] \
    && [ "$("${VENV}/bin/checkov" --version 2>/dev/null || true)" = "${CHECKOV_VERSION}" ]; then
    echo "checkov ${CHECKOV_VERSION} already installed: ${VENV}/bin/checkov"
    exit 0
fi

# A half-built venv from an interrupted run would make pip fail in odd ways.
if [ -d "${VENV}" ] && [ ! -x "${VENV}/bin/pip" ]; then
    rm -rf "${VENV}"
fi
if [ ! -d "${VENV}" ]; then
    "${PYTHON}" -m venv "${VENV}"
fi
"${VENV}/bin/pip" install --quiet --disable-pip-version-check "checkov==${CHECKOV_VERSION}"
"${VENV}/bin/checkov" --version
