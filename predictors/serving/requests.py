"""One inference request's bookkeeping, the same for HTTP and gRPC.

Resolving the model, the request metrics (count by status, duration,
in-flight, KServe's predict histogram) and the status a failure is counted
under all happen here, so the two transports cannot drift apart: each only
decodes, encodes and turns an exception into its own kind of error reply.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from predictors import metrics
from predictors.errors import ModelFailed
from predictors.model import ServedModel
from predictors.serving.repository import ModelRepository
from predictors.serving.status import http_status

# KServe writes the same line to its `kserve.trace` logger.
trace_log = logging.getLogger("predictors.trace")


@contextmanager
def inference(
    repository: ModelRepository,
    protocol: str,
    name: str,
    version: str | None,
    request_id: str = "",
    log_latency: bool = False,
) -> Iterator[ServedModel]:
    """Resolve the model and account for the request; exceptions pass through, counted.

    The model itself counts the requests it shed and those whose caller left
    or ran out of time (modelplane_shed_requests, modelplane_expired_requests).
    With log_latency (KServe's --enable_latency_logging), one line per request
    in the format of KServe's Model.__call__, so log pipelines built for KServe
    read it: modelplane has no pre- or post-processing, so those are 0.
    """
    record = metrics.RequestRecord(protocol)
    start = time.perf_counter()
    model: ServedModel | None = None
    # KServe's Model.__call__ times only `predict` (python/kserve/kserve/model.py,
    # `with PREDICT_HIST_TIME...time()`): a request refused while decoding,
    # shed or expired never reached it, one that failed inside it did.
    reached_predict = False
    try:
        model = repository.resolve(name, version)
        record.served_by(model.name, model.version, model.series)
        yield model
        reached_predict = True
    except asyncio.CancelledError:
        # The HTTP client hung up while its request waited: nobody to answer.
        record.status = "499"
        raise
    except Exception as exc:
        # gRPC codes are counted as the HTTP status of the same error.
        record.status = str(http_status(exc))
        reached_predict = isinstance(exc, ModelFailed)
        raise
    finally:
        seconds = time.perf_counter() - start
        if model is not None and reached_predict:
            model.series.kserve_predict().observe(seconds)
        record.finish()
        if log_latency:
            trace_log.info(
                "requestId: %s, preprocess_ms: 0.0, explain_ms: 0, predict_ms: %.3f, "
                "postprocess_ms: 0.0",
                request_id or "N.A.",
                seconds * 1000,
            )
