"""`modelplane bench`: closed-loop load on local servers, next to in-process runtimes and KServe.

The bench builds a store for the run (the models named, read from
`--model-store`, plus a compute-bound CNN it exports itself), starts its own
`modelplane serve` processes on free loopback ports (batching on, and
batching off for the comparison) and, for every ONNX model, the custom
predictor KServe's docs show (kserve_baseline.py, its own process). It drives
each with C concurrent callers that send the next request as soon as the last
came back (batch 1 per request), over gRPC and HTTP (binary tensors), and
runs the same inputs in process on onnxruntime with default options (Torch
models: on modelplane's Torch runtime). Per cell: throughput, p50, p99, the
ratios to in-process, server CPU (% and per request), load-generator CPU, and
the mean rows per model run the server formed.

From those it reports, each figure a ratio from the same run (figures.py):
- compute-bound models (the CNN): gRPC at c8 >= 1.5 x the naive KServe
  predictor and >= 0.85 x in-process, c1 gRPC p50 <= 1.3 x (in-process + 1 ms);
- the bundled overhead-bound models: gRPC at c8 >= 1.5 x KServe (ONNX), c1
  gRPC p50 <= in-process + 1 ms;
- one server per model: idle RSS <= 200 MiB, cold start to ready <= 2 s;
- per model, whether batching pays: on over off at the highest concurrency,
  which `--record-batching` writes into metadata.json for `--batching model`;
- what drift counting costs: server CPU per request of each profiled model
  next to its twin without a profile, and the counting timed in process.

- settings.py       arguments and BenchSettings (imports nothing heavy)
- compute_model.py  the CNN, built and stored at bench time
- inputs.py         the requests: held-out rows of the bundled data sets, else random
- raw.py            the in-process runtimes
- baseline.py       starts kserve_baseline.py (the only module here that imports kserve)
- measure.py        closed-loop callers, samples, CPU and batch counters; the Cell record
- clients.py        tritonclient's asyncio clients over gRPC and HTTP; /metrics
- figures.py        ratios, the batching decision (and --record-batching), the figures
- drift_cost.py     the cost of drift counting: twins without a profile, in-process timing
- report.py         the table and the figures for people; CSV and JSON
- run.py            one run: store, servers, every cell, the report
"""
