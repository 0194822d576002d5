"""Hostile request bodies: deep nesting, oversize bodies (declared or streamed), thousands of unknown
names. Each is answered in JSON with 400 or 413, nothing runs, nothing is written to stderr, and the
message stays short whatever was sent. Driven through `service.handle` and through the Cloud
Function (the functions-framework test client)."""

from __future__ import annotations

import io
import itertools
import json
import string
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
import requests
from functions_framework import create_app

from tests.helpers import ROOT, SEED_RESOURCES, served_function

LIMIT = 65536  # the documented body cap: 64 KiB


def deep(levels: int) -> bytes:
    return b'{"resources": ' + b"[" * levels + b"]" * levels + b"}"


def many_unknown(count: int) -> bytes:
    """`count` distinct unknown three-letter names, compact enough to stay under the cap."""
    names = ["".join(t) for t in itertools.islice(itertools.product(string.ascii_lowercase, repeat=3), count)]
    body = json.dumps({"resources": names}, separators=(",", ":")).encode()
    assert len(body) <= LIMIT, "the test body itself must be under the cap"
    return body


@pytest.fixture
def service(loader_env: Dict[str, str], fresh_service: Any) -> Any:
    return fresh_service


@pytest.fixture
def client(loader_env: Dict[str, str], fresh_service: Any) -> Any:
    return create_app(target="run_pipeline", source=str(ROOT / "main.py")).test_client()


def assert_json_error(answer: Any, status: int) -> Dict[str, Any]:
    assert answer.status_code == status, answer.get_data(as_text=True)[:500]
    assert answer.headers["Content-Type"] == "application/json"
    body = json.loads(answer.get_data(as_text=True))
    assert body["status"] == "error" and body["run_id"]
    return body


# -- through service.handle -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[" * 1000 + b"]" * 1000, id="array-1000"),
        pytest.param(deep(1000), id="resources-1000"),
        pytest.param(b'{"a":' * 10000 + b"1" + b"}" * 10000, id="object-10000"),
    ],
)
def test_deeply_nested_body_is_400_naming_the_nesting(service: Any, sim: Any, raw: bytes, capfd: Any) -> None:
    status, body = service.handle("POST", raw)

    assert status == 400
    assert "nested too deeply" in body["error"]
    assert all(name in body["error"] for name in SEED_RESOURCES)
    assert sim.sim.requests == []
    assert "Traceback" not in capfd.readouterr().err


def test_body_over_the_cap_is_413_naming_the_limit(service: Any, sim: Any) -> None:
    status, body = service.handle("POST", b"{}" + b" " * (LIMIT - 1))

    assert status == 413
    assert "65536 bytes" in body["error"] and "64 KiB" in body["error"]
    assert sim.sim.requests == []


def test_declared_length_over_the_cap_is_413_without_a_body(service: Any, sim: Any) -> None:
    status, body = service.handle("POST", b"", 10**9)

    assert status == 413
    assert "1000000000 bytes" in body["error"] and "65536" in body["error"]
    assert sim.sim.requests == []


def test_body_of_exactly_the_cap_is_parsed(service: Any, sim: Any) -> None:
    raw = b'{"resources": ["nope"]}'
    status, body = service.handle("POST", raw + b" " * (LIMIT - len(raw)))

    assert status == 400, "parsed (unknown name), not refused for its size"
    assert "'nope'" in body["error"]


def test_ten_thousand_unknown_names_get_a_short_400(service: Any, sim: Any) -> None:
    status, body = service.handle("POST", many_unknown(10000))

    assert status == 400
    assert "['aaa', 'aab', 'aac', 'aad', 'aae'] and 9995 more" in body["error"]
    assert "'aaf'" not in body["error"]
    assert all(name in body["error"] for name in SEED_RESOURCES)
    assert len(body["error"]) < 400
    assert sim.sim.requests == []


def test_long_unknown_name_and_many_unknown_fields_are_cut_short(service: Any) -> None:
    name_status, name_body = service.handle("POST", json.dumps({"resources": ["x" * 60000]}).encode())
    fields_status, fields_body = service.handle("POST", json.dumps({f"f{i}": 1 for i in range(5000)}).encode())

    assert (name_status, fields_status) == (400, 400)
    assert "'" + "x" * 40 + "...'" in name_body["error"] and "x" * 41 not in name_body["error"]
    assert "and 4995 more" in fields_body["error"] and 'the only field is "resources"' in fields_body["error"]
    assert max(len(name_body["error"]), len(fields_body["error"])) < 600  # the list of valid names, and a few


