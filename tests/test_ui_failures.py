"""``doa ui`` when something is missing: no broker at the address (each endpoint answers 503
in seconds with :class:`~doa.cluster.reach.BrokerUnreachable`'s line), a port already taken
or a host not of this machine (one line naming the option to change), and lineage's message
matching the event ids it takes. A broker that goes away while the app runs is
tests/integration/test_ui_broker_gone.py."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from doa.cli.app import cli
from doa.cluster.reach import BrokerUnreachable
from doa.errors import DoaError
from doa.ui.app import make_app, serve


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    """A socket listening on a free loopback port (it holds that port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_every_endpoint_says_in_seconds_that_no_broker_answers() -> None:
    address = f"127.0.0.1:{_closed_port()}"
    expected = str(BrokerUnreachable(address, "connection refused"))

    async def main() -> list[tuple[str, int, Any, float]]:
        async with TestClient(TestServer(make_app(address))) as client:  # the real catalog
            out = []
            for path in ("/api/catalog", "/api/records?stream=s", "/api/events",
                         "/api/lineage?event=s:0:0", "/api/lineage?event=1198ef9c"):
                start = time.monotonic()
                r = await client.get(path)
                out.append((path, r.status, await r.json(), time.monotonic() - start))
            return out

    for path, status, body, seconds in asyncio.run(main()):
        assert (status, body) == (503, {"error": expected}), path
        assert seconds < 5, f"{path} took {seconds:.1f} s"


def test_lineage_message_names_the_id_prefixes_it_takes() -> None:
    async def main() -> list[tuple[int, Any]]:
        app = make_app(f"127.0.0.1:{_closed_port()}", collect=lambda: {"streams": []})
        async with TestClient(TestServer(app)) as client:
            return [((r := await client.get(f"/api/lineage?event={e}")).status, await r.json())
                    for e in ("zzz", "1198ef9", "1198ef9c")]

    bad, short, prefix = asyncio.run(main())
    takes = "give STREAM:PARTITION:OFFSET or a hex event id (32 digits, or its first 8 or more)"
    assert bad == (400, {"error": f"event 'zzz': {takes}"})
    assert short == (400, {"error": "event '1198ef9': an event id is 32 hex digits, or its "
                                    "first 8 or more (got 7)"})
    assert prefix[0] == 503  # an 8-digit prefix is taken: the broker is what is missing


def _serve(host: str, port: int) -> str:
    app = make_app("127.0.0.1:1", collect=dict)
    with pytest.raises(DoaError) as info:
        asyncio.run(serve(app, host, port, lambda urls: None, asyncio.Event()))
    return str(info.value)


def test_a_port_in_use_is_one_line_naming_the_option(listening: socket.socket) -> None:
    port = listening.getsockname()[1]
    assert _serve("127.0.0.1", port) == f"port {port} on 127.0.0.1 is in use; give another --port"


def test_a_host_not_of_this_machine_is_one_line_naming_the_option() -> None:
    assert _serve("10.255.255.1", 0) == ("10.255.255.1 is not an address of this machine; "
                                         "give another --host")


def test_cli_prints_the_line_for_a_port_in_use(listening: socket.socket,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # the stand-in broker takes connections but speaks no Kafka: let the probe pass
    monkeypatch.setattr("doa.cluster.reach._kafka_answers", lambda sock, wait_s: None)
    port = listening.getsockname()[1]  # also the "broker": the probe only connects
    result = CliRunner().invoke(cli, ["ui", "--broker", f"127.0.0.1:{port}", "--port",
                                      str(port)])
    assert isinstance(result.exception, DoaError)
    assert str(result.exception) == f"port {port} on 127.0.0.1 is in use; give another --port"
