"""What a complete load of the simulator's data must leave in the warehouse: rows per table.

Computed from the same records the simulator serves, with dlt's naming convention, so tests can
assert exact counts for root and nested tables.
"""

from collections import Counter
from typing import Any, Dict

from dlt.common.normalizers.naming.snake_case import NamingConvention

from simulator.data import SINGLETONS, documented_record, documented_singleton, seed_record
from simulator.server import SimConfig
from source.settings import DEFAULT_SESSIONS_LIMIT

_naming = NamingConvention()


def _walk(table: str, value: Dict[str, Any], counts: Counter) -> None:
    for key, child in value.items():
        name = f"{table}__{_naming.normalize_identifier(key)}"
        if isinstance(child, dict):
            _walk(name, child, counts)  # flattened into the parent's columns; lists inside nest
        elif isinstance(child, list):
            counts[name] += len(child)
            for item in child:
                if isinstance(item, dict):
                    _walk(name, item, counts)


def expected_counts(config: SimConfig, sessions_limit: int = DEFAULT_SESSIONS_LIMIT) -> Dict[str, int]:
    """Rows per table (root and nested) after loading everything the simulator serves.

    `sessions_limit`: the `limit` the loader sends to the documented sessions endpoint
    (`SOURCES__ANALYTICS__SESSIONS_LIMIT`), which answers one page of at most that many.
    """
    counts: Counter = Counter()
    for resource, total in config.rows.items():
        table = _naming.normalize_table_identifier(resource)
        profile = config.profile_of(resource)
        if profile == "documented" and resource in SINGLETONS:
            records = [documented_singleton(resource)]
        elif profile == "documented":
            n = min(total, sessions_limit) if resource == "sessions" else total  # sessions: one page of `limit`
            records = [documented_record(resource, i) for i in range(n)]
        else:
            records = [seed_record(resource, i) for i in range(total)]
        if records:
            counts[table] += len(records)
        for record in records:
            _walk(table, record, counts)
    return {t: n for t, n in counts.items() if n}
