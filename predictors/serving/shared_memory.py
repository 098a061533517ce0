"""Triton's system shared-memory extension: tensors in /dev/shm regions, not in the request.

For clients on the same node (a sidecar, a co-located pre-processor): the
client creates a POSIX shared-memory object (`shm_open`, a file in
/dev/shm; tritonclient.utils.shared_memory does this), registers a region of
it by name, and then names the region, an offset and a size in an input's or
a requested output's parameters (`shared_memory_region`,
`shared_memory_offset`, `shared_memory_byte_size`) instead of sending bytes.

The server maps each registered object once, at registration. Inputs are
read-only numpy views of the mapping (no copy before the runtime or the
batcher's concatenation); outputs are written into it after the run. Every
region, offset and size is checked against the region and the tensor before
anything is read or written, so a bad one is a 400 / INVALID_ARGUMENT naming
the tensor, never a crash. A region's file that was truncated after
registration is refused (a read past its end would be SIGBUS). Unregistering
unmaps, or, while an in-flight request still holds a view, drops the mapping
for the garbage collector to unmap when that request is done.

Keys are single names inside /dev/shm (no '/', no '..'), opened without
following symlinks: a client can reach shared memory, not the file system.
CUDA shared memory is not built: its status lists no regions, unregistering
is a no-op, and registering answers that it is not supported.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request, Response

from predictors.errors import InvalidInput
from predictors.protocol import tensors
from predictors.protocol.grpc_messages import pb
from predictors.protocol.rest_codec import decode_object
from predictors.protocol.tensors import InferenceRequest, SharedMemoryRef
from predictors.serving.responses import json_response

SHM_DIR = Path("/dev/shm")
CUDA_NOT_SUPPORTED = (
    "CUDA shared memory is not supported by this server; use system shared memory "
    "(register_system_shared_memory) or send tensors in the request"
)


@dataclass
class Region:
    name: str
    key: str
    offset: int
    byte_size: int
    mapping: mmap.mmap
    writable: bool

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key": self.key,
            "offset": self.offset,
            "byte_size": self.byte_size,
        }

    def _span(self, owner: str, ref: SharedMemoryRef) -> tuple[int, int]:
        if ref.offset + ref.byte_size > self.byte_size:
            raise InvalidInput(
                f"{owner}: shared_memory_offset {ref.offset} + shared_memory_byte_size "
                f"{ref.byte_size} runs past the end of region '{self.name}' "
                f"({self.byte_size} bytes)"
            )
        start = self.offset + ref.offset
        try:
            file_size = self.mapping.size()
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"{owner}: region '{self.name}' cannot be read: {exc}") from exc
        if file_size < self.offset + self.byte_size:
            raise InvalidInput(
                f"{owner}: region '{self.name}' was truncated to {file_size} bytes after it "
                "was registered; register it again"
            )
        return start, start + ref.byte_size

    def read(self, owner: str, ref: SharedMemoryRef) -> memoryview:
        start, end = self._span(owner, ref)
        return memoryview(self.mapping)[start:end].toreadonly()

    def write(self, owner: str, ref: SharedMemoryRef, data: bytes) -> None:
        if not self.writable:
            raise InvalidInput(f"{owner}: region '{self.name}' is read-only to the server")
        if len(data) > ref.byte_size:
            raise InvalidInput(
                f"{owner} is {len(data)} bytes, more than its shared_memory_byte_size "
                f"{ref.byte_size} in region '{self.name}'"
            )
        start, _ = self._span(owner, ref)
        self.mapping[start : start + len(data)] = data

    def close(self) -> None:
        # While an in-flight request still reads a view, the mapping goes with it.
        with contextlib.suppress(BufferError):
            self.mapping.close()


def _open(key: str) -> tuple[mmap.mmap, bool, int]:
    """Map the whole object behind `key`; (mapping, writable, file size)."""
    name = key[1:] if key.startswith("/") else key
    if not name or "/" in name or name in (".", ".."):
        raise InvalidInput(
            f"shared memory key {key!r} must name one object in {SHM_DIR} (like '/input0'), "
            "with no '/' after the first"
        )
    path = SHM_DIR / name
    writable = True
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    except PermissionError:
        writable = False
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise InvalidInput(f"cannot open shared memory key {key!r}: {exc.strerror}") from exc
    except OSError as exc:
        raise InvalidInput(f"cannot open shared memory key {key!r}: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInput(f"shared memory key {key!r} is not a shared-memory object")
        if info.st_size == 0:
            raise InvalidInput(f"shared memory key {key!r} is empty (0 bytes)")
        access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
        return mmap.mmap(fd, info.st_size, access=access), writable, info.st_size
    finally:
        os.close(fd)  # the mapping keeps its own descriptor


class SharedMemoryRegistry:
    def __init__(self) -> None:
        self._regions: dict[str, Region] = {}
        self._lock = threading.Lock()

    def register(self, name: str, key: object, offset: object, byte_size: object) -> None:
        """Map `byte_size` bytes at `offset` of the object `key` as region `name`."""
        if not isinstance(name, str) or not name:
            raise InvalidInput("a shared memory region needs a name")
        for field_name, value in (("offset", offset), ("byte_size", byte_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidInput(
                    f"region '{name}': {field_name} must be a non-negative integer, got {value!r}"
                )
        if not isinstance(key, str):
            raise InvalidInput(f"region '{name}': key must be a string")
        assert isinstance(offset, int) and isinstance(byte_size, int)
        with self._lock:
            if name in self._regions:
                raise InvalidInput(
                    f"shared memory region '{name}' is already registered; unregister it first"
                )
            mapping, writable, size = _open(key)
            if offset + byte_size > size:
                mapping.close()
                raise InvalidInput(
                    f"region '{name}': offset {offset} + byte_size {byte_size} is past the end "
                    f"of {key!r} ({size} bytes)"
                )
            self._regions[name] = Region(name, key, offset, byte_size, mapping, writable)

    def unregister(self, name: str = "") -> None:
        """One region, or every region when name is empty; unknown names are a no-op (Triton)."""
        with self._lock:
            names = [name] if name else list(self._regions)
            gone = [self._regions.pop(n) for n in names if n in self._regions]
        for region in gone:
            region.close()

    def status(self, name: str = "") -> list[dict[str, Any]]:
        with self._lock:
            if not name:
                return [r.status() for r in self._regions.values()]
            region = self._regions.get(name)
        if region is None:
            raise InvalidInput(f"no system shared memory region named '{name}' is registered")
        return [region.status()]

    def region(self, owner: str, ref: SharedMemoryRef) -> Region:
        region = self._regions.get(ref.region)
        if region is None:
            raise InvalidInput(f"{owner}: shared memory region '{ref.region}' is not registered")
        return region

    def close(self) -> None:
        self.unregister()

    # -- the request path ---------------------------------------------------

    def read_inputs(self, request: InferenceRequest) -> InferenceRequest:
        """Fill in the data of inputs that are in shared memory (views, no copy)."""
        for tensor in request.inputs:
            ref = tensor.shared_memory
            if ref is None:
                continue
            owner = f"input '{tensor.name}'"
            view = self.region(owner, ref).read(owner, ref)
            dtype = tensors.numpy_dtype(tensor.name, tensor.datatype)
            tensor.data = tensors.from_buffer(tensor.name, view, dtype)
        return request

    def write_outputs(
        self, request: InferenceRequest, outputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Write requested outputs into their regions; the codec then only says where."""
        for wanted in request.outputs or []:
            ref = wanted.shared_memory
            if ref is None:
                continue
            owner = f"output '{wanted.name}'"
            self.region(owner, ref).write(owner, ref, tensors.wire_bytes(outputs[wanted.name]))
        return outputs


