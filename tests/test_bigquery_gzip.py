"""Gzip load files into the BigQuery emulator, through its inflating proxy (tests/bigquery_gzip_proxy.py).

The deployed function uploads gzip'd JSONL; the emulator cannot read gzip, the proxy in front of it
inflates upload bodies. First the proxy alone, in front of a recording stand-in of the emulator's
upload endpoints; then the real emulator: Google's client uploading a gzip file too large for one
multipart request, a session in several chunks, and a run of the function with dlt's defaults.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import threading
import uuid
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import requests
from bigquery_emulator import BigQueryEmulator
from google.resumable_media.requests import MultipartUpload, ResumableUpload

from tests import bigquery_gzip_proxy
from tests.bigquery_gzip_proxy import GzipInflatingProxy
from tests.helpers import post

pytestmark = pytest.mark.filterwarnings("ignore:Cannot create BigQuery Storage client")

CHUNK = 256 * 1024  # the smallest chunk google-resumable-media allows
UPLOADS = "/upload/bigquery/v2/projects/p/jobs"
JOB = {"configuration": {"load": {"sourceFormat": "NEWLINE_DELIMITED_JSON"}}}


def jsonl(rows: int, seed: int = 0) -> bytes:
    """`rows` JSON lines of random hex: gzip halves them (a file of them stays about half its size)."""
    rnd = random.Random(seed)
    return b"".join(b'{"id":%d,"blob":"%s"}\n' % (i, rnd.randbytes(32).hex().encode()) for i in range(rows))


# -- the proxy alone -------------------------------------------------------------------------------
class RecordingUploads(BaseHTTPRequestHandler):
    """The emulator's upload endpoints as far as a client sees them; records what reached it."""

    seen: List[Tuple[str, str, Message, bytes]]
    received: bytearray

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.record()
        if "uploadType=resumable" in self.path:
            # as bqemulator: the session's address is built from the Host the request was sent to
            return self.reply(200, {"Location": f"http://{self.headers['Host']}{UPLOADS}?upload_id=s1"})
        self.reply(200, {}, body)

    def do_PUT(self) -> None:  # noqa: N802 (http.server's name)
        self.received += self.record()
        found = re.match(r"bytes \d+-(\d+)/(\d+|\*)", self.headers["Content-Range"])
        assert found is not None
        if found[2] != "*" and int(found[1]) + 1 == int(found[2]):
            return self.reply(200, {}, b'{"done": true}')
        self.reply(308, {"Range": f"bytes=0-{len(self.received) - 1}"})

    def record(self) -> bytes:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.command, self.path, self.headers, body))
        return body

    def reply(self, status: int, headers: Dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stand_in() -> Iterator[Tuple[GzipInflatingProxy, RecordingUploads]]:
    """The proxy in front of a recording stand-in of the emulator."""
    recorder = type("Recorder", (RecordingUploads,), {"seen": [], "received": bytearray()})
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), recorder)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    proxy = GzipInflatingProxy(upstream.server_address[1])
    proxy.start()
    yield proxy, recorder  # type: ignore[misc]
    proxy.stop()
    upstream.shutdown()
    upstream.server_close()


def test_proxy_inflates_the_file_part_of_a_gzip_multipart_upload(stand_in: Any) -> None:
    proxy, upstream = stand_in
    data = jsonl(100)
    upload = MultipartUpload(f"http://127.0.0.1:{proxy.port}{UPLOADS}?uploadType=multipart")

    answer = upload.transmit(requests.Session(), gzip.compress(data), JOB, "application/octet-stream")

    assert answer.status_code == 200
    [(method, _, headers, body)] = upstream.seen
    assert method == "POST"
    assert int(headers["Content-Length"]) == len(body)
    assert data in body, "the file part arrives inflated"
    assert json.dumps(JOB).encode() in body, "the JSON part arrives unchanged"
    assert answer.content == body, "the answer comes back unchanged"
    assert proxy.inflated_uploads == 1


