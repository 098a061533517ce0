"""The V2 Open Inference Protocol: wire formats (codecs) and servers (REST, gRPC)."""
