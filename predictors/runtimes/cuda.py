"""Is there a CUDA device? Asked of the NVIDIA driver itself, before any runtime is.

onnxruntime-gpu lists its CUDAExecutionProvider whether or not a GPU is
there, then logs errors and quietly runs on the CPU; torch says only
`is_available() == False`. So `--device auto` asks the driver API
(libcuda.so.1: cuInit, cuDeviceGetCount) once, and says in one log line why
it runs on the CPU, and `--device cuda` fails with that reason instead of
running on the CPU.
"""

from __future__ import annotations

import ctypes
import functools
import logging

log = logging.getLogger(__name__)


@functools.cache
def cuda_devices() -> tuple[int, str]:
    """(number of CUDA devices, why there are none)."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0, "no NVIDIA driver: libcuda.so.1 is not installed"
    status = driver.cuInit(0)
    if status != 0:
        return 0, f"the NVIDIA driver found no usable GPU (cuInit: {_error_name(driver, status)})"
    count = ctypes.c_int(0)
    status = driver.cuDeviceGetCount(ctypes.byref(count))
    if status != 0:
        return 0, f"the NVIDIA driver cannot count GPUs ({_error_name(driver, status)})"
    if count.value == 0:
        return 0, "the NVIDIA driver reports no GPU"
    return count.value, ""


def _error_name(driver: ctypes.CDLL, status: int) -> str:
    name = ctypes.c_char_p()
    if driver.cuGetErrorName(status, ctypes.byref(name)) == 0 and name.value:
        return name.value.decode()
    return f"error {status}"


@functools.cache
def say_cpu_fallback(reason: str) -> None:
    """Log, once per process and reason, why `--device auto` runs on the CPU."""
    log.info("device auto: no CUDA device (%s); running on cpu", reason)
