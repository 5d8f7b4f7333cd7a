"""Suite-wide setup: keep onnxruntime's and Feast's caches out of the home folder."""

from __future__ import annotations

import os
import tempfile

# onnxruntime writes a cache under $XDG_CACHE_HOME on import; tests must not touch $HOME.
os.environ.setdefault("XDG_CACHE_HOME", tempfile.mkdtemp(prefix="gateway-tests-cache-"))
