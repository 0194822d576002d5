"""The Cloud Function: `main.run_pipeline` through the functions-framework test client and a real
`functions-framework` process; Secret Manager faked at the client boundary."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Sequence

import pytest
import requests
from functions_framework import create_app
from google.api_core import exceptions as gexc

from loader import secrets
from loader.environment import SETTINGS, load_settings
from tests.helpers import API_KEY, ROOT, SEED_RESOURCES, served_function, table_counts

SECRET = "projects/p1/secrets/analytics-api-key/versions/latest"


@pytest.fixture
def client(loader_env: Dict[str, str], fresh_service: Any) -> Any:
    return create_app(target="run_pipeline", source=str(ROOT / "main.py")).test_client()


def post(client: Any, body: Any = None, raw: bytes = None) -> Any:
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    return client.post("/", data=data, headers={"Content-Type": "application/json"})


class FakeSecretManager:
    """Stands in for SecretManagerServiceClient: answers, or raises what Google's client raises."""

    def __init__(self, value: str = API_KEY, error: Exception = None) -> None:
        self.value, self.error, self.calls = value, error, []

    def access_secret_version(self, request: Dict[str, str]) -> Any:
        self.calls.append(request["name"])
        if self.error:
            raise self.error
        payload = type("Payload", (), {"data": self.value.encode()})
        return type("Response", (), {"payload": payload})


@pytest.fixture
def fake_sm(monkeypatch: pytest.MonkeyPatch, loader_env: Dict[str, str]) -> FakeSecretManager:
    fake = FakeSecretManager()
    monkeypatch.setattr(secrets, "client_factory", lambda: fake)
    monkeypatch.setenv("API_KEY_SECRET", SECRET)
    monkeypatch.delenv("SOURCES__ANALYTICS__API_KEY")
    return fake


def test_post_loads_everything_with_exact_row_counts(
    client: Any, loader_env: Dict[str, str], expected: Dict[str, int]
) -> None:
    answer = post(client, {})

    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["status"] == "ok"
    assert (body["pipeline"], body["destination"], body["dataset"]) == ("analytics", "duckdb", "analytics")
    assert body["row_counts"] == expected
    # two packages: the nine short resources load while the sessions chain is still read
    assert len(body["load_ids"]) == 2 and body["duration_s"] > 0
    assert {n: r["rows"] for n, r in body["resources"].items()} == {n: 25 for n in SEED_RESOURCES}
    assert table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"]) == expected


