"""How every command fails: a refused operation or a missing extra is one line and exit 2."""

from __future__ import annotations

import sys
from collections.abc import Callable

from predictors.errors import Refused

TRACKING_HELP = "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else .work/mlflow)"
EXTRAS = {
    "mlflow": "install the extras: pip install -e '.[mlflow,torchserve]'",
    "torchserve": "install the extra: pip install -e '.[torchserve]'",
}


def refusable(command: str, body: Callable[[], int], extra: str = "", changed: str = "") -> int:
    """Run a command's body; say why and return 2 if it was refused or its extra is missing.

    `extra` names the optional extra the body imports (an ImportError then
    means it is not installed); `changed` is appended to refusals, e.g.
    "the store was not changed".
    """
    try:
        return body()
    except ImportError as exc:
        if not extra:
            raise
        print(f"modelplane {command}: {exc}; {EXTRAS[extra]}", file=sys.stderr)
    except Refused as exc:
        print(f"modelplane {command}: {exc}" + (f"; {changed}" if changed else ""), file=sys.stderr)
    return 2
