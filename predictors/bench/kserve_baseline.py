"""The bench's yardstick: an ONNX model behind KServe's own ModelServer, as KServe's docs write it.

This is the custom predictor KServe's documentation shows (website
model-serving/predictive-inference/frameworks/custom-predictor/custom-predictor.md,
and python/custom_model/model.py in kserve/kserve at v0.20.0): a
`kserve.Model` whose `load()` opens the model and sets `ready`, whose
`predict(payload, headers)` reads `payload.inputs[0].as_numpy()`, runs it and
returns an `InferResponse`, started with `kserve.ModelServer().start([model])`.
Nothing is tuned: the onnxruntime session has default options, and `predict`
is a plain method, so KServe calls it on its event loop (kserve/model.py,
`Model.__call__`). It is what a user gets by following the docs, which is
the point of measuring modelplane against it.

Run it as its own process (`python -m predictors.bench.kserve_baseline
--model_file F --model_name N --http_port P --grpc_port Q`): KServe's
ModelServer parses sys.argv at import and registers `inference.*` protobufs
that clash with tritonclient's, which the bench uses. The bench only starts
it (predictors.bench.baseline); nothing imports this module.
"""

from __future__ import annotations

import argparse

import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server
from kserve.utils.numpy_codec import from_np_dtype
from kserve.utils.utils import generate_uuid

# As the docs do: KServe's own flags, plus the ones this predictor needs.
parser = argparse.ArgumentParser(parents=[model_server.parser])
parser.add_argument("--model_file", required=True, help="the model.onnx to serve")
args, _ = parser.parse_known_args()


class OnnxModel(Model):
    def __init__(self, name: str, model_file: str) -> None:
        super().__init__(name)
        self.model_file = model_file
        self.session: ort.InferenceSession | None = None
        self.ready = False
        self.load()

    def load(self) -> bool:
        self.session = ort.InferenceSession(self.model_file)
        self.input_name = self.session.get_inputs()[0].name
        self.ready = True
        return self.ready

    def predict(
        self, payload: InferRequest, headers: dict[str, str] | None = None
    ) -> InferResponse:
        assert self.session is not None
        x = payload.inputs[0].as_numpy()
        outputs = self.session.run(None, {self.input_name: x})
        infer_outputs = []
        for meta, value in zip(self.session.get_outputs(), outputs, strict=True):
            output = InferOutput(
                name=meta.name, shape=list(value.shape), datatype=from_np_dtype(value.dtype)
            )
            output.set_data_from_numpy(value)
            infer_outputs.append(output)
        return InferResponse(
            model_name=self.name, infer_outputs=infer_outputs, response_id=generate_uuid()
        )


if __name__ == "__main__":
    model = OnnxModel(args.model_name, args.model_file)
    ModelServer().start([model])
