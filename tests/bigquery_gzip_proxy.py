"""A loopback proxy in front of the BigQuery emulator that inflates gzip load files.

The deployed function uploads gzip'd JSONL load files (dlt's default) and BigQuery inflates them;
`bqemulator` reads load files with DuckDB's JSON reader, which does not. With this proxy between the
loader and the emulator, the tests load exactly what the function sends. Every request and answer
passes unchanged, except:

- upload bodies whose data starts with the gzip magic bytes are inflated: the file part of a
  `uploadType=multipart` POST, and the chunks (PUTs) of a `uploadType=resumable` session. A session's
  chunks are inflated as a stream and forwarded in pieces of at most `PIECE` bytes, each acknowledged
  by the emulator, so the proxy holds no whole file (a 100 MiB gzip chunk may inflate to 1 GiB);
  the client is answered in its own (compressed) byte offsets;
- the `Location` of a resumable session, which the emulator builds from the Host it was sent (its
  own), is rewritten to the proxy, so the chunks come through here.

When the emulator is down, the client's connection is closed without an answer, as a stopped
warehouse would do, so Google's client retries as it would. Standard library only.
"""

from __future__ import annotations

import http.client
import re
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

GZIP_MAGIC = b"\x1f\x8b"
UPLOAD_PATH = "/upload/bigquery/v2/"
PIECE = 8 * 1024 * 1024  # inflated bytes per PUT to the emulator
READ = 64 * 1024
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
CONTENT_RANGE = re.compile(r"bytes (?:(?P<start>\d+)-(?P<end>\d+)|\*)/(?P<total>\d+|\*)$")


class ConnectionDroppedError(Exception):
    """A connection ended early: the emulator refused or dropped it, or the client went away mid-body."""