def test_proxy_inflates_a_gzip_resumable_upload_chunk_by_chunk_at_its_own_address(
    stand_in: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several chunks from the client; the emulator gets the inflated file in pieces, the last with its size."""
    monkeypatch.setattr(bigquery_gzip_proxy, "PIECE", 100_000)
    proxy, upstream = stand_in
    data = jsonl(20_000)
    packed = gzip.compress(data)
    assert len(packed) > 2 * CHUNK
    upload = ResumableUpload(f"http://127.0.0.1:{proxy.port}{UPLOADS}?uploadType=resumable", CHUNK)
    transport = requests.Session()

    upload.initiate(transport, BytesIO(packed), JOB, "application/octet-stream", stream_final=False)
    answers = [upload.transmit_next_chunk(transport) for _ in range(99) if not upload.finished]

    assert upload.resumable_url == f"http://127.0.0.1:{proxy.port}{UPLOADS}?upload_id=s1", "Location rewritten"
    assert [a.status_code for a in answers] == [308] * (len(answers) - 1) + [200]
    assert len(answers) == -(-len(packed) // CHUNK)
    assert upload.bytes_uploaded == len(packed), "the client is answered in its own (compressed) offsets"
    assert bytes(upstream.received) == data
    ranges = [h["Content-Range"] for m, _, h, _ in upstream.seen if m == "PUT"]
    assert all(r.endswith("/*") for r in ranges[:-1]) and ranges[-1].endswith(f"/{len(data)}"), ranges
    assert max(len(b) for m, _, _, b in upstream.seen if m == "PUT") <= 100_000
    assert answers[-1].json() == {"done": True}


def test_proxy_passes_uncompressed_uploads_unchanged(stand_in: Any) -> None:
    proxy, upstream = stand_in
    data = jsonl(2000)
    upload = ResumableUpload(f"http://127.0.0.1:{proxy.port}{UPLOADS}?uploadType=resumable", CHUNK)
    transport = requests.Session()

    upload.initiate(transport, BytesIO(data), JOB, "application/octet-stream")
    while not upload.finished:
        upload.transmit_next_chunk(transport)

    assert bytes(upstream.received) == data
    ranges = [h["Content-Range"] for m, _, h, _ in upstream.seen if m == "PUT"]
    assert ranges == [f"bytes {i}-{min(i + CHUNK, len(data)) - 1}/{len(data)}" for i in range(0, len(data), CHUNK)]
    assert proxy.inflated_uploads == 0


# -- the emulator behind it ------------------------------------------------------------------------
@pytest.fixture
def table(bigquery_emulator: BigQueryEmulator) -> Iterator[str]:
    client = bigquery_emulator.client()
    dataset = client.create_dataset(f"{bigquery_emulator.project}.gz_{uuid.uuid4().hex[:10]}")
    yield f"{dataset.project}.{dataset.dataset_id}.rows"
    client.delete_dataset(dataset, delete_contents=True)


def load_config() -> Any:
    from google.cloud import bigquery

    return bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
        schema=[bigquery.SchemaField("id", "INTEGER"), bigquery.SchemaField("blob", "STRING")],
    )


def count(emulator: BigQueryEmulator, table: str) -> int:
    return next(iter(emulator.client().query(f"select count(*) as n from `{table}`").result()))["n"]


def test_gzip_file_above_the_multipart_limit_loads_with_every_row(
    bigquery_emulator: BigQueryEmulator, table: str
) -> None:
    """As dlt uploads a load file: an open file of unknown size, so a resumable session."""
    rows = 160_000
    packed = gzip.compress(jsonl(rows))
    assert len(packed) > 5 * 1024 * 1024, "above Google's client's multipart limit"

    job = bigquery_emulator.client().load_table_from_file(BytesIO(packed), table, job_config=load_config())
    job.result()

    assert count(bigquery_emulator, table) == rows


def test_gzip_file_in_several_chunks_loads_with_every_row(bigquery_emulator: BigQueryEmulator, table: str) -> None:
    rows = 20_000
    packed = gzip.compress(jsonl(rows, seed=1))
    project, dataset, name = table.split(".")
    destination = {"projectId": project, "datasetId": dataset, "tableId": name}
    job = {"configuration": {"load": {**load_config().to_api_repr()["load"], "destinationTable": destination}}}
    url = f"{bigquery_emulator.url}/upload/bigquery/v2/projects/{project}/jobs?uploadType=resumable"
    upload, transport = ResumableUpload(url, CHUNK), requests.Session()

    upload.initiate(transport, BytesIO(packed), job, "application/octet-stream", stream_final=False)
    chunks = 0
    while not upload.finished:
        answer = upload.transmit_next_chunk(transport)
        chunks += 1

    assert chunks > 2
    assert answer.json()["status"]["state"] == "DONE", answer.json()
    assert "errorResult" not in answer.json()["status"], answer.json()
    assert count(bigquery_emulator, table) == rows


def test_function_run_uploads_gzip_load_files_and_loads_every_row(
    bigquery_env: Dict[str, str], bigquery_emulator: BigQueryEmulator, fresh_service: Any, expected: Dict[str, int]
) -> None:
    """dlt's defaults, as deployed: every load file the run uploads is gzip, and every row arrives."""
    assert "DATA_WRITER__DISABLE_COMPRESSION" not in bigquery_env
    proxy = bigquery_emulator.proxy
    assert proxy is not None
    before, offset = proxy.inflated_uploads, bigquery_emulator.log_offset()

    status, body = post(fresh_service)

    assert status == 200, body.get("error")
    uploads = [c for c in bigquery_emulator.api_calls(offset) if c["method"] == "POST" and "/upload/" in c["path"]]
    assert uploads and proxy.inflated_uploads - before == len(uploads), "every load file was gzip"
    dataset = f"{bigquery_emulator.project}.{bigquery_env['DATASET_NAME']}"
    assert {t: count(bigquery_emulator, f"{dataset}.{t}") for t in expected} == expected
