"""One event loop in a background thread, where async tasks run.

Async engines pool connections per event loop, so all async tasks of a process share this
one loop rather than each starting their own. Inside a web app the loop can instead be the
app's own (:meth:`AsyncRunner.attached`, used by the FastAPI lifespan), so that tasks and
endpoints share one async engine safely.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ._loops import close_private_loop, register_private_loop

T = TypeVar("T")


class AsyncRunner:
    def __init__(self, name: str = "sqljobs-async") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: Set for a runner that borrows a loop it does not own (see :meth:`attached`).
        self._borrowed_thread: int | None = None
        self._fallback: AsyncRunner | None = None

    @classmethod
    def attached(cls, loop: asyncio.AbstractEventLoop, thread_id: int) -> AsyncRunner:
        """A runner that submits to ``loop`` (running in thread ``thread_id``), which someone
        else owns and keeps running; :meth:`close` leaves it alone."""
        runner = cls(name="sqljobs-async-fallback")
        runner._loop = loop
        runner._borrowed_thread = thread_id
        return runner

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def _ensure_started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                register_private_loop(loop)
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name=self._name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and block the calling thread until it is done."""
        if self._borrowed_thread is not None:
            if threading.get_ident() == self._borrowed_thread:
                # Blocking the borrowed loop's own thread on it would deadlock (inline mode
                # called from an async endpoint): use a private loop for this one.
                with self._lock:
                    if self._fallback is None:
                        self._fallback = AsyncRunner(name=self._name)
                    fallback = self._fallback
                return fallback.run(coroutine)
            loop = self._loop
            if loop is None or loop.is_closed():
                coroutine.close()
                raise RuntimeError("the event loop async tasks ran on is closed")
            return asyncio.run_coroutine_threadsafe(coroutine, loop).result()
        loop = self._ensure_started()
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    def close(self, *, cleanup: Callable[[], Coroutine[Any, Any, Any]] | None = None) -> None:
        """Stop the loop if this runner owns it, after awaiting ``cleanup()`` on it (e.g. an
        async engine's ``dispose``: its pooled connections belong to this loop)."""
        if self._borrowed_thread is not None:
            with self._lock:
                fallback, self._fallback = self._fallback, None
                self._loop = None
            if fallback is not None:
                fallback.close()
            return
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            await close_private_loop()
            if cleanup is not None:
                await cleanup()
            await loop.shutdown_asyncgens()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()
