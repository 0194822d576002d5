"""A run lock that spans instances: one object in a Cloud Storage bucket, created only if absent.

Cloud Run may briefly run more instances than `max_instance_count`, and Cloud Scheduler may deliver
a job twice; two runs merging through one staging dataset can duplicate or drop rows. The
working-folder lock (`loader.service`) covers one instance; this object covers all of them:

- taken: `run-lock/<pipeline>` created with `if_generation_match=0`; a 412 means another run holds it;
- stale: a lock older than `RUN_LOCK_TTL_SECONDS` (longer than the function's timeout) was left by a
  run that crashed; it is overwritten with `if_generation_match=<its generation>`, so of two runs
  taking it over at once only one succeeds;
- released: deleted with `if_generation_match=<own generation>`, so a run that outlived the TTL
  cannot delete the lock of the run that took it over.

The object holds the run id and its times, nothing else (no setting, no key). Google's client is
imported and created on the first lock, once per instance: `import main` stays cheap.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Dict, Optional

from loader.environment import FunctionSettings
from loader.logs import LOGGER_NAME

log = logging.getLogger(LOGGER_NAME)

LOCK_PREFIX = "run-lock/"
# Seconds for one storage request to answer; the lock is a few hundred bytes.
REQUEST_TIMEOUT_SECONDS = 10.0
# Transient storage errors (429, 5xx, connection resets) are retried for this long in all before
# the run is refused with a 500: long enough for a blip, short against Scheduler's attempt deadline.
RETRY_SECONDS = 20.0
# Rounds of look-and-take when the lock changes hands between our calls; more means contention,
# answered as "held".
_ROUNDS = 3

_client: Any = None
_client_lock = threading.Lock()


def storage_client() -> Any:
    """The instance's Cloud Storage client, created on first use (Application Default Credentials;
    `STORAGE_EMULATOR_HOST` points it at an emulator)."""
    global _client
    with _client_lock:
        if _client is None:
            from google.cloud.storage import Client

            _client = Client()
        return _client


def forget_client() -> None:
    """Drop the cached client: the next lock creates one from the current environment."""
    global _client
    with _client_lock:
        _client = None


class RunLockHeldError(Exception):
    """Another run, on another instance, holds the lock (answered 409)."""


class RunLockError(Exception):
    """The lock could not be taken for a reason other than another run (answered 500)."""


@dataclass(frozen=True)
class HeldRunLock:
    """The lock as this run holds it: release it when the run ends."""

    lock: RunLock
    run_id: str
    generation: int

    def release(self) -> None:
        self.lock.release(self)


@dataclass(frozen=True)
class _Holder:
    generation: int
    run_id: str
    started: Optional[datetime]


class RunLock:
    """The cross-instance lock of one pipeline in one bucket."""

    def __init__(self, bucket: str, pipeline_name: str, ttl_seconds: float) -> None:
        self.bucket_name = bucket
        self.object_name = LOCK_PREFIX + pipeline_name
        self.ttl_seconds = ttl_seconds

    @property
    def url(self) -> str:
        return f"gs://{self.bucket_name}/{self.object_name}"

    def acquire(self, run_id: str) -> HeldRunLock:
        """Take the lock for `run_id`.

        Raises:
            RunLockHeldError: another run holds it and it is not stale.
            RunLockError: storage failed (naming RUN_LOCK_BUCKET and the cause).
        """
        try:
            return self._acquire(run_id)
        except RunLockHeldError:
            raise
        except Exception as exc:
            raise RunLockError(
                f"the run lock {self.url} could not be taken (RUN_LOCK_BUCKET={self.bucket_name!r}): {_cause(exc)}; "
                "check that the bucket exists and that the function's service account may create, read and delete "
                "objects in it"
            ) from None

    def release(self, held: HeldRunLock) -> None:
        """Delete the lock if it is still this run's. Never raises: a lock left behind expires after the TTL."""
        try:
            self._bucket().blob(self.object_name).delete(
                if_generation_match=held.generation, timeout=REQUEST_TIMEOUT_SECONDS, retry=self._retry()
            )
        except Exception as exc:
            code = getattr(exc, "code", None)
            if code == 412:
                message = (
                    f"run lock {self.url} was taken over by another run (this one outlived "
                    f"RUN_LOCK_TTL_SECONDS={self.ttl_seconds:g}); left to that run"
                )
            elif code == 404:
                message = f"run lock {self.url} was already gone at release"
            else:
                message = (
                    f"run lock {self.url} could not be released: {_cause(exc)}; "
                    f"the next run takes it over after RUN_LOCK_TTL_SECONDS={self.ttl_seconds:g}"
                )
            level = logging.WARNING if code in (404, 412) else logging.ERROR
            log.log(level, message, extra={"run_id": held.run_id})

    # -- the steps ---------------------------------------------------------------------------------
    def _acquire(self, run_id: str) -> HeldRunLock:
        from google.api_core.exceptions import PreconditionFailed

        holder: Optional[_Holder] = None
        for _ in range(_ROUNDS):
            try:
                return HeldRunLock(self, run_id, self._write(run_id, if_generation_match=0))
            except PreconditionFailed:
                pass
            holder = self._read()
            if holder is None:
                continue  # released between our two calls: try again
            if holder.run_id == run_id:
                # our own create, retried after its answer was lost
                return HeldRunLock(self, run_id, holder.generation)
            if not self._is_stale(holder):
                raise RunLockHeldError(self._held_message(holder))
            try:
                generation = self._write(run_id, if_generation_match=holder.generation)
            except PreconditionFailed:
                continue  # another run took it over or released it first: look again
            log.warning(
                f"run lock {self.url} of run {holder.run_id} (started {_iso(holder.started)}) is older than "
                f"RUN_LOCK_TTL_SECONDS={self.ttl_seconds:g}: taken over (that run crashed or outlived its timeout)",
                extra={"run_id": run_id, "stale_run_id": holder.run_id},
            )
            return HeldRunLock(self, run_id, generation)
        raise RunLockHeldError(self._held_message(holder))

    def _write(self, run_id: str, if_generation_match: int) -> int:
        now = time.time()
        body = {
            "run_id": run_id,
            "started_at": _iso(_utc(now)),
            "expires_at": _iso(_utc(now + self.ttl_seconds)),
        }
        blob = self._bucket().blob(self.object_name)
        blob.upload_from_string(
            json.dumps(body),
            content_type="application/json",
            if_generation_match=if_generation_match,
            timeout=REQUEST_TIMEOUT_SECONDS,
            retry=self._retry(),
        )
        return int(blob.generation)

    def _read(self) -> Optional[_Holder]:
        """The current holder, or None when there is no lock (or it changed while being read)."""
        from google.api_core.exceptions import NotFound, PreconditionFailed

        blob = self._bucket().get_blob(self.object_name, timeout=REQUEST_TIMEOUT_SECONDS, retry=self._retry())
        if blob is None:
            return None
        try:
            raw = blob.download_as_bytes(
                if_generation_match=blob.generation, timeout=REQUEST_TIMEOUT_SECONDS, retry=self._retry()
            )
        except (NotFound, PreconditionFailed):
            return None
        body = _json_object(raw)
        started = _parse_time(body.get("started_at")) or blob.updated  # unreadable body: the object's own time
        return _Holder(int(blob.generation), str(body.get("run_id") or "unknown"), started)

    def _is_stale(self, holder: _Holder) -> bool:
        if holder.started is None:
            return True  # no time at all: nothing says it is alive
        return time.time() - holder.started.timestamp() > self.ttl_seconds

    def _held_message(self, holder: Optional[_Holder]) -> str:
        by = f" (run {holder.run_id}, started {_iso(holder.started)})" if holder is not None else ""
        return f"a run is already in progress on another instance{by}; try again when it ends"

    def _bucket(self) -> Any:
        return storage_client().bucket(self.bucket_name)

    def _retry(self) -> Any:
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_timeout(RETRY_SECONDS)


def take_run_lock(settings: FunctionSettings, run_id: str) -> Optional[HeldRunLock]:
    """The cross-instance lock for this run, or None when `RUN_LOCK_BUCKET` is unset (local runs)."""
    if not settings.run_lock_bucket:
        return None
    return RunLock(settings.run_lock_bucket, settings.pipeline_name, settings.run_lock_ttl_seconds).acquire(run_id)


def _cause(exc: BaseException) -> str:
    last = getattr(exc, "cause", None)  # google.api_core's RetryError: the error that kept coming back
    if isinstance(last, BaseException):
        return f"{_cause(last)} (still failing after {RETRY_SECONDS:g} s of retries)"
    text = str(exc).splitlines()[0] if str(exc) else ""
    text = text if len(text) <= 300 else text[:300] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _iso(moment: Optional[datetime]) -> str:
    return moment.isoformat(timespec="seconds") if moment is not None else "unknown"


def _parse_time(value: Any) -> Optional[datetime]:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _json_object(raw: bytes) -> Dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