def seen_at_each_phase(monkeypatch: pytest.MonkeyPatch, look: Callable[[Sequence[str]], Any]) -> List[Any]:
    """What `look(resources)` returns at the start of each phase of the runs that follow, in order."""
    from loader import pipeline

    seen: List[Any] = []
    phase = pipeline._extract_normalize_load

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(look(args[2]))
        return phase(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_extract_normalize_load", spy)
    return seen


@pytest.mark.parametrize(
    "destination, setting, gzip",
    [
        pytest.param("duckdb", None, False, id="duckdb-default-uncompressed"),
        pytest.param("duckdb", "false", True, id="duckdb-gzip-when-the-user-sets-it"),
        pytest.param("filesystem", None, True, id="filesystem-default-gzip"),
    ],
)
def test_load_files_are_gzip_only_where_they_are_uploaded(
    client: Any,
    loader_env: Dict[str, str],
    expected: Dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    destination: str,
    setting: Any,
    gzip: bool,
) -> None:
    """DuckDB reads the run's files from the local disk: the extracted files are written without gzip
    (its load files are parquet, compressed by their format), unless the user says otherwise; the
    filesystem (and BigQuery: tests/test_bigquery_gzip.py) get gzip files, as uploads should."""
    from dlt.pipeline.pipeline import Pipeline

    monkeypatch.setenv("LOAD__DELETE_COMPLETED_JOBS", "false")  # keep the loaded files to look at
    monkeypatch.setenv("DESTINATION", destination)
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", str(tmp_path / "bucket"))
    if setting is not None:
        monkeypatch.setenv("DATA_WRITER__DISABLE_COMPRESSION", setting)
    extracted: List[bytes] = []  # the first bytes of each extracted data file, as normalize finds it
    normalize = Pipeline.normalize

    def seen_before_normalize(self: Any, *args: Any, **kwargs: Any) -> Any:
        for load_id in self.list_extracted_load_packages():
            jobs = self.get_load_package_info(load_id).jobs["new_jobs"]
            data = [j for j in jobs if not j.job_file_info.table_name.startswith("_dlt")]
            extracted.extend(Path(j.file_path).read_bytes()[:2] for j in data)
        return normalize(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "normalize", seen_before_normalize)

    answer = post(client, {})

    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["row_counts"] == expected
    assert len(extracted) >= len(SEED_RESOURCES), extracted
    assert {start == b"\x1f\x8b" for start in extracted} == {gzip}
    loaded = [p for p in Path(loader_env["DLT_DATA_DIR"]).rglob("*.*") if "completed_jobs" in p.parts]
    data = [p for p in loaded if not p.name.startswith("_dlt") and p.suffix != ".sql"]  # .sql: the merges
    assert len(data) >= len(SEED_RESOURCES), loaded
    if destination == "duckdb":
        assert {p.suffix for p in data} == {".parquet"}
        assert table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"]) == expected
    else:
        assert {p.read_bytes()[:2] == b"\x1f\x8b" for p in data} == {True}
    # the default is the run's only: the next run may load elsewhere
    assert os.environ.get("DATA_WRITER__DISABLE_COMPRESSION") == setting


def test_a_run_reads_with_short_gil_slices_and_gives_the_interval_back(
    client: Any, loader_env: Dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each phase runs with the 1 ms switch interval (a reading thread sends its next request sooner);
    the process gets its own interval back after the run."""
    from loader import pipeline

    seen = seen_at_each_phase(monkeypatch, lambda resources: sys.getswitchinterval())
    before = sys.getswitchinterval()

    assert post(client, {}).status_code == 200
    assert seen == [pipeline.GIL_SWITCH_INTERVAL_S] * 2, "both phases"
    assert sys.getswitchinterval() == before != pipeline.GIL_SWITCH_INTERVAL_S


def test_each_phase_polls_dlt_s_extract_workers_every_2_ms(
    client: Any, loader_env: Dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """dlt's extract sleeps its poll interval when no worker has an item and once or twice after a
    resource ends: the project's `.dlt/config.toml` makes that 2 ms (dlt's own: 10 ms), for each phase."""
    import dlt

    seen = seen_at_each_phase(monkeypatch, lambda resources: dlt.config.get("extract.futures_poll_interval"))

    assert post(client, {}).status_code == 200
    assert seen == [0.002, 0.002]


def test_a_run_opens_the_duckdb_file_once_and_frees_it_before_answering(
    client: Any, sim: Any, loader_env: Dict[str, str], expected: Dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One connection for the whole run (state sync, both phases, the run history), closed before the
    answer, whether every resource loaded or one failed."""
    import duckdb

    from simulator import Fault

    path = loader_env["DESTINATION__DUCKDB__CREDENTIALS"]
    opened: List[str] = []
    connect = duckdb.connect

    def counting(database: Any = ":memory:", *args: Any, **kwargs: Any) -> Any:
        opened.append(str(database))
        return connect(database, *args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", counting)
    assert post(client, {}).status_code == 200
    assert opened == [path]
    monkeypatch.setattr(duckdb, "connect", connect)
    assert table_counts(path) == expected  # opened read-only by this process: the run's connection is closed

    monkeypatch.setattr(duckdb, "connect", counting)
    sim.sim.configure(faults=[Fault(resource="segments", status=404)])
    answer = post(client, {})
    assert answer.status_code == 502 and answer.get_json()["resources"]["segments"]["status"] == "failed"
    assert opened == [path, path]
    monkeypatch.setattr(duckdb, "connect", connect)
    assert table_counts(path) == expected


def test_the_first_phase_is_in_the_duckdb_file_before_the_long_chains_load(
    client: Any, loader_env: Dict[str, str], expected: Dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's one connection writes the first phase from DuckDB's write-ahead log into the file
    while the sessions chain is still read, not all at the end."""
    wal = Path(loader_env["DESTINATION__DUCKDB__CREDENTIALS"] + ".wal")
    seen = seen_at_each_phase(
        monkeypatch, lambda resources: (list(resources), wal.stat().st_size if wal.exists() else 0)
    )

    assert post(client, {}).status_code == 200
    assert seen[-1] == (["sessions"], 0) and len(seen) == 2
    assert table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"]) == expected


def test_a_duckdb_file_held_by_another_process_is_named_in_the_answer(client: Any, loader_env: Dict[str, str]) -> None:
    import subprocess

    path = loader_env["DESTINATION__DUCKDB__CREDENTIALS"]
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys, time; c = duckdb.connect({path!r}); print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        answer = post(client, {})
    finally:
        holder.kill()
        holder.wait()

    assert answer.status_code == 500
    error = answer.get_json()["error"]
    assert f"cannot open the DuckDB warehouse {path}" in error and "DESTINATION__DUCKDB__CREDENTIALS" in error
    assert post(client, {}).status_code == 200, "the next run, with the file free, loads"


def test_a_duckdb_file_named_like_the_dataset_is_refused_before_it_is_opened(
    client: Any, loader_env: Dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """DuckDB names the catalog after the file: `analytics.duckdb` with dataset `analytics` is refused."""
    path = tmp_path / "analytics.duckdb"
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(path))

    answer = post(client, {})

    assert answer.status_code == 500
    error = answer.get_json()["error"]
    assert "DESTINATION__DUCKDB__CREDENTIALS file 'analytics.duckdb'" in error and "DATASET_NAME 'analytics'" in error
    assert not path.exists()


def test_a_run_keeps_the_objects_it_found_out_of_the_collector_and_gives_them_back(
    client: Any, loader_env: Dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Objects from before the run are frozen during both phases (the collector skips them), and
    unfrozen after the run, so that those that became garbage are collected as usual."""
    import gc

    frozen = seen_at_each_phase(monkeypatch, lambda resources: gc.get_freeze_count())
    before = gc.get_freeze_count()

    assert post(client, {}).status_code == 200
    assert len(frozen) == 2 and min(frozen) > before + 10_000, frozen
    assert gc.get_freeze_count() == before


def test_what_each_phase_s_extract_left_is_frozen_before_its_normalize(
    client: Any, loader_env: Dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The full collections of normalize and load skip what the extract left; all unfrozen after the run."""
    import gc

    from dlt.pipeline.pipeline import Pipeline

    at_phase = seen_at_each_phase(monkeypatch, lambda resources: gc.get_freeze_count())
    at_normalize: List[int] = []
    normalize = Pipeline.normalize

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.pipeline_name == loader_env.get("PIPELINE_NAME", "analytics"):  # not the run history's
            at_normalize.append(gc.get_freeze_count())
        return normalize(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "normalize", spy)
    before = gc.get_freeze_count()

    assert post(client, {}).status_code == 200
    assert len(at_phase) == len(at_normalize) == 2
    assert all(n > p for n, p in zip(at_normalize, at_phase, strict=True)), (at_phase, at_normalize)
    assert gc.get_freeze_count() == before


def test_loaded_data_is_not_kept_in_the_working_folder(client: Any, loader_env: Dict[str, str]) -> None:
    """The working folder is in memory on Cloud Functions and kept on a warm instance: after two runs it
    holds no data files (dlt's loaded packages are deleted), only state and schemas."""
    assert post(client).status_code == 200
    assert post(client).status_code == 200

    folder = Path(loader_env["DLT_DATA_DIR"])
    data = [p for p in folder.rglob("*") if p.is_file() and ".jsonl" in p.name or p.name.endswith((".parquet", ".gz"))]
    assert data == []


def test_subset_calls_only_its_endpoints_after_one_key_check(client: Any, sim: Any) -> None:
    answer = post(client, {"resources": ["sessions"]})

    assert answer.status_code == 200
    assert set(answer.get_json()["row_counts"]) == {"sessions", "sessions__pages"}
    paths = [r["path"] for r in sim.sim.requests]
    assert paths[0] == "/me" and set(paths[1:]) == {"/sessions/v2"}
    assert answer.get_json()["key_check"]["status"] == 200


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"{not json", id="malformed"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'"sessions"', id="string"),
        pytest.param(b'{"resources": "sessions"}', id="resources-not-a-list"),
        pytest.param(b'{"resources": []}', id="resources-empty"),
        pytest.param(b'{"resources": [1]}', id="resources-not-strings"),
        pytest.param(b'{"resources": ["sessions", "nope"]}', id="unknown-name"),
        pytest.param(b'{"resource": ["sessions"]}', id="unknown-field"),
    ],
)
def test_bad_bodies_get_400_listing_valid_names(client: Any, sim: Any, raw: bytes) -> None:
    answer = post(client, raw=raw)

    assert answer.status_code == 400
    body = answer.get_json()
    assert body["status"] == "error"
    assert all(name in body["error"] for name in SEED_RESOURCES)
    assert sim.sim.requests == [], "nothing runs on a bad request"


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_other_methods_get_405(client: Any, method: str) -> None:
    answer = getattr(client, method)("/")

    assert answer.status_code == 405
    assert answer.get_json()["status"] == "error"


def test_key_from_secret_manager_cached_per_instance(client: Any, fake_sm: FakeSecretManager, sim: Any) -> None:
    assert post(client, {"resources": ["segments"]}).status_code == 200
    assert post(client, {"resources": ["segments"]}).status_code == 200

    assert fake_sm.calls == [SECRET], "read once, then served from the instance cache"
    assert {r["authorization"] for r in sim.sim.requests} == {f"Bearer {API_KEY}"}


def test_rotated_key_is_read_again_after_the_cache_time(
    client: Any, fake_sm: FakeSecretManager, sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_KEY_CACHE_SECONDS", "0")
    assert post(client, {"resources": ["segments"]}).status_code == 200
    sim.sim.configure(api_key="rotated-key-91")
    fake_sm.value = "rotated-key-91"

    assert post(client, {"resources": ["segments"]}).status_code == 200
    assert len(fake_sm.calls) == 2
    assert sim.sim.requests[-1]["authorization"] == "Bearer rotated-key-91"


def test_key_rotated_within_the_cache_time_is_read_again_after_the_api_rejects_it(
    client: Any, fake_sm: FakeSecretManager, sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cached key is dropped when the API answers 401: the run after the rejected one reads
    the new version at once, not an hour later."""
    monkeypatch.setenv("API_KEY_CACHE_SECONDS", "3600")
    assert post(client, {"resources": ["segments"]}).status_code == 200
    sim.sim.configure(api_key="rotated-key-91")
    fake_sm.value = "rotated-key-91"

    rejected = post(client, {"resources": ["segments"]})
    recovered = post(client, {"resources": ["segments"]})

    assert (rejected.status_code, rejected.get_json()["resources"]["segments"]["status_code"]) == (502, 401)
    assert recovered.status_code == 200, recovered.get_json()
    assert fake_sm.calls == [SECRET, SECRET], "read, reused from the cache, dropped after the 401, read again"
    assert [r["authorization"] for r in sim.sim.requests_for("segments")][-3:] == ["Bearer rotated-key-91"] * 3


def test_key_is_read_again_after_a_403_even_within_the_cache_time(
    client: Any, fake_sm: FakeSecretManager, sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 403 drops the cached key too (a key revoked for this endpoint may have been replaced)."""
    from simulator import Fault

    monkeypatch.setenv("API_KEY_CACHE_SECONDS", "3600")
    assert post(client, {"resources": ["segments"]}).status_code == 200
    assert post(client, {"resources": ["segments"]}).status_code == 200
    assert fake_sm.calls == [SECRET], "within the cache time: read once"
    sim.sim.configure(faults=[Fault(resource="segments", status=403, times=1)])

    assert post(client, {"resources": ["segments"]}).status_code == 502
    assert post(client, {"resources": ["segments"]}).status_code == 200
    assert fake_sm.calls == [SECRET, SECRET], "dropped after the 403, read again on the next run"


def test_key_echoed_by_the_api_is_redacted_from_answer_and_logs(
    client: Any, fake_sm: FakeSecretManager, sim: Any, capfd: pytest.CaptureFixture
) -> None:
    """An API that echoes the Authorization value in its status line and body: the answer and
    the log lines show `***` where the key was."""
    from simulator import Fault

    sim.sim.configure(faults=[Fault(resource="segments", kind="echo_key", status=401)])

    answer = post(client, {"resources": ["segments", "webhooks"]})

    out, err = capfd.readouterr()
    body = answer.get_json()
    assert answer.status_code == 502
    assert "HTTP 401 Rejected Bearer *** from GET /segments/v1" in body["resources"]["segments"]["reason"]
    assert "HTTP 401 Rejected Bearer *** from GET /segments/v1" in body["error"]
    messages = [json.loads(line).get("message", "") for line in out.splitlines() if line.startswith("{")]
    assert any("Rejected Bearer ***" in m for m in messages), "the echo reached the logs, redacted"
    for text in (answer.get_data(as_text=True), out, err):
        assert API_KEY not in text
    assert body["resources"]["webhooks"]["status"] == "loaded"


@pytest.mark.parametrize(
    "error, words",
    [
        pytest.param(
            gexc.NotFound("secret not found"), ["not found", SECRET, "gcloud secrets versions add"], id="not-found"
        ),
        pytest.param(
            gexc.PermissionDenied("denied"),
            ["permission denied", SECRET, "roles/secretmanager.secretAccessor"],
            id="permission-denied",
        ),
    ],
)
def test_secret_manager_failures_are_500_naming_the_secret(
    client: Any, fake_sm: FakeSecretManager, sim: Any, error: Exception, words: List[str]
) -> None:
    fake_sm.error = error

    answer = post(client)

    assert answer.status_code == 500
    body = answer.get_json()
    assert body["status"] == "error"
    assert all(w in body["error"] for w in words), body["error"]
    assert sim.sim.requests == []


@pytest.mark.parametrize(
    "unset, named",
    [
        pytest.param("SOURCES__ANALYTICS__BASE_URL", "SOURCES__ANALYTICS__BASE_URL", id="base-url"),
        pytest.param("SOURCES__ANALYTICS__UID", "SOURCES__ANALYTICS__UID", id="uid"),
        pytest.param("SOURCES__ANALYTICS__API_KEY", "API_KEY_SECRET", id="api-key"),
    ],
)
def test_missing_setting_is_500_naming_it(client: Any, monkeypatch: pytest.MonkeyPatch, unset: str, named: str) -> None:
    monkeypatch.delenv(unset)

    answer = post(client)

    assert answer.status_code == 500
    assert named in answer.get_json()["error"]


@pytest.mark.parametrize(
    "env, named",
    [
        pytest.param({"DESTINATION": "snowflake"}, "DESTINATION", id="destination"),
        pytest.param({"API_KEY_SECRET": "my-secret"}, "API_KEY_SECRET", id="secret-name"),
        pytest.param({"DATASET_NAME": "bad-name!"}, "DATASET_NAME", id="dataset"),
        pytest.param(
            {"DATASET_NAME": "warehouse"}, "DESTINATION__DUCKDB__CREDENTIALS", id="duckdb-file-named-like-dataset"
        ),
    ],
)
def test_wrong_setting_is_500_naming_it(
    client: Any, monkeypatch: pytest.MonkeyPatch, env: Dict[str, str], named: str
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)

    answer = post(client)

    assert answer.status_code == 500
    assert named in answer.get_json()["error"]


def test_run_held_by_another_process_on_the_instance_gets_409(
    client: Any, loader_env: Dict[str, str], sim: Any
) -> None:
    import fcntl

    folder = Path(loader_env["DLT_DATA_DIR"])
    folder.mkdir(parents=True)
    with open(folder / "run.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        busy = post(client)
    after = post(client, {"resources": ["segments"]})

    assert busy.status_code == 409 and "in progress" in busy.get_json()["error"]
    assert after.status_code == 200
    assert {r["resource"] for r in sim.sim.requests if r["path"] != "/me"} == {"segments"}, (
        "the refused run called nothing"
    )


def test_upstream_failure_is_502_naming_resource_status_and_path(client: Any, sim: Any, sleeps: List[float]) -> None:
    from simulator import Fault

    sim.sim.configure(faults=[Fault(resource="operations", status=404)])

    answer = post(client)

    assert answer.status_code == 502
    body = answer.get_json()
    assert "operations" in body["error"] and "404" in body["error"] and "/operations/v1" in body["error"]
    assert body["resources"]["operations"]["status"] == "failed"


def test_bigquery_configuration_resolves_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    from loader.pipeline import destination_for

    monkeypatch.setenv("DESTINATION", "bigquery")
    monkeypatch.setenv("DESTINATION__BIGQUERY__LOCATION", "EU")
    monkeypatch.setenv("DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID", "my-project")

    destination = destination_for(load_settings())
    config = destination.configuration(destination.spec(), accept_partial=True)

    assert destination.destination_name == "bigquery"
    assert (config.location, config.credentials.project_id) == ("EU", "my-project")
    assert destination.capabilities().preferred_loader_file_format == "jsonl"


@pytest.mark.parametrize("destination", ["duckdb", "bigquery", "filesystem"])
def test_capabilities_are_dlts_resolved_once_per_naming_convention(
    monkeypatch: pytest.MonkeyPatch, loader_env: Dict[str, str], destination: str
) -> None:
    """dlt asks for the capabilities at every step; the run's destination resolves its configuration
    for them once per naming convention, and answers what dlt itself would, a copy each time."""
    from dlt.common.normalizers.naming import snake_case, sql_cs_v1

    from loader.destinations import _destination, destination_for

    monkeypatch.setenv("DESTINATION", destination)
    monkeypatch.setenv("DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID", "my-project")
    settings = load_settings()
    plain, cached = _destination(settings), destination_for(settings)
    resolved: List[Any] = []
    configuration = cached.configuration
    cached.configuration = lambda *args, **kwargs: resolved.append(args) or configuration(*args, **kwargs)
    namings = [None, snake_case.NamingConvention(), sql_cs_v1.NamingConvention()]

    for _ in range(3):
        for naming in namings:
            assert dict(cached.capabilities(naming=naming)) == dict(plain.capabilities(naming=naming))
    assert len(resolved) == len(namings)
    first, second = cached.capabilities(), cached.capabilities()
    first.max_identifier_length = 7
    assert second.max_identifier_length != 7


def test_logs_are_json_lines_with_run_id_and_resource_figures(client: Any, capsys: pytest.CaptureFixture) -> None:
    body = post(client, {"resources": ["segments", "webhooks"]}).get_json()

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert lines and all({"severity", "message"} <= set(line) for line in lines)
    mine = [line for line in lines if line.get("run_id") == body["run_id"]]
    figures = {line["resource"]: line for line in mine if "resource" in line}
    assert set(figures) == {"segments", "webhooks"}
    assert all({"rows", "pages", "retries", "seconds"} <= set(f) for f in figures.values())
    assert figures["segments"]["rows"] == 25 and figures["segments"]["pages"] == 3
    assert any(line.get("logger") == "analytics_loader" and "Extract" in line["message"] for line in lines), (
        "dlt progress"
    )


def test_key_never_in_logs_or_answers(
    client: Any, fake_sm: FakeSecretManager, sim: Any, sleeps: List[float], capfd: pytest.CaptureFixture
) -> None:
    from simulator import Fault

    answers = [post(client).get_data(as_text=True)]
    sim.sim.configure(faults=[Fault(resource="segments", status=401), Fault(resource="operations", status=503)])
    answers.append(post(client).get_data(as_text=True))
    sim.sim.configure(faults=[], api_key="other")
    answers.append(post(client).get_data(as_text=True))

    out, err = capfd.readouterr()
    assert out and json.loads(answers[0])["status"] == "ok" and json.loads(answers[1])["status"] == "error"
    for text in answers + [out, err]:
        assert API_KEY not in text
        assert f"Bearer {API_KEY}" not in text


def test_readme_settings_table_is_the_code_s() -> None:
    from loader.environment import markdown_table

    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- settings:start -->\n", 1)[1].split("\n<!-- settings:end -->", 1)[0]
    assert table == markdown_table(), "regenerate with: python -m loader.environment"
    assert all(f"`{s.name}`" in table for s in SETTINGS)


@pytest.fixture
def function_url(loader_env: Dict[str, str], tmp_path: Path) -> Iterator[str]:
    with served_function(loader_env, tmp_path / "function.log") as url:
        yield url


def test_real_functions_framework_process(
    function_url: str, loader_env: Dict[str, str], sim: Any, expected: Dict[str, int]
) -> None:
    first = requests.post(function_url, json={}, timeout=120)
    second = requests.post(function_url, data=b"", timeout=120)
    subset_from = len(sim.sim.requests)
    subset = requests.post(function_url, json={"resources": ["sessions"]}, timeout=120)
    bad = requests.post(function_url, data=b"{oops", timeout=30)

    assert (first.status_code, second.status_code, subset.status_code, bad.status_code) == (200, 200, 200, 400)
    assert first.json()["row_counts"] == expected
    assert table_counts(loader_env["DESTINATION__DUCKDB__CREDENTIALS"]) == expected
    assert {r["path"] for r in sim.sim.requests[subset_from:]} == {"/me", "/sessions/v2"}
    assert first.headers["Content-Type"] == "application/json"
