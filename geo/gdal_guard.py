"""A scoped, thread-local GDAL lock-down for one open call.

Only Shapefile and FlatGeobuf inputs reach GDAL (through pyogrio), after ``geo.formats`` has
recognised their content and they sit alone in a private directory. As a second wall, while
such a file is read the calling thread gets GDAL configuration that makes every network access
fail (an unreachable HTTP proxy; ``/vsicurl/`` restricted to a file extension no URL has) and
turns off sidecar discovery (``.aux.xml``, directory listing). The options are set with
``CPLSetThreadLocalConfigOption`` and restored afterwards, so other GDAL use in the process —
another thread, or the same thread later — is untouched.
"""
from __future__ import annotations

import ctypes
import glob
import os
import threading
from contextlib import contextmanager
from typing import Iterator

LOCKDOWN = {
    "GDAL_HTTP_PROXY": "127.0.0.1:9",                       # nothing listens there: every HTTP fetch fails
    "GDAL_HTTPS_PROXY": "127.0.0.1:9",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".gridplan-no-network",
    "GDAL_HTTP_MAX_RETRY": "0",
    "GDAL_HTTP_TIMEOUT": "1",
    "GDAL_PAM_ENABLED": "NO",                               # no .aux.xml sidecars
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",            # no sibling-file discovery
}

_lib = None
_lib_lock = threading.Lock()


def _gdal():
    """Pyogrio's own libgdal (the same loaded library pyogrio reads with), or None."""
    global _lib
    with _lib_lock:
        if _lib is None:
            try:
                import pyogrio

                base = os.path.dirname(os.path.dirname(pyogrio.__file__))
                cands = sorted(glob.glob(os.path.join(base, "pyogrio.libs", "libgdal*.so*")))
                lib = ctypes.CDLL(cands[0]) if cands else ctypes.CDLL("libgdal.so")
                lib.CPLGetThreadLocalConfigOption.restype = ctypes.c_char_p
                lib.CPLGetThreadLocalConfigOption.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
                lib.CPLSetThreadLocalConfigOption.restype = None
                lib.CPLSetThreadLocalConfigOption.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
                _lib = lib
            except (OSError, AttributeError, ImportError):
                _lib = False
        return _lib or None


def thread_option(key: str) -> str | None:
    """Return the calling thread's own value of a GDAL config option (None when unset)."""
    lib = _gdal()
    if lib is None:
        return None
    v = lib.CPLGetThreadLocalConfigOption(key.encode(), None)
    return v.decode() if v is not None else None


@contextmanager
def gdal_locked_down(options: dict[str, str] | None = None) -> Iterator[bool]:
    """Within the block, this thread's GDAL has no network and no sidecar discovery.

    Yields whether the lock-down could be applied (False when libgdal cannot be reached; the
    content checks of ``geo.formats`` still hold). Previous thread-local values are restored.
    """
    lib = _gdal()
    if lib is None:
        yield False
        return
    opts = LOCKDOWN if options is None else options
    saved = {k: lib.CPLGetThreadLocalConfigOption(k.encode(), None) for k in opts}
    try:
        for k, v in opts.items():
            lib.CPLSetThreadLocalConfigOption(k.encode(), v.encode())
        yield True
    finally:
        for k, v in saved.items():
            lib.CPLSetThreadLocalConfigOption(k.encode(), v)
