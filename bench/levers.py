"""`python -m bench --levers`: B with one setting or one modelled code change at a time.

At 30 ms / 10k sessions each lever is alternated with the unchanged B; on DuckDB at 100k sessions
(latency 0) the memory levers run once each; with the API's default page at 20 rows, B with and
without `limit=100`. A lever is (label, environment overrides, patches from bench.patches);
environment overrides are dlt's own settings (`EXTRACT__WORKERS` is `[extract] workers` in
.dlt/config.toml, and so on).
"""

import json
from typing import Dict, List, Tuple

Lever = Tuple[str, Dict[str, str], List[str]]

BASELINE: Lever = ("B as it is", {}, [])

S30: List[Lever] = [
    ("[extract] workers = 5 (dlt's default)", {"EXTRACT__WORKERS": "5"}, []),
    ("[extract] workers = 3", {"EXTRACT__WORKERS": "3"}, []),
    ("[data_writer] disable_compression = true", {"DATA_WRITER__DISABLE_COMPRESSION": "true"}, []),
    ("[data_writer] buffer_max_items = 20000", {"DATA_WRITER__BUFFER_MAX_ITEMS": "20000"}, []),
    ("[load] workers = 1", {"LOAD__WORKERS": "1"}, []),
    ("[load] workers = 4", {"LOAD__WORKERS": "4"}, []),
    ("[normalize] workers = 2, [data_writer] file_max_items = 5000", {"NORMALIZE__WORKERS": "2", "DATA_WRITER__FILE_MAX_ITEMS": "5000"}, []),
    ("code: GIL switch interval 1 ms", {}, ["switch_interval"]),
    ("code: DuckDB loads parquet", {}, ["duckdb_parquet"]),
]

BIG_DUCKDB: List[Lever] = [
    BASELINE,
    ("code: DuckDB loads parquet", {}, ["duckdb_parquet"]),
]

# the list endpoints that page; `limit` is honoured up to the API's maximum (100, documented)
_LIMIT_100 = json.dumps({name: {"params": {"limit": 100}} for name in (
    "sessions", "segments", "operations", "blockrules", "domainsettings", "geosettings", "recordingfeatures",
    "sessionTargetingRules", "webhooks", "eventDefs")})
PAGE_SIZE: List[Lever] = [
    BASELINE,
    ("limit=100 on every list request", {"SOURCES__ANALYTICS__RESOURCES": _LIMIT_100}, []),
    ("limit=1000 on every list request (above the API's maximum)",
     {"SOURCES__ANALYTICS__RESOURCES": _LIMIT_100.replace('"limit": 100', '"limit": 1000')}, []),
]
