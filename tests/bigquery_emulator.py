"""A BigQuery emulator for the tests (a pytest plugin, registered in conftest.py).

`bqemulator` (pinned in requirements-bqemu.txt, installed into `.venv-bqemu` by `make bqemu`, which
`make test` runs) serves BigQuery's REST API on a loopback port, with DuckDB underneath. One
emulator serves the whole session; each test loads into a dataset of its own (`bigquery_env`).
Nothing is downloaded at run time: the DuckDB spatial extension it loads at start comes from a
pinned package, found through a HOME folder of the session's own. Clients reach it through a
loopback proxy (tests/bigquery_gzip_proxy.py) that inflates gzip load files, which the emulator
cannot read: the loader uploads them gzip'd, as deployed.

Also used by `scripts/demo.py` (`make demo DESTINATION=bigquery`).
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from tests.bigquery_gzip_proxy import GzipInflatingProxy
from tests.helpers import ROOT

VENV = ROOT / ".venv-bqemu"
PROJECT = "emulator-project"
INSTALL_HINT = "run `make bqemu` (or `make test`): it builds .venv-bqemu from requirements-bqemu.txt"
DUCKDB_PLATFORMS = {"x86_64": "linux_amd64", "aarch64": "linux_arm64", "arm64": "linux_arm64"}


class EmulatorError(RuntimeError):
    pass


class BigQueryEmulator:
    """One `bqemulator` process on 127.0.0.1 behind its gzip-inflating proxy, and what it logged (one JSON
    line per API call). `port` and `url` are the proxy's: what clients use."""

    def __init__(self, workdir: Path, project: str = PROJECT, data_dir: Optional[Path] = None) -> None:
        self.workdir = workdir
        self.project = project
        self.data_dir = data_dir  # None: in memory (ephemeral); else kept across restarts
        self.home = workdir / "home"
        self.uploads = workdir / "uploads"
        self.log_path = workdir / "emulator.log"
        self.port: Optional[int] = None  # the proxy's
        self.emulator_port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self.proxy: Optional[GzipInflatingProxy] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: Optional[int] = None, timeout: float = 60) -> BigQueryEmulator:
        """Start the emulator (on the port of its last start, or a free one), then its proxy on `port` (default:
        the port of the last start, or a free one), and wait for /healthz."""
        binary = VENV / "bin" / "bqemulator"
        if not binary.exists():
            raise EmulatorError(f"the BigQuery emulator is not installed ({binary} is missing): {INSTALL_HINT}")
        self._install_spatial_extension()
        self.uploads.mkdir(parents=True, exist_ok=True)
        port = self.port if port is None and self.port is not None else (port or 0)
        emulator_port = self.emulator_port or 0
        args = [
            str(binary),
            "start",
            "--rest-host",
            "127.0.0.1",
            "--rest-port",
            str(emulator_port),
            "--grpc-host",
            "127.0.0.1",
            "--grpc-port",
            "0",
            "--project",
            self.project,
            "--log-format",
            "json",
            "--log-level",
            "info",
        ]
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            args += ["--persistent", "--data-dir", str(self.data_dir)]
        else:
            args += ["--ephemeral"]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),  # DuckDB looks for installed extensions under $HOME/.duckdb
            "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false",  # else it downloads DuckDB's avro extension
            "BQEMU_UPLOAD_STAGING_DIR": str(self.uploads),  # the default /tmp/bqemu_uploads is shared
            "LANG": "C.UTF-8",
        }
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, env=env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        self.emulator_port = self._wait_until_listening(offset, timeout)
        self.proxy = GzipInflatingProxy(self.emulator_port)
        try:
            self.port = self.proxy.start(port)
        except OSError as exc:
            self.stop()
            raise EmulatorError(f"the emulator's gzip proxy cannot listen on 127.0.0.1:{port}: {exc}") from exc
        self._wait_until_healthy(timeout)
        return self

    def stop(self) -> None:
        """Stop the proxy, then the process this object started (by its PID); wait for it to exit."""
        proxy, self.proxy = self.proxy, None
        if proxy is not None:
            proxy.stop()
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    # -- what it logged ---------------------------------------------------------------------
    def log_offset(self) -> int:
        return self.log_path.stat().st_size

    def api_calls(self, since: int = 0) -> List[Dict[str, Any]]:
        """The API calls logged after byte `since` of the log: method, path, status."""
        with open(self.log_path, "rb") as log:
            log.seek(since)
            lines = log.read().decode("utf-8", errors="replace").splitlines()
        calls = []
        for line in lines:
            if '"http.request"' in line:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                calls.append({k: entry.get(k) for k in ("method", "path", "status")})
        return calls

    # -- clients ----------------------------------------------------------------------------
    def client(self) -> Any:
        """A google-cloud-bigquery client of the emulator (static token credentials)."""
        from google.api_core.client_options import ClientOptions
        from google.cloud import bigquery
        from google.oauth2.credentials import Credentials

        from loader.destinations import EMULATOR_TOKEN

        return bigquery.Client(
            project=self.project,
            client_options=ClientOptions(api_endpoint=self.url),
            credentials=Credentials(token=EMULATOR_TOKEN, quota_project_id=self.project),
        )

    def loader_env(self, dataset: str) -> Dict[str, str]:
        """What a run of the loader needs to load into `dataset` on this emulator."""
        return {
            "DESTINATION": "bigquery",
            "DATASET_NAME": dataset,
            "BIGQUERY_EMULATOR_HOST": self.url,
            "DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID": self.project,
            "NO_GCE_CHECK": "true",  # google-auth never probes a metadata server
        }

    # -- internals --------------------------------------------------------------------------
    def _install_spatial_extension(self) -> None:
        """Symlink the pinned spatial extension where DuckDB's `INSTALL spatial` finds it installed."""
        pattern = "lib/python*/site-packages/duckdb_extension_spatial/extensions/v*/spatial.duckdb_extension"
        shipped = sorted(VENV.glob(pattern))
        if not shipped:
            raise EmulatorError(f"the DuckDB spatial extension is not in {VENV}: {INSTALL_HINT}")
        version = shipped[-1].parent.name
        arch = DUCKDB_PLATFORMS.get(platform.machine(), f"linux_{platform.machine()}")
        target = self.home / ".duckdb" / "extensions" / version / arch / "spatial.duckdb_extension"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(shipped[-1])

    def _wait_until_listening(self, offset: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                for line in log.read().decode("utf-8", errors="replace").splitlines():
                    if '"rest.listen"' in line:
                        return int(json.loads(line)["port"])
            if self.proc is not None and self.proc.poll() is not None:
                code = self.proc.returncode
                raise EmulatorError(f"the BigQuery emulator exited with code {code}: {self._tail(offset)}")
            time.sleep(0.1)
        self.stop()
        raise EmulatorError(f"the BigQuery emulator did not listen within {timeout:.0f} s: {self._tail(offset)}")

    def _wait_until_healthy(self, timeout: float) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise EmulatorError(f"the BigQuery emulator at {self.url} did not answer /healthz within {timeout:.0f} s")

    def _tail(self, offset: int) -> str:
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", errors="replace")[-2000:]


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigQueryEmulator]:
    """The session's BigQuery emulator (in memory), started on a free loopback port."""
    emulator = BigQueryEmulator(tmp_path_factory.mktemp("bigquery-emulator"))
    try:
        emulator.start()
    except EmulatorError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield emulator
    emulator.stop()


@pytest.fixture
def bigquery_env(
    bigquery_emulator: BigQueryEmulator, loader_env: Dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Dict[str, str]:
    """`loader_env` switched to BigQuery: the session's emulator, a dataset of this test's own."""
    env = {**loader_env, **bigquery_emulator.loader_env(f"t_{uuid.uuid4().hex[:10]}")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
