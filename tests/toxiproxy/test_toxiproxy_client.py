"""The harness's client (errors, timeouts), the subprocess helper and the benchmark."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
from toxiproxy_helpers import EchoServer, free_port

from harness.errors import HarnessError
from harness.toxiproxy import (
    ServerProcess,
    ToxiproxyBadRequest,
    ToxiproxyClient,
    ToxiproxyConflict,
    ToxiproxyError,
    ToxiproxyNotFound,
    ToxiproxyUnavailable,
    find_toxiproxy_server,
    toxiproxy_server,
)
from harness.toxiproxy.bench import run_benchmark


def test_client_round_trip(client: ToxiproxyClient, echo: EchoServer) -> None:
    assert client.version() == "2.12.0"
    proxy = client.create_proxy("p", upstream=echo.address)
    assert proxy.enabled and proxy.port > 0 and proxy.toxics == ()
    assert client.get_proxy("p") == proxy
    assert client.proxies() == {"p": proxy}
    toxic = client.add_toxic("p", type="latency", attributes={"latency": 5})
    assert toxic.name == "latency_downstream" and toxic.attributes == {"latency": 5, "jitter": 0}
    updated = client.update_toxic("p", "latency_downstream", attributes={"jitter": 2}, toxicity=0.5)
    assert updated.attributes == {"latency": 5, "jitter": 2} and updated.toxicity == 0.5
    assert client.get_toxic("p", "latency_downstream") == updated
    assert client.toxics("p") == [updated]
    assert client.disable_proxy("p").enabled is False
    client.reset()
    assert client.get_proxy("p").enabled is True and client.toxics("p") == []
    client.delete_proxy("p")
    assert client.proxies() == {}


def test_client_errors_are_harness_errors(client: ToxiproxyClient, echo: EchoServer) -> None:
    with pytest.raises(ToxiproxyNotFound) as not_found:
        client.get_proxy("nope")
    assert isinstance(not_found.value, HarnessError)
    assert not_found.value.status == 404 and "proxy not found" in str(not_found.value)
    client.create_proxy("p", upstream=echo.address)
    with pytest.raises(ToxiproxyConflict):
        client.create_proxy("p", upstream=echo.address)
    with pytest.raises(ToxiproxyBadRequest, match="invalid toxic type"):
        client.add_toxic("p", type="nope")
    with pytest.raises(ToxiproxyNotFound, match="toxic not found"):
        client.remove_toxic("p", "nope")
    with (
        socket.create_server(("127.0.0.1", 0)) as busy,
        pytest.raises(ToxiproxyError) as failed,
    ):
        client.create_proxy("q", upstream=echo.address, listen=f"127.0.0.1:{busy.getsockname()[1]}")
    assert failed.value.status == 500 and "address already in use" in str(failed.value)


def test_populate_failure_reports_what_was_created(
    client: ToxiproxyClient, echo: EchoServer
) -> None:
    with (
        socket.create_server(("127.0.0.1", 0)) as busy,
        pytest.raises(ToxiproxyError) as failed,
    ):
        busy_listen = f"127.0.0.1:{busy.getsockname()[1]}"
        client.populate(
            [
                {"name": "a", "upstream": echo.address, "listen": "127.0.0.1:0"},
                {"name": "b", "upstream": echo.address, "listen": busy_listen},
            ]
        )
    assert [p.name for p in failed.value.proxies] == ["a"]
    assert [p.name for p in client.populate([{"name": "c", "upstream": echo.address}])] == ["c"]


def test_client_without_server_is_unavailable() -> None:
    with (
        ToxiproxyClient(f"http://127.0.0.1:{free_port()}", timeout_s=1) as dead,
        pytest.raises(ToxiproxyUnavailable),
    ):
        dead.version()


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()
        for sock in held:
            sock.close()


def test_client_times_out() -> None:
    with (
        silent_server() as port,
        ToxiproxyClient(f"http://127.0.0.1:{port}", timeout_s=0.3) as hung,
        pytest.raises(ToxiproxyUnavailable, match=r"no answer within 0\.3 s"),
    ):
        hung.proxies()


def test_find_toxiproxy_server_returns_a_path_or_none() -> None:
    found = find_toxiproxy_server()
    assert found is None or found.endswith("toxiproxy-server")


@pytest.mark.ours_only
def test_server_process_stops_on_exit() -> None:
    with toxiproxy_server(implementation="python") as process:
        assert isinstance(process, ServerProcess) and process.implementation == "python"
        with process.client() as api:
            assert api.version() == "2.12.0"
    assert process.process.poll() is not None
    with pytest.raises(ToxiproxyUnavailable), ToxiproxyClient(process.url, timeout_s=1) as api:
        api.version()


@pytest.mark.ours_only
def test_server_process_on_a_busy_port_fails_clearly() -> None:
    with (
        socket.create_server(("127.0.0.1", 0)) as busy,
        pytest.raises(ToxiproxyError, match=r"exited|did not start"),
    ):
        toxiproxy_server(implementation="python", port=busy.getsockname()[1], startup_timeout_s=5)


@pytest.mark.ours_only
def test_benchmark_smoke() -> None:
    result = run_benchmark(rounds=1, throughput_bytes=4 * 1024 * 1024, requests=50)
    for key in (
        "direct_mb_s",
        "proxied_mb_s",
        "throughput_ratio",
        "direct_p50_ms",
        "proxied_p50_ms",
        "proxied_p99_ms",
        "added_p50_ms",
    ):
        assert result[key] > 0 or key == "added_p50_ms"
    assert len(result["per_round"]) == 1


def test_populate_creating_nothing(client: ToxiproxyClient) -> None:
    """The real server answers ``"proxies": null`` here; the client once raised TypeError."""
    assert client.populate([]) == []
    with pytest.raises(ToxiproxyError) as failed:
        client.populate([{"name": "x"}])  # no upstream: nothing created, proxies null
    assert failed.value.status == 400 and failed.value.proxies == ()
