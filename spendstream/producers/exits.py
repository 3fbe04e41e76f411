"""Closing a Recorder when its process ends, multiprocessing's children included.

``atexit`` covers a normal interpreter exit (and a child of a plain ``os.fork`` that exits
normally, which inherits the hook). ``multiprocessing`` ends every child it starts (``Process``,
``Pool`` workers; fork, forkserver and spawn) with ``util._exit_function()`` then ``os._exit()``,
which skips ``atexit`` but runs the ``multiprocessing.util.Finalize`` hooks registered in that
child. A forked child clears the hooks it inherited before it runs its target
(``BaseProcess._after_fork``) and then calls the ``register_after_fork`` callbacks: that is where
the hook is registered again.

A child killed by a signal runs neither: ``Pool.__exit__`` (``terminate()``) sends SIGTERM to the
workers, so what a task recorded and its worker had not yet delivered is lost unless the task
calls ``recorder.flush()`` or the app calls ``pool.close()`` and ``pool.join()`` first.

``multiprocessing`` is never imported here: if the app has not imported it, there is no
multiprocessing child to care about (a forked child of the app inherits the module as loaded).
"""

from __future__ import annotations

import atexit
import os
import sys
import weakref
from typing import Any, Protocol

# Finalizers run in the first batch of _exit_function (priority >= 0), before it joins the
# child's own children.
EXIT_PRIORITY = 0


class Closable(Protocol):
    def close(self) -> None: ...


# recorder -> (pid that registered it, its multiprocessing.util.Finalize)
_finalizers: weakref.WeakKeyDictionary[Closable, tuple[int, Any]] = weakref.WeakKeyDictionary()


def close_at_exit(recorder: Closable) -> None:
    """Call ``recorder.close()`` at interpreter exit and at a multiprocessing child's exit."""
    atexit.register(recorder.close)
    close_at_multiprocessing_exit(recorder)


def close_at_multiprocessing_exit(recorder: Closable) -> None:
    """The multiprocessing part alone (for a forked child, whose ``atexit`` is inherited)."""
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is None:
        return
    _finalize(recorder)
    mp_util.register_after_fork(recorder, _finalize)


def cancel_exit_hooks(recorder: Closable) -> None:
    """The recorder was closed: nothing to do at exit any more."""
    atexit.unregister(recorder.close)
    _, finalizer = _finalizers.pop(recorder, (0, None))
    if finalizer is not None:
        finalizer.cancel()


def _finalize(recorder: Closable) -> None:
    mp_util = sys.modules.get("multiprocessing.util")
    pid, previous = _finalizers.get(recorder, (0, None))
    if mp_util is None or (pid == os.getpid() and previous.still_active()):
        return  # registered in this process already (a fork's inherited ones do not count)
    finalizer = mp_util.Finalize(recorder, recorder.close, exitpriority=EXIT_PRIORITY)
    _finalizers[recorder] = (os.getpid(), finalizer)
