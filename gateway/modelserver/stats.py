"""What the server has received, for tests and the chaos harness (not part of OIP)."""

from __future__ import annotations

from collections.abc import Iterable


class DebugStats:
    """Counts inference requests and keeps the headers of the last one.

    Tests use it to assert what an upstream received (``traceparent``, provenance) and
    that nothing was forwarded at all (the count did not move).
    """

    def __init__(self) -> None:
        self.infer_requests = 0
        self.last_headers: dict[str, str] = {}

    def record_infer(self, raw_headers: Iterable[tuple[bytes, bytes]]) -> None:
        """Count one inference request; ASGI headers arrive lower-cased already."""
        self.infer_requests += 1
        headers: dict[str, str] = {}
        for raw_name, raw_value in raw_headers:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            # A repeated header is one comma-separated value, as HTTP defines it.
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.last_headers = headers

    def to_dict(self) -> dict[str, object]:
        return {"infer_requests": self.infer_requests, "last_headers": self.last_headers}
