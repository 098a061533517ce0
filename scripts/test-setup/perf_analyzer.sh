#!/usr/bin/env bash
# Installs Triton's perf_analyzer for tests/predictors/test_perf_analyzer.py:
# the binary that ships in the tritonclient 2.48.0 wheel (later wheels no
# longer carry it), under .work/perf_analyzer/, with the one CUDA library it
# links (libcudart.so.12, from the nvidia-cuda-runtime-cu12 wheel; no GPU is
# needed) and Debian's libb64. Neither wheel is installed into a virtualenv:
# only those two files are taken out of them. Idempotent: does nothing when
# all three are there.
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

TRITONCLIENT_VERSION="${TRITONCLIENT_VERSION:-2.48.0}"
CUDART_VERSION="${CUDART_VERSION:-12.9.79}"
DEST="${MODELPLANE_ROOT}/.work/perf_analyzer"
PYTHON="${PYTHON:-${MODELPLANE_ROOT}/.venv/bin/python}"

have_libb64() { ldconfig -p 2>/dev/null | grep -q 'libb64\.so\.0d'; }

if [ -x "${DEST}/perf_analyzer" ] && [ -f "${DEST}/lib/libcudart.so.12" ] && have_libb64; then
    echo "perf_analyzer already installed: ${DEST}/perf_analyzer"
    exit 0
fi

have_libb64 || apt_install libb64-0d

wheels="$(mktemp -d)"
trap 'rm -rf "${wheels}"' EXIT
"${PYTHON}" -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: --dest "${wheels}" \
    "tritonclient==${TRITONCLIENT_VERSION}" "nvidia-cuda-runtime-cu12==${CUDART_VERSION}"

mkdir -p "${DEST}/lib"
# Take one member out of a wheel (a zip file) to a path, without unzip(1).
"${PYTHON}" - "${wheels}" "${DEST}" <<'PY'
import sys
import zipfile
from pathlib import Path

wheels, dest = Path(sys.argv[1]), Path(sys.argv[2])
members = {
    "tritonclient-": ("tritonclient-{}.data/data/bin/perf_analyzer", dest / "perf_analyzer"),
    "nvidia_cuda_runtime_cu12-": ("nvidia/cuda_runtime/lib/libcudart.so.12", dest / "lib/libcudart.so.12"),
}
for wheel in sorted(wheels.glob("*.whl")):
    for prefix, (member, target) in members.items():
        if wheel.name.startswith(prefix):
            version = wheel.name[len(prefix):].split("-")[0]
            with zipfile.ZipFile(wheel) as archive:
                target.write_bytes(archive.read(member.format(version)))
            target.chmod(0o755)
            print(f"{target} from {wheel.name}")
PY

LD_LIBRARY_PATH="${DEST}/lib" ldd "${DEST}/perf_analyzer" | grep 'not found' && die "perf_analyzer lacks a library"
echo "perf_analyzer installed: ${DEST}/perf_analyzer (LD_LIBRARY_PATH=${DEST}/lib)"
