"""The coalescing transport: one loop step's writes reach the socket as one write."""

from __future__ import annotations

import asyncio
import http.client
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import GatewayThread, write_config

from gateway.http_protocol import CoalescingTransport
from gateway.settings import load_config


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0


def test_a_header_block_and_its_body_go_out_as_one_write() -> None:
    async def scenario() -> list[bytes]:
        inner = RecordingTransport()
        transport = CoalescingTransport(inner, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        assert inner.writes == []  # held for what follows
        assert transport.get_write_buffer_size() == 19
        transport.write(bytearray(b"body"))
        assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]  # sent at once, joined
        transport.write(b"alone")
        assert len(inner.writes) == 1
        await asyncio.sleep(0)  # a write left alone goes out when the step ends
        return inner.writes

    assert asyncio.run(scenario()) == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"alone"]


def test_close_sends_what_is_pending_first() -> None:
    async def scenario() -> RecordingTransport:
        inner = RecordingTransport()
        transport = CoalescingTransport(inner, asyncio.get_running_loop())
        transport.write(b"last words")
        transport.close()
        await asyncio.sleep(0)  # the scheduled flush finds nothing left to send
        return inner

    inner = asyncio.run(scenario())
    assert inner.writes == [b"last words"]
    assert inner.closed


def test_the_gateway_serves_through_the_coalescing_protocol(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "http://127.0.0.1:9"))
    with GatewayThread(config, InMemorySpanExporter()) as gateway:
        connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=5)
        try:
            for _ in range(2):  # kept alive: the second answer follows the first intact
                connection.request("GET", "/v2/health/live")
                answer = connection.getresponse()
                assert answer.status == 200
                assert answer.read() == b'{"live":true}'
            connections = list(gateway.server.server_state.connections)
        finally:
            connection.close()
    assert [type(c).__name__ for c in connections] == ["CoalescingHttpToolsProtocol"]