def inflate_multipart(content_type: str, body: bytes) -> bytes:
    """The multipart/related `body` with each gzip part inflated (Google's client sends one JSON part, one file)."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if found is None:
        return body
    delimiter = b"--" + found.group(1).encode()
    parts = body.split(delimiter)
    for i, part in enumerate(parts):
        headers, blank, content = part.partition(b"\r\n\r\n")
        # the CRLF before the next delimiter belongs to the delimiter, not to the file
        if blank and content.startswith(GZIP_MAGIC) and content.endswith(b"\r\n"):
            parts[i] = headers + blank + inflate(content[:-2]) + b"\r\n"
    return delimiter.join(parts)


def inflate(data: bytes) -> bytes:
    """All gzip members of `data`, inflated (a concatenation of gzip files is one gzip file)."""
    out = Inflater()
    return b"".join(out.feed(data)) + out.finish()


class Inflater:
    """Incremental gunzip of a stream of any number of gzip members, in outputs of at most `PIECE` bytes."""

    def __init__(self) -> None:
        self.member = zlib.decompressobj(wbits=31)

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data:
            out = self.member.decompress(data, PIECE)  # bounded: gzip inflates up to ~1000x
            data = self.member.unconsumed_tail
            if self.member.eof and self.member.unused_data:
                data, self.member = self.member.unused_data, zlib.decompressobj(wbits=31)
            if out:
                yield out

    def finish(self) -> bytes:
        if not self.member.eof:
            raise ValueError("the gzip load file ends early (truncated)")
        return self.member.flush()


@dataclass
class GzipUpload:
    """A resumable session whose data is gzip: what the client sent, what the emulator has."""

    inflater: Inflater = field(default_factory=Inflater)
    received: int = 0  # compressed bytes from the client
    forwarded: int = 0  # inflated bytes acknowledged by the emulator
    pending: bytearray = field(default_factory=bytearray)  # inflated, not forwarded yet


class GzipInflatingProxy:
    """The proxy on a loopback port, forwarding to the emulator on `upstream_port`."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port: Optional[int] = None
        self.inflated_uploads = 0  # multipart bodies and resumable sessions inflated: what tests check
        self.uploads: Dict[str, GzipUpload] = {}  # by upload_id
        self.lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None

    def start(self, port: int = 0) -> int:
        """Listen on `port` (0: a free one) in a daemon thread; returns the port."""
        handler = type("Handler", (ProxyHandler,), {"proxy": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="bigquery-gzip-proxy", daemon=True).start()
        return self.port

    def stop(self) -> None:
        """Stop listening and free the port (the next start may take it again)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        self.uploads.clear()  # the emulator's sessions do not outlive it either

    def count_inflated(self) -> None:
        with self.lock:
            self.inflated_uploads += 1


class ProxyHandler(BaseHTTPRequestHandler):
    """One request; HTTP/1.0: a connection per request, so nothing lingers once the proxy stops."""

    proxy: GzipInflatingProxy

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except ConnectionDroppedError:
            self.close_connection = True  # no answer: the client sees what a stopped warehouse does

    def relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self.refuse(501, "the BigQuery gzip proxy takes request bodies with a Content-Length only")
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path.startswith(UPLOAD_PATH) and self.command == "POST" and query.get("uploadType") == ["multipart"]:
            body = self.rfile.read(length)
            inflated = inflate_multipart(self.headers.get("Content-Type", ""), body)
            if inflated != body:
                self.proxy.count_inflated()
            return self.answer(*self.forward([inflated], len(inflated)))
        if url.path.startswith(UPLOAD_PATH) and self.command == "PUT" and query.get("upload_id"):
            return self.put_chunk(query["upload_id"][0], length)
        return self.answer(*self.forward(self.body(length), length))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = relay  # noqa: N815 (http.server's names)

    def put_chunk(self, upload_id: str, length: int) -> None:
        """A chunk of a resumable session: passed through, unless the session's data is gzip."""
        content_range = self.headers.get("Content-Range", "")
        upload = self.proxy.uploads.get(upload_id)
        if upload is None:
            head = self.rfile.read(min(len(GZIP_MAGIC), length))
            if not (head == GZIP_MAGIC and content_range.startswith("bytes 0-")):
                return self.answer(*self.forward(self.body(length - len(head), head), length))
            upload = self.proxy.uploads[upload_id] = GzipUpload()
            self.proxy.count_inflated()
        else:
            head = b""
        found = CONTENT_RANGE.match(content_range)
        if found is None or int(found["start"] or upload.received) != upload.received:
            self.proxy.uploads.pop(upload_id, None)
            return self.refuse(
                501, f"the BigQuery gzip proxy cannot resume a gzip upload at {content_range!r}: start it again"
            )
        for data in self.body(length - len(head), head):
            upload.received += len(data)
            for out in upload.inflater.feed(data):
                upload.pending += out
                while len(upload.pending) > PIECE:  # keep a remainder: the last PUT must carry data
                    answer = self.forward_piece(upload, final=False)
                    if answer[0] != 308:
                        self.proxy.uploads.pop(upload_id, None)
                        return self.answer(*answer)
        if found["total"] == "*" or upload.received < int(found["total"]):
            # the emulator has all it acknowledged, the rest is pending: the client's offsets are compressed
            acknowledged = [("Range", f"bytes=0-{upload.received - 1}"), ("Content-Length", "0")]
            return self.answer(308, "Resume Incomplete", acknowledged, [])
        self.proxy.uploads.pop(upload_id, None)
        try:
            upload.pending += upload.inflater.finish()
        except ValueError as exc:
            return self.refuse(400, str(exc))
        return self.answer(*self.forward_piece(upload, final=True))

    def forward_piece(self, upload: GzipUpload, final: bool) -> Tuple[int, str, List[Tuple[str, str]], Iterable[bytes]]:
        """PUT the next inflated piece (all that is pending when `final`) to the emulator's session."""
        piece = bytes(upload.pending if final else upload.pending[:PIECE])
        del upload.pending[: len(piece)]
        start, end = upload.forwarded, upload.forwarded + len(piece) - 1
        total = str(end + 1) if final else "*"
        answer = self.forward([piece], len(piece), {"Content-Range": f"bytes {start}-{end}/{total}"})
        upload.forwarded += len(piece)
        if not final:
            answer = (answer[0], answer[1], answer[2], [b"".join(answer[3])])  # read it: the connection closes
        return answer

    def forward(
        self, body: Iterable[bytes], length: int, replace: Optional[Dict[str, str]] = None
    ) -> Tuple[int, str, List[Tuple[str, str]], Iterable[bytes]]:
        """Send this request with `body` to the emulator; its status, reason, headers and body (a stream)."""
        port = self.proxy.upstream_port
        upstream = http.client.HTTPConnection("127.0.0.1", port)  # no timeout: a load may take minutes
        replace = {"Host": f"127.0.0.1:{port}", "Content-Length": str(length), **(replace or {})}
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP and name.title() not in replace:
                    upstream.putheader(name, value)
            for name, value in replace.items():
                upstream.putheader(name, value)
            upstream.endheaders()
            for data in body:
                upstream.send(data)
            response = upstream.getresponse()
        except (ConnectionError, http.client.HTTPException) as exc:
            upstream.close()
            raise ConnectionDroppedError(str(exc)) from exc
        headers = [(k, self.own_location(k, v)) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
        return response.status, response.reason, headers, self.stream(response, upstream)

    def answer(self, status: int, reason: str, headers: List[Tuple[str, str]], body: Iterable[bytes]) -> None:
        """Answer the client; a body without a Content-Length ends when the connection closes (HTTP/1.0)."""
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        for data in body:
            self.wfile.write(data)

    def refuse(self, status: int, message: str) -> None:
        self.send_error(status, explain=message)

    def own_location(self, name: str, value: str) -> str:
        """A Location at the emulator's address, pointed at the proxy's."""
        emulator = f"//127.0.0.1:{self.proxy.upstream_port}/"
        if name.lower() == "location" and emulator in value:
            return value.replace(emulator, f"//127.0.0.1:{self.proxy.port}/", 1)
        return value

    def body(self, length: int, head: bytes = b"") -> Iterator[bytes]:
        """The request's body (after `head`, already read), as it arrives."""
        if head:
            yield head
        while length > 0:
            data = self.rfile.read(min(READ, length))
            if not data:
                raise ConnectionDroppedError("the client closed the connection mid-body")
            length -= len(data)
            yield data

    @staticmethod
    def stream(response: http.client.HTTPResponse, upstream: http.client.HTTPConnection) -> Iterator[bytes]:
        try:
            while data := response.read(READ):
                yield data
        except (ConnectionError, http.client.HTTPException) as exc:
            raise ConnectionDroppedError(str(exc)) from exc
        finally:
            upstream.close()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
        pass  # the emulator logs every call (BigQueryEmulator.api_calls)