def test_repeated_unknown_name_is_counted_once(service: Any) -> None:
    status, body = service.handle("POST", json.dumps({"resources": ["nope"] * 3000 + ["segments"]}).encode())

    assert status == 400
    assert "unknown resource(s) ['nope'];" in body["error"]


# -- through the Cloud Function ----------------------------------------------------------------------


def test_function_answers_deep_nesting_with_json_400(client: Any, sim: Any, capfd: Any) -> None:
    answer = client.post("/", data=deep(1000), headers={"Content-Type": "application/json"})

    body = assert_json_error(answer, 400)
    assert "nested too deeply" in body["error"]
    assert sim.sim.requests == []
    assert "Traceback" not in capfd.readouterr().err


def test_function_answers_oversize_body_with_json_413(client: Any, sim: Any, capfd: Any) -> None:
    answer = client.post("/", data=b"{}" + b" " * LIMIT, headers={"Content-Type": "application/json"})

    body = assert_json_error(answer, 413)
    assert f"({LIMIT + 2} bytes)" in body["error"] and "65536" in body["error"]
    assert sim.sim.requests == []
    assert "Traceback" not in capfd.readouterr().err


class EndlessBody(io.RawIOBase):
    """A request body that never ends (chunked, no Content-Length); counts what was read of it.

    Past 16 MiB it raises instead of hanging the test: whoever reads that far reads everything."""

    def __init__(self) -> None:
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.served > 16 * 1024 * 1024:
            raise OSError("read 16 MiB of an endless body")
        size = min(len(buffer), 4096)
        buffer[:size] = b" " * size
        self.served += size
        return size


def test_function_reads_at_most_the_cap_of_an_endless_streamed_body(client: Any, sim: Any) -> None:
    stream = EndlessBody()

    # as a WSGI server passes a chunked body: no length, the server marks where the stream ends
    answer = client.post(
        "/",
        headers={"Content-Type": "application/json"},
        environ_overrides={"wsgi.input": stream, "wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
    )

    body = assert_json_error(answer, 413)
    assert "65536" in body["error"]
    assert LIMIT < stream.served <= LIMIT + 1 + 4096, "read just past the cap, then stopped"
    assert sim.sim.requests == []


def test_function_answers_ten_thousand_unknown_names_with_a_short_json_400(client: Any, sim: Any) -> None:
    answer = client.post("/", data=many_unknown(10000), headers={"Content-Type": "application/json"})

    body = assert_json_error(answer, 400)
    assert "and 9995 more" in body["error"]
    assert len(answer.get_data()) < 600
    assert sim.sim.requests == []


def test_function_still_runs_a_normal_body(client: Any, sim: Any) -> None:
    answer = client.post("/", data=b'{"resources": ["segments"]}', headers={"Content-Type": "application/json"})

    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["row_counts"] == {"segments": 25}
    assert {r["resource"] for r in sim.sim.requests if r["path"] != "/me"} == {"segments"}


@pytest.fixture
def served(loader_env: Dict[str, str], tmp_path: Path) -> Iterator[str]:
    """The function as a real process; its output must hold no traceback."""
    with served_function(loader_env, tmp_path / "function.log") as url:
        yield url
    assert "Traceback" not in (tmp_path / "function.log").read_text()


def test_served_function_refuses_large_and_streamed_bodies_and_keeps_serving(served: str, sim: Any) -> None:
    with requests.Session() as session:
        declared = session.post(served, data=b" " * (4 * 1024 * 1024), timeout=30)
        streamed = session.post(served, data=(b" " * 4096 for _ in range(1024)), timeout=30)  # chunked, 4 MiB
        nested = session.post(served, data=deep(1000), timeout=30)
        normal = session.post(served, json={"resources": ["segments"]}, timeout=120)

    assert (declared.status_code, streamed.status_code, nested.status_code, normal.status_code) == (413, 413, 400, 200)
    assert all(a.headers["Content-Type"] == "application/json" for a in (declared, streamed, nested, normal))
    assert "(4194304 bytes)" in declared.json()["error"] and "65536" in streamed.json()["error"]
    assert normal.json()["row_counts"] == {"segments": 25}
    assert {r["resource"] for r in sim.sim.requests if r["path"] != "/me"} == {"segments"}