# -- the extension's endpoints ---------------------------------------------------


def add_routes(app: FastAPI, registry: SharedMemoryRegistry) -> None:
    @app.get("/v2/systemsharedmemory/status")
    @app.get("/v2/systemsharedmemory/region/{name}/status")
    async def status(name: str = "") -> Response:
        return json_response(registry.status(name))

    @app.post("/v2/systemsharedmemory/region/{name}/register")
    async def register(name: str, request: Request) -> Response:
        body = decode_object(await request.body())
        registry.register(name, body.get("key"), body.get("offset", 0), body.get("byte_size"))
        return Response()

    @app.post("/v2/systemsharedmemory/unregister")
    @app.post("/v2/systemsharedmemory/region/{name}/unregister")
    async def unregister(name: str = "") -> Response:
        registry.unregister(name)
        return Response()

    @app.get("/v2/cudasharedmemory/status")
    @app.get("/v2/cudasharedmemory/region/{name}/status")
    async def cuda_status(name: str = "") -> Response:
        if name:
            raise InvalidInput(f"no CUDA shared memory region named '{name}': {CUDA_NOT_SUPPORTED}")
        return json_response([])

    @app.post("/v2/cudasharedmemory/region/{name}/register")
    async def cuda_register(name: str) -> Response:
        raise InvalidInput(CUDA_NOT_SUPPORTED)

    @app.post("/v2/cudasharedmemory/unregister")
    @app.post("/v2/cudasharedmemory/region/{name}/unregister")
    async def cuda_unregister(name: str = "") -> Response:
        return Response()  # there are none


def grpc_status(registry: SharedMemoryRegistry, request: Any) -> Any:
    response = pb.SystemSharedMemoryStatusResponse()
    for region in registry.status(request.name):
        response.regions[region["name"]].CopyFrom(
            pb.SystemSharedMemoryStatusResponse.RegionStatus(**region)
        )
    return response


def grpc_register(registry: SharedMemoryRegistry, request: Any) -> Any:
    registry.register(request.name, request.key, request.offset, request.byte_size)
    return pb.SystemSharedMemoryRegisterResponse()


def grpc_unregister(registry: SharedMemoryRegistry, request: Any) -> Any:
    registry.unregister(request.name)
    return pb.SystemSharedMemoryUnregisterResponse()


def grpc_cuda_status(registry: SharedMemoryRegistry, request: Any) -> Any:
    if request.name:
        raise InvalidInput(
            f"no CUDA shared memory region named '{request.name}': {CUDA_NOT_SUPPORTED}"
        )
    return pb.CudaSharedMemoryStatusResponse()


def grpc_cuda_register(registry: SharedMemoryRegistry, request: Any) -> Any:
    raise InvalidInput(CUDA_NOT_SUPPORTED)


def grpc_cuda_unregister(registry: SharedMemoryRegistry, request: Any) -> Any:
    return pb.CudaSharedMemoryUnregisterResponse()
