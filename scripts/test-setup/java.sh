#!/usr/bin/env bash
# Installs a Java runtime (Debian's openjdk-17-jre-headless), which TorchServe's
# frontend needs; used by tests/predictors/torchserve. Idempotent: does nothing
# if `java` is already on PATH.
set -euo pipefail

if command -v java >/dev/null 2>&1; then
    echo "java already installed: $(command -v java)"
    java -version 2>&1 | head -n 1
    exit 0
fi

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

apt_install openjdk-17-jre-headless
java -version 2>&1 | head -n 1
