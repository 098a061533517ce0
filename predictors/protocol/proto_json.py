"""Triton's JSON for protobuf messages: the HTTP side of its gRPC-defined extensions.

Triton answers its HTTP extension routes (model configuration, statistics)
with the same messages its gRPC service returns, printed as JSON with the
proto's own field names, every scalar field present (defaults included), and
64-bit integers as JSON numbers. protobuf's printer writes those as strings
(JSON numbers lose precision past 2**53); tritonclient, perf_analyzer and
scripts read them as numbers, so they are turned back here.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

_INT64 = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}


def to_json(message: Message) -> dict[str, Any]:
    doc = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    _numbers(message.DESCRIPTOR, doc)
    return doc


def _numbers(descriptor: Descriptor, doc: dict[str, Any]) -> None:
    for field in descriptor.fields:
        if field.name not in doc:
            continue
        value = doc[field.name]
        repeated = field.is_repeated
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            inner = entry.fields_by_name["value"]
            if inner.message_type is not None:
                for item in value.values():
                    _numbers(inner.message_type, item)
            elif inner.type in _INT64:
                doc[field.name] = {k: int(v) for k, v in value.items()}
        elif entry is not None:
            for item in value if repeated else [value]:
                _numbers(entry, item)
        elif field.type in _INT64:
            doc[field.name] = [int(v) for v in value] if repeated else int(value)
