"""`modelplane bench`: closed-loop load on local servers, next to the raw runtimes.

The bench starts its own `modelplane serve` (a subprocess on free loopback
ports; batching on, and batching off for the comparison), drives every model
with C concurrent callers that each send the next request as soon as the last
one came back (batch 1 per request), over gRPC and HTTP (binary tensors), and
measures the same inputs on the raw runtime in this process with the
server's thread settings. Throughput, p50 and p99 go to a table (and to CSV or
JSON), with the two figures the project holds itself to:

(a) latency overhead: at concurrency 1, gRPC p50 <= 1.3 x raw p50 + 1 ms;
(b) batching pays: at concurrency 16, throughput with batching >= 2 x without.

- settings.py  arguments and BenchSettings (imports nothing heavy)
- inputs.py    the requests: held-out rows of the bundled data sets, else random
- raw.py       the bare runtime, loaded as the server loads it
- measure.py   closed-loop callers, samples, CPU per request; the Cell record
- clients.py   tritonclient's asyncio clients over gRPC and HTTP
- report.py    ratios, acceptance figures, table, CSV and JSON
- run.py       one run: servers, every cell, the report
"""
