"""An HTTP request's caller: gone as soon as the client hangs up, and its work dropped.

uvicorn does not cancel a request's handler when the client disconnects; it
only answers the next `receive()` with `http.disconnect`. So a request that
queues for its batch watches for that, and when it comes marks its caller
gone (the batcher then skips its rows, predictors.admission) and cancels its
own wait. The cancellation becomes ClientGone, answered 499 to nobody and
counted in modelplane_expired_requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Request

from predictors.admission import Caller
from predictors.errors import ClientGone


@asynccontextmanager
async def http_caller(request: Request) -> AsyncIterator[Caller]:
    """Call once the body has been read: from then on `receive()` only says disconnect."""
    task = asyncio.current_task()
    assert task is not None
    state = {"gone": False, "done": False}

    async def watch() -> None:
        message = await request.receive()
        if message["type"] == "http.disconnect" and not state["done"]:
            state["gone"] = True
            task.cancel()

    watcher = asyncio.create_task(watch())
    try:
        yield Caller("http", alive=lambda: not state["gone"])
    except asyncio.CancelledError:
        if not state["gone"]:
            raise
        task.uncancel()
        raise ClientGone("the client closed the connection while its request waited") from None
    finally:
        state["done"] = True
        watcher.cancel()
