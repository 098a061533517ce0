"""The KServe edge: a modelplane model as a `kserve.Model`, for KServe's own ModelServer.

`modelplane serve` does not need this (it never imports kserve). It is for
people who run modelplane's predictors inside KServe's Python server, e.g. a
custom predictor that adds pre- or post-processing:

    from kserve import ModelServer
    from predictors.model_store import discover, newest
    from predictors.serving.kserve_adapter import KServeModel

    model = KServeModel.from_store(Path("/mnt/models"), "wine-onnx")
    ModelServer().start([model])

KServe records its own `request_predict_seconds` around `predict`, and maps
its own error classes to statuses, so modelplane's errors are re-raised as
KServe's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kserve
from kserve import errors as kserve_errors
from kserve.protocol.infer_type import InferRequest, InferResponse

from predictors import errors
from predictors.model import ServedModel
from predictors.model_store import discover, newest
from predictors.protocol import kserve_codec
from predictors.runtimes import RuntimeOptions


class KServeModel(kserve.Model):
    def __init__(self, served: ServedModel) -> None:
        super().__init__(served.name)
        self.served = served

    @classmethod
    def from_store(
        cls, store: Path, name: str, options: RuntimeOptions | None = None
    ) -> KServeModel:
        """The newest version of `name` in a store (or a KServe /mnt/models mount)."""
        return cls(ServedModel(newest(discover(store, [name]), name), options))

    def load(self) -> bool:
        self.ready = self.served.load()
        return self.ready

    def stop(self) -> None:
        self.served.stop()
        self.ready = False

    async def predict(
        self, payload: InferRequest, headers: dict[str, str] | None = None
    ) -> InferResponse:
        """Serve an InferRequest from KServe's DataPlane through modelplane's request path."""
        if not isinstance(payload, InferRequest):
            raise kserve_errors.InvalidInput("modelplane models speak the V2 protocol only")
        served = self.served
        try:
            return await served.handle(
                lambda: kserve_codec.decode(payload),
                lambda request, outputs: kserve_codec.encode(
                    served.name, served.version, request, outputs
                ),
            )
        except errors.InvalidInput as exc:
            raise kserve_errors.InvalidInput(exc.message) from exc
        except errors.ModelNotReady as exc:
            raise kserve_errors.ModelNotReady(served.name, exc.message) from exc
        except errors.ModelNotFound as exc:
            raise kserve_errors.ModelNotFound(served.name) from exc

    def get_input_types(self) -> list[dict[str, Any]]:
        return self.served.input_specs()

    def get_output_types(self) -> list[dict[str, Any]]:
        return self.served.output_specs()
