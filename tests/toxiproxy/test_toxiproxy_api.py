"""Conformance of our server's HTTP API with Toxiproxy 2.12 (``toxiproxy-api.md``).

Driven both through raw HTTP (status codes, error bodies, headers) and through
the unchanged ``toxiproxy-python`` client, which is what code written for the
real server uses.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import toxiproxy
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists
from toxiproxy_helpers import EchoServer, HttpResult, free_port, recv_until_closed

from harness.toxiproxy import ServerProcess, ToxiproxyClient

Http = Callable[..., HttpResult]


def assert_error(result: HttpResult, status: int, message: str) -> None:
    """A handler's error, as Go's ``http.Error`` writes it: JSON served as plain text."""
    assert result.status == status
    assert result.body.endswith(b"\n")
    assert result.json() == {"error": message, "status": status}
    assert result.headers["content-type"] == "text/plain; charset=utf-8"
    assert result.headers["x-content-type-options"] == "nosniff"
    assert result.headers["x-toxiproxy-request-id"]  # it passed the middleware


# --- server-wide behaviour ------------------------------------------------------


def test_version_is_json_with_request_id(http: Http) -> None:
    result = http("GET", "/version")
    assert result.status == 200
    assert result.json() == {"version": "2.12.0"}
    assert result.headers["x-toxiproxy-request-id"]


def test_every_handled_response_has_a_fresh_request_id(http: Http) -> None:
    ids = [
        http(*request).headers.get("x-toxiproxy-request-id")
        for request in [("GET", "/proxies"), ("GET", "/version"), ("GET", "/proxies/absent")]
    ]
    assert None not in ids and len(set(ids)) == 3


def test_unknown_path_is_404_without_a_request_id(http: Http) -> None:
    # The router answers before Toxiproxy's request-id middleware runs.
    for path in ["/", "/nope", "/proxies/x/y", "/proxies/", "/proxies/a/toxics/b/c"]:
        result = http("GET", path)
        assert result.status == 404, path
        assert result.body == b"404 page not found\n"
        assert result.headers["content-type"] == "text/plain; charset=utf-8"
        assert result.headers["x-content-type-options"] == "nosniff"
        assert "x-toxiproxy-request-id" not in result.headers


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/proxies"),
        ("PUT", "/version"),
        ("GET", "/reset"),
        ("GET", "/populate"),
        ("PUT", "/proxies/p"),
        ("PUT", "/proxies/p/toxics"),
        ("PUT", "/proxies/p/toxics/t"),
    ],
)
def test_wrong_method_is_405_without_a_request_id(http: Http, method: str, path: str) -> None:
    result = http(method, path)
    assert result.status == 405 and result.body == b""
    assert "x-toxiproxy-request-id" not in result.headers


def test_browsers_are_refused(http: Http) -> None:
    result = http("GET", "/version", headers={"User-Agent": "Mozilla/5.0 (X11)"})
    assert result.status == 403
    assert http("GET", "/version", headers={"User-Agent": "curl/8"}).status == 200


def test_toxiproxy_python_version_and_running(tp: toxiproxy.Toxiproxy) -> None:
    assert tp.running()
    assert b"2.12.0" in tp.version()


# --- proxies -------------------------------------------------------------------


def test_create_proxy_returns_201_and_the_real_port(http: Http, echo: EchoServer) -> None:
    result = http(
        "POST", "/proxies", {"name": "p", "upstream": echo.address, "listen": "127.0.0.1:0"}
    )
    assert result.status == 201
    body = result.json()
    assert body["name"] == "p" and body["upstream"] == echo.address
    assert body["enabled"] is True and body["toxics"] == []
    host, port = body["listen"].rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    with socket.create_connection(("127.0.0.1", int(port)), timeout=5) as sock:
        sock.sendall(b"ping")
        assert sock.recv(10) == b"ping"


def test_create_proxy_errors(http: Http, echo: EchoServer) -> None:
    assert_error(
        http("POST", "/proxies", {"upstream": echo.address}), 400, "missing required field: name"
    )
    assert_error(http("POST", "/proxies", {"name": "p"}), 400, "missing required field: upstream")
    for bad in [b"", b"{nope", b"[1]", b'{"name": 5, "upstream": "x:1"}']:
        result = http("POST", "/proxies", bad)
        assert result.status == 400
        assert result.json()["error"].startswith("bad request body: ")
    ok = {"name": "p", "upstream": echo.address, "listen": "127.0.0.1:0"}
    assert http("POST", "/proxies", ok).status == 201
    assert_error(http("POST", "/proxies", ok), 409, "proxy already exists")


def test_create_proxy_on_a_busy_port_is_500(http: Http, echo: EchoServer) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        listen = f"127.0.0.1:{busy.getsockname()[1]}"
        result = http("POST", "/proxies", {"name": "p", "upstream": echo.address, "listen": listen})
    assert result.status == 500
    assert "address already in use" in result.json()["error"]
    assert http("GET", "/proxies/p").status == 404


def test_created_disabled_proxy_does_not_listen(http: Http, echo: EchoServer) -> None:
    port = free_port()
    body = {"name": "p", "upstream": echo.address, "listen": f"127.0.0.1:{port}", "enabled": False}
    result = http("POST", "/proxies", body)
    assert result.status == 201 and result.json()["enabled"] is False
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_show_list_and_delete_proxy(http: Http, echo: EchoServer) -> None:
    created = http(
        "POST", "/proxies", {"name": "p", "upstream": echo.address, "listen": "127.0.0.1:0"}
    ).json()
    assert http("GET", "/proxies/p").json() == created
    assert http("GET", "/proxies").json() == {"p": created}
    assert_error(http("GET", "/proxies/q"), 404, "proxy not found")
    result = http("DELETE", "/proxies/p")
    assert result.status == 204 and result.body == b""
    assert_error(http("DELETE", "/proxies/p"), 404, "proxy not found")
    assert http("GET", "/proxies").json() == {}


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_update_proxy(http: Http, echo: EchoServer, method: str) -> None:
    created = http(
        "POST", "/proxies", {"name": "p", "upstream": echo.address, "listen": "127.0.0.1:0"}
    ).json()
    port = int(created["listen"].rsplit(":", 1)[1])
    result = http(method, "/proxies/p", {"enabled": False})
    assert result.status == 200 and result.json()["enabled"] is False
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    result = http(method, "/proxies/p", {"enabled": True})
    assert result.json()["enabled"] is True and result.json()["listen"] == created["listen"]
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    result = http(method, "/proxies/p", {"upstream": "127.0.0.1:1"})
    assert result.json()["upstream"] == "127.0.0.1:1" and result.json()["enabled"] is True
    assert_error(http(method, "/proxies/q", {"enabled": False}), 404, "proxy not found")
    assert http(method, "/proxies/p", b"{").status == 400


def test_populate_creates_and_keeps_identical_proxies(http: Http, echo: EchoServer) -> None:
    body = [
        {"name": "a", "upstream": echo.address, "listen": "127.0.0.1:0"},
        {"name": "b", "upstream": echo.address, "listen": "127.0.0.1:0", "enabled": False},
    ]
    result = http("POST", "/populate", body)
    assert result.status == 201
    proxies = result.json()["proxies"]
    assert [p["name"] for p in proxies] == ["a", "b"]
    assert [p["enabled"] for p in proxies] == [True, False]
    again = http(
        "POST",
        "/populate",
        [{"name": "a", "upstream": echo.address, "listen": proxies[0]["listen"]}],
    )
    assert again.status == 201 and again.json()["proxies"][0] == proxies[0]


def test_populate_validates_everything_first(http: Http, echo: EchoServer) -> None:
    body = [{"name": "a", "upstream": echo.address, "listen": "127.0.0.1:0"}, {"name": "b"}]
    result = http("POST", "/populate", body)
    assert result.status == 400
    assert result.json() == {
        "error": "missing required field: upstream at proxy 2",
        "status": 400,
        "proxies": None,  # Go's nil slice
    }
    assert result.headers["content-type"] == "application/json"
    assert http("GET", "/proxies").json() == {}
    assert http("POST", "/populate", b"{}").status == 400


def test_populate_creating_nothing_answers_null(
    http: Http, client: ToxiproxyClient, tp: toxiproxy.Toxiproxy
) -> None:
    result = http("POST", "/populate", [])
    assert result.status == 201
    assert result.json() == {"proxies": None}
    assert result.headers["content-type"] == "application/json"
    # Both clients take it for "nothing created" (ours raised TypeError on null).
    assert client.populate([]) == []
    assert tp.populate([]) == []


@pytest.mark.ours_only
def test_missing_listen_binds_the_api_host_not_every_interface(
    http: Http, echo: EchoServer
) -> None:
    """A deliberate difference: the real server binds every interface (``[::]:port``)."""
    for name, body in [("p", {"upstream": echo.address}), ("q", {"listen": ":0"})]:
        result = http("POST", "/proxies", {"name": name, "upstream": echo.address, **body})
        assert result.status == 201
        host, port = result.json()["listen"].rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0


def test_populate_is_not_all_or_nothing(http: Http, echo: EchoServer) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        busy_listen = f"127.0.0.1:{busy.getsockname()[1]}"
        body = [
            {"name": "a", "upstream": echo.address, "listen": "127.0.0.1:0"},
            {"name": "b", "upstream": echo.address, "listen": busy_listen},
            {"name": "c", "upstream": echo.address, "listen": "127.0.0.1:0"},
        ]
        result = http("POST", "/populate", body)
    assert result.status == 500  # the listen error, as in Toxiproxy 2.12
    error = result.json()
    assert "address already in use" in error["error"]
    assert [p["name"] for p in error["proxies"]] == ["a"]
    assert set(http("GET", "/proxies").json()) == {"a"}


def test_toxiproxy_python_proxy_lifecycle(tp: toxiproxy.Toxiproxy, echo: EchoServer) -> None:
    proxy = tp.create(upstream=echo.address, name="p")
    assert proxy.enabled is True and proxy.listen.startswith("127.0.0.1:")
    with pytest.raises(ProxyExists):
        tp.create(upstream=echo.address, name="p")
    assert set(tp.proxies()) == {"p"}
    assert tp.get_proxy("p").upstream == echo.address
    proxy.disable()
    assert tp.get_proxy("p").enabled is False
    proxy.enable()
    assert tp.get_proxy("p").enabled is True
    with proxy.down():
        assert tp.get_proxy("p").enabled is False
    assert proxy.destroy() is True
    with pytest.raises(NotFound):
        proxy.destroy()
    assert tp.proxies() == {}


def test_toxiproxy_python_populate(tp: toxiproxy.Toxiproxy, echo: EchoServer) -> None:
    created = tp.populate([{"name": "a", "upstream": echo.address, "listen": "127.0.0.1:0"}])
    assert [p.name for p in created] == ["a"]
    tp.destroy_all()
    assert tp.proxies() == {}


# --- toxics --------------------------------------------------------------------


@pytest.fixture
def proxy(http: Http, echo: EchoServer, client: ToxiproxyClient) -> str:
    result = http(
        "POST", "/proxies", {"name": "p", "upstream": echo.address, "listen": "127.0.0.1:0"}
    )
    assert result.status == 201
    return "p"


def test_toxic_defaults(http: Http, proxy: str) -> None:
    result = http("POST", "/proxies/p/toxics", {"type": "latency"})
    assert result.status == 200
    assert result.json() == {
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1.0,
        "attributes": {"latency": 0, "jitter": 0},
    }
    assert http("GET", "/proxies/p/toxics/latency_downstream").json() == result.json()
    assert http("GET", "/proxies/p").json()["toxics"] == [result.json()]


@pytest.mark.parametrize(
    ("type_name", "attributes"),
    [
        ("latency", {"latency": 0, "jitter": 0}),
        ("bandwidth", {"rate": 0}),
        ("slow_close", {"delay": 0}),
        ("timeout", {"timeout": 0}),
        ("reset_peer", {"timeout": 0}),
        ("slicer", {"average_size": 0, "size_variation": 0, "delay": 0}),
        ("limit_data", {"bytes": 0}),
        ("noop", {}),
    ],
)
def test_every_toxic_type_and_its_attributes(
    http: Http, proxy: str, type_name: str, attributes: dict[str, int]
) -> None:
    result = http("POST", "/proxies/p/toxics", {"type": type_name, "stream": "upstream"})
    assert result.status == 200
    assert result.json()["attributes"] == attributes
    assert result.json()["name"] == f"{type_name}_upstream"


def test_toxic_list_order_is_upstream_first(http: Http, proxy: str) -> None:
    for name, stream in [
        ("d1", "downstream"),
        ("u1", "upstream"),
        ("d2", "downstream"),
        ("u2", "UpStream"),
    ]:
        assert (
            http(
                "POST", "/proxies/p/toxics", {"name": name, "type": "latency", "stream": stream}
            ).status
            == 200
        )
    assert [t["name"] for t in http("GET", "/proxies/p/toxics").json()] == ["u1", "u2", "d1", "d2"]


def test_toxic_errors(http: Http, proxy: str) -> None:
    assert_error(http("GET", "/proxies/q/toxics"), 404, "proxy not found")
    assert_error(http("POST", "/proxies/q/toxics", {"type": "latency"}), 404, "proxy not found")
    assert_error(http("POST", "/proxies/p/toxics", {"type": "nope"}), 400, "invalid toxic type")
    assert_error(
        http("POST", "/proxies/p/toxics", {"type": "latency", "stream": "sideways"}),
        400,
        "stream was invalid, can be either upstream or downstream",
    )
    assert http("POST", "/proxies/p/toxics", {"type": "latency"}).status == 200
    assert_error(
        http("POST", "/proxies/p/toxics", {"type": "latency"}), 409, "toxic already exists"
    )
    for bad in [
        b"",
        b"{",
        {"type": "latency", "name": "x", "attributes": {"latency": "1"}},
        {"type": "latency", "name": "y", "attributes": {"latency": 1.5}},
        {"type": "latency", "name": "z", "attributes": 7},
        {"type": "latency", "name": "w", "toxicity": "high"},
    ]:
        result = http("POST", "/proxies/p/toxics", bad)
        assert result.status == 400, bad
        assert result.json()["error"].startswith("bad request body: ")
    assert_error(http("GET", "/proxies/p/toxics/nope"), 404, "toxic not found")
    assert_error(http("POST", "/proxies/p/toxics/nope", {}), 404, "toxic not found")
    assert_error(http("DELETE", "/proxies/p/toxics/nope"), 404, "toxic not found")
    assert_error(http("DELETE", "/proxies/q/toxics/nope"), 404, "proxy not found")


def test_unknown_attributes_are_ignored_and_missing_ones_are_zero(http: Http, proxy: str) -> None:
    result = http(
        "POST",
        "/proxies/p/toxics",
        {"type": "latency", "attributes": {"jitter": 5, "colour": "blue"}},
    )
    assert result.json()["attributes"] == {"latency": 0, "jitter": 5}


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_toxic_update_merges(http: Http, proxy: str, method: str) -> None:
    http(
        "POST",
        "/proxies/p/toxics",
        {"name": "t", "type": "latency", "toxicity": 0.5, "attributes": {"latency": 10}},
    )
    result = http(method, "/proxies/p/toxics/t", {"attributes": {"jitter": 3}})
    assert result.status == 200
    assert result.json()["attributes"] == {"latency": 10, "jitter": 3}
    assert result.json()["toxicity"] == 0.5
    result = http(method, "/proxies/p/toxics/t", {"toxicity": 1})
    assert result.json()["toxicity"] == 1 and result.json()["attributes"]["latency"] == 10
    assert http(method, "/proxies/p/toxics/t", {"attributes": {"latency": "x"}}).status == 400
    assert http("GET", "/proxies/p/toxics/t").json()["attributes"]["latency"] == 10


def test_toxic_delete(http: Http, proxy: str) -> None:
    http("POST", "/proxies/p/toxics", {"name": "t", "type": "latency"})
    result = http("DELETE", "/proxies/p/toxics/t")
    assert result.status == 204 and result.body == b""
    assert http("GET", "/proxies/p/toxics").json() == []


def test_toxiproxy_python_toxics(tp: toxiproxy.Toxiproxy, echo: EchoServer) -> None:
    proxy = tp.create(upstream=echo.address, name="p")
    proxy.add_toxic(type="latency", attributes={"latency": 5})
    proxy.add_toxic(
        type="bandwidth", stream="upstream", name="bw", toxicity=0.5, attributes={"rate": 1000}
    )
    toxics = proxy.toxics()
    assert set(toxics) == {"latency_downstream", "bw"}
    assert toxics["bw"].stream == "upstream" and toxics["bw"].toxicity == 0.5
    assert toxics["latency_downstream"].attributes == {"latency": 5, "jitter": 0}
    with pytest.raises(ProxyExists):
        proxy.add_toxic(type="latency")
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="nope")
    assert proxy.destroy_toxic("bw") is True
    assert proxy.get_toxic("bw") is None
    with pytest.raises(NotFound):
        proxy.destroy_toxic("bw")


# --- reset ----------------------------------------------------------------------


def test_reset_enables_proxies_and_removes_toxics(
    http: Http, tp: toxiproxy.Toxiproxy, echo: EchoServer
) -> None:
    for name in ("a", "b"):
        http("POST", "/proxies", {"name": name, "upstream": echo.address, "listen": "127.0.0.1:0"})
        http("POST", f"/proxies/{name}/toxics", {"type": "latency", "attributes": {"latency": 1}})
    http("POST", "/proxies/b", {"enabled": False})
    result = http("POST", "/reset")
    assert result.status == 204
    proxies = http("GET", "/proxies").json()
    assert set(proxies) == {"a", "b"}
    assert all(p["enabled"] and p["toxics"] == [] for p in proxies.values())
    http("POST", "/proxies/a", {"enabled": False})
    assert tp.reset() is True
    assert http("GET", "/proxies/a").json()["enabled"] is True


# --- HTTP details -----------------------------------------------------------------


def test_keep_alive_and_chunked_bodies(server: ServerProcess, client: ToxiproxyClient) -> None:
    body = b'{"name": "k", "upstream": "127.0.0.1:1", "listen": "127.0.0.1:0"}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    requests_bytes = (
        b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /proxies HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked
        + b"GET /proxies/k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(requests_bytes)
        answer = recv_until_closed(sock)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert statuses == [b"200", b"201", b"200"]


@pytest.mark.ours_only
def test_server_module_needs_only_the_standard_library() -> None:
    code = (
        "import sys, harness.toxiproxy.__main__, harness.toxiproxy.server;"
        "sys.exit('requests' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, timeout=30, check=False)
    assert result.returncode == 0
