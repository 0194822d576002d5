"""The seed's configuration, as-is (`shared/seed/analytics-api-source.md`, "Configuration Example").

Copied entry by entry, three lines a resource (`bench.report.seed_copy_check` compares it
with the seed's document, whitespace aside); the only substitution is `base_url` (the simulator's
loopback URL instead of `https://api.example.com`). `dlt.secrets["api_key"]` and
`dlt.config["uid"]` are read exactly as the seed reads them: the benchmark provides them as the
environment variables `API_KEY` and `UID`, which is where dlt looks for a bare key.
"""

import os
import re
from pathlib import Path
from typing import Any

from bench.runner import BENCH_ROOT


def seed_source(base_url: str) -> Any:
    import dlt
    from dlt.sources.rest_api import rest_api_source

    # fmt: off
    source = rest_api_source({
        "client": {"base_url": base_url, "auth": {"type": "bearer", "token": dlt.secrets["api_key"]}},
        "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
        "resources": [
        {"name": "sessions", "endpoint": {"path": "/sessions/v2", "params": {"uid": dlt.config["uid"]},
         "data_selector": "sessions",
         "paginator": {"type": "cursor", "cursor_path": "nextPaginationToken", "cursor_param": "pagination_token"}}},
        {"name": "segments", "endpoint": {"path": "/segments/v1",
         "data_selector": "segments",
         "paginator": {"type": "cursor", "cursor_path": "nextPaginationToken", "cursor_param": "pagination_token"}}},
        {"name": "operations", "endpoint": {"path": "/operations/v1",
         "data_selector": "operations",
         "paginator": {"type": "cursor", "cursor_path": "nextPaginationToken", "cursor_param": "pagination_token"}}},
        {"name": "blockrules", "endpoint": {"path": "/settings/recording/v1/blocking",
         "data_selector": "blockrules",
         "paginator": {"type": "cursor", "cursor_path": "nextPaginationToken", "cursor_param": "pagination_token"}}},
        {"name": "domainsettings", "endpoint": {"path": "/settings/recording/v1/domain",
         "data_selector": "domainsettings",
         "paginator": {"type": "cursor", "cursor_path": "nextPaginationToken", "cursor_param": "pagination_token"}}},
        {"name": "geosettings", "endpoint": {"path": "/settings/recording/v1/geo",
         "data_selector": "geosettings",
         "paginator": {"type": "cursor", "cursor_path": "nextPaginationToken", "cursor_param": "pagination_token"}}},
        {"name": "recordingfeatures", "endpoint": {"path": "/settings/recording/v1/features",
         "data_selector": "recordingfeatures",
         "paginator": {"type": "cursor", "cursor_path": "nextPaginationToken", "cursor_param": "pagination_token"}}},
        {"name": "sessionTargetingRules", "endpoint": {"path": "/settings/recording/v1/targeting",
         "data_selector": "sessionTargetingRules",
         "paginator": {"type": "cursor", "cursor_path": "nextPaginationToken", "cursor_param": "pagination_token"}}},
        {"name": "webhooks", "endpoint": {"path": "/webhooks/v1/endpoints",
         "data_selector": "webhooks",
         "paginator": {"type": "cursor", "cursor_path": "nextPaginationToken", "cursor_param": "pagination_token"}}},
        {"name": "eventDefs", "endpoint": {"path": "/webhooks/v1/event-types",
         "data_selector": "eventDefs",
         "paginator": {"type": "cursor", "cursor_path": "nextPaginationToken", "cursor_param": "pagination_token"}}}
        ]
    })
    # fmt: on
    return source


def seed_copy_check() -> str | None:
    """Compare bench/seed.py with the seed's document, when it is present next to the repo."""
    candidates = [os.environ.get("BENCH_SEED_DOC", ""), str(BENCH_ROOT.parent / "shared/seed/analytics-api-source.md")]
    path = next((Path(p) for p in candidates if p and Path(p).is_file()), None)
    if path is None:
        return None
    block = re.search(r"```python\n(.*?)```", path.read_text(), re.S)
    if not block:
        return f"note: no python block in {path}"
    code = block.group(1)
    seed = code[code.index("rest_api_source(") + len("rest_api_source(") : code.rindex(")")]
    mine_src = (BENCH_ROOT / "bench" / "seed.py").read_text()
    mine = mine_src[mine_src.index("rest_api_source(") + len("rest_api_source(") : mine_src.index("\n    })\n") + 6]

    def norm(s: str) -> str:
        return re.sub(r"\s+", "", s).replace('"https://api.example.com"', "base_url")

    if norm(seed) != norm(mine):
        return f"WARNING: bench/seed.py differs from the seed's configuration in {path}"
    return None
