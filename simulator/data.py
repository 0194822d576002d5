"""Deterministic records of the ten endpoints, in the seed's shapes and the documented ones."""

from datetime import UTC, datetime, timedelta
from typing import Any, Dict, List

from source.settings import RESOURCE_NAMES

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
SINGLETONS = ("blockrules", "domainsettings", "geosettings", "recordingfeatures")


def _created(i: int) -> str:
    return (EPOCH + timedelta(minutes=i)).isoformat().replace("+00:00", "Z")


def seed_record(resource: str, i: int) -> Dict[str, Any]:
    """Record `i` of a resource in the seed's shape: `id`, `name`, `createdTime` and its own fields."""
    base: Dict[str, Any] = {"id": f"{resource}-{i}", "name": f"{resource} {i}", "createdTime": _created(i)}
    if resource == "sessions":
        base.update(
            userId=f"user-{i % 97}",
            durationMs=1000 + i,
            device={"browser": "firefox" if i % 2 else "chrome", "os": "linux"},
            pages=[{"url": f"https://shop.example/p/{j}", "durationMs": 100 * j} for j in range(i % 3)],
        )
    elif resource == "segments":
        base.update(creator={"email": f"analyst{i % 5}@example.com"}, url=f"https://app.example/segments/{i}")
    elif resource == "operations":
        base.update(type="export", state="COMPLETED" if i % 4 else "RUNNING", estimatePctComplete=100 if i % 4 else 50)
    elif resource == "blockrules":
        base.update(blockedIps=[f"192.0.2.{i % 250}", f"198.51.100.{i % 250}"], enabled=True)
    elif resource == "domainsettings":
        base.update(domain=f"site{i}.example", disabled=i % 7 == 0)
    elif resource == "geosettings":
        base.update(recordGeoMode="ALLOW", recordGeoZones=["EU", "US"][: 1 + i % 2])
    elif resource == "recordingfeatures":
        base.update(enabled=True, consoleWatcher=i % 2 == 0, ajaxWatcher=True)
    elif resource == "sessionTargetingRules":
        base.update(conditions=[{"field": "url", "op": "contains", "value": f"/checkout/{i}"}], sampleRate=0.5)
    elif resource == "webhooks":
        base.update(
            url=f"https://hooks.example/{i}",
            enabled=True,
            eventTypes=[
                {"eventName": "recording.event", "subcategory": "s"},
                {"eventName": "note.created", "subcategory": ""},
            ][: 1 + i % 2],
        )
    elif resource == "eventDefs":
        base.update(eventName=f"event.{i}", displayName=f"Event {i}", hasSubcategories=i % 2 == 0)
    return base


_METADATA = {
    "lastUpdated": "2026-11-01T10:00:00Z",
    "lastUpdatedBy": "admin@example.com",
    "created": "2025-01-01T00:00:00Z",
    "createdBy": "admin@example.com",
}


def documented_record(resource: str, i: int) -> Dict[str, Any]:
    """Record `i` in the shape the real API documents (`shared/reference/real-api.md`)."""
    if resource == "sessions":
        return {
            "userId": str(5000 + i % 97),
            "sessionId": str(9_000_000 + i),
            "createdTime": str(1_767_225_600 + i),
            "fsUrl": f"https://app.example/session/{i}",
        }
    if resource == "segments":
        return {
            "id": f"seg-{i}",
            "name": f"segment {i}",
            "creator": f"analyst{i % 5}@example.com",
            "created": _created(i),
            "url": f"https://app.example/segments/{i}",
        }
    if resource == "operations":
        return {
            "id": f"op-{i}",
            "type": "SEARCH_EXPORT",
            "details": {"segmentId": f"seg-{i}"} if i % 3 else None,
            "results": "" if i % 2 else {"expires": _created(i)},
            "state": "COMPLETED",
            "errorDetails": None,
            "createdAt": _created(i),
            "finishedAt": _created(i + 1),
            "estimatePctComplete": 100,
            "step": "DONE",
        }
    if resource == "sessionTargetingRules":
        return {
            "id": f"rule-{i}",
            "name": f"rule {i}",
            "conditions": [{"field": "url", "op": "contains", "value": f"/p/{i}"}],
        }
    if resource == "webhooks":
        return {
            "id": f"wh-{i}",
            "created": _created(i),
            "modified": _created(i + 1),
            "enabled": True,
            "url": f"https://hooks.example/{i}",
            "eventTypes": [{"eventName": "recording.event", "subcategory": "s"}],
        }
    if resource == "eventDefs":
        return {"eventName": f"event.{i}", "displayName": f"Event {i}", "hasSubcategories": i % 2 == 0}
    raise KeyError(resource)


def documented_singleton(resource: str) -> Dict[str, Any]:
    """The one settings object a documented singleton endpoint answers."""
    bodies: Dict[str, Dict[str, Any]] = {
        "blockrules": {"blockedIps": ["192.0.2.1", "198.51.100.7"], "blockedUas": ["BadBot/1.0"], "blockedAppIds": []},
        "domainsettings": {
            "onlyRecordKnownDomains": True,
            "domains": [{"domain": "shop.example", "disabled": False}, {"domain": "blog.example", "disabled": True}],
        },
        "geosettings": {"recordGeoMode": "ALLOW", "recordGeoZones": ["EU", "US"]},
        "recordingfeatures": {
            "enabled": True,
            "consoleWatcher": True,
            "ajaxWatcher": False,
            "resourceUploading": True,
            "recordingShutoff": False,
        },
    }
    body = bodies[resource]
    body["metadata"] = dict(_METADATA)
    return body


def records(resource: str, count: int, profile: str = "seed") -> List[Dict[str, Any]]:
    make = seed_record if profile == "seed" else documented_record
    return [make(resource, i) for i in range(count)]


assert set(SINGLETONS) <= set(RESOURCE_NAMES)
