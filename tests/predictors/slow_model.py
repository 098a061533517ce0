"""A model that takes a while: an ONNX Loop of `trips` (256 x 256) MatMul + Tanh steps.

For tests of what happens when a model is busy (queues, deadlines, shedding):
its run time is set by the trip count, not by a sleep the runtime never sees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from tests.support import save_onnx

WIDTH = 256


def slow_onnx(path: Path, trips: int) -> Path:
    weights = np.random.default_rng(0).standard_normal((WIDTH, WIDTH)).astype(np.float32) * 0.05
    body = helper.make_graph(
        [
            helper.make_node("MatMul", ["y_in", "W"], ["m"]),
            helper.make_node("Tanh", ["m"], ["y_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "step",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("y_in", TensorProto.FLOAT, ["batch", WIDTH]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("y_out", TensorProto.FLOAT, ["batch", WIDTH]),
        ],
        [numpy_helper.from_array(weights, "W")],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "cond", "x"], ["y"], body=body)],
        "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", WIDTH])],
        [
            numpy_helper.from_array(np.array(trips, np.int64), "trips"),
            numpy_helper.from_array(np.array(True), "cond"),
        ],
    )
    return save_onnx(graph, path)
