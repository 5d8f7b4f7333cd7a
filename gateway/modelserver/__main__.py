"""``python -m gateway.modelserver MODEL_DIR [--host] [--port] [--fault-...]``."""

from __future__ import annotations

from gateway.modelserver.cli import main

raise SystemExit(main())
