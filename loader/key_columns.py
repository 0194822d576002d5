"""Key columns are text: a warehouse whose key column was created with another type is migrated once.

Identifiers load as text whatever JSON type they arrive in (source.settings.KEY_DATA_TYPE). A
warehouse loaded before that (or by a run that saw only numbers) holds the key as bigint; dlt
never changes a column's type, so the first text key would fail the load on every run. Before
loading, such a column is converted to text, in the dataset and in dlt's staging dataset.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Sequence, Tuple

log = logging.getLogger("analytics_loader")


def stale_key_columns(
    pipeline: Any, table_entries: Sequence[Mapping[str, Any]], names: Sequence[str]
) -> List[Tuple[str, str]]:
    """(table, column) pairs whose stored type is not text, for the resources `names`."""
    from source.settings import KEY_DATA_TYPE

    if not pipeline.default_schema_name:
        return []  # nothing loaded yet: dlt creates the columns as text
    schema = pipeline.default_schema
    stale = []
    for entry in table_entries:
        if entry["name"] not in names:
            continue
        table = schema.naming.normalize_table_identifier(entry["name"])
        columns = schema.tables.get(table, {}).get("columns", {})
        for key in entry["primary_key"]:
            column = schema.naming.normalize_identifier(key)
            stored = columns.get(column, {}).get("data_type")
            if stored is not None and stored != KEY_DATA_TYPE:
                stale.append((table, column))
    return stale


def migrate_key_columns(
    pipeline: Any, table_entries: Sequence[Mapping[str, Any]], names: Sequence[str], run_id: str
) -> None:
    """Convert stored key columns that are not text to text (no-op on a fresh or migrated warehouse)."""
    stale = stale_key_columns(pipeline, table_entries, names)
    if not stale:
        return
    with pipeline.destination_client() as client:
        converted = [f"{t}.{c}" for t, c in _convert(client, stale)]
        with client.with_staging_dataset():
            converted += [f"staging {t}.{c}" for t, c in _convert(client, stale)]
    log.warning(
        "converted key columns to text (they arrive as numbers and as strings)",
        extra={"run_id": run_id, "columns": converted},
    )


def _convert(client: Any, stale: Sequence[Tuple[str, str]]) -> List[Tuple[str, str]]:
    done = []
    storage: Dict[str, Any] = dict(client.get_storage_tables([t for t, _ in stale]))
    for table, column in stale:
        existing = storage.get(table) or {}
        if column not in existing or existing[column].get("data_type") == "text":
            continue
        sql = client.sql_client
        qualified = sql.make_qualified_table_name(table)
        col = sql.escape_column_name(column)
        if client.config.destination_type.endswith("bigquery"):
            # BigQuery cannot ALTER an INT64 column to STRING: rewrite the table, keeping its clustering
            sql.execute_sql(
                f"CREATE OR REPLACE TABLE {qualified} CLUSTER BY {col} AS "
                f"SELECT * REPLACE (CAST({col} AS STRING) AS {col}) FROM {qualified}"
            )
        else:
            sql.execute_sql(f"ALTER TABLE {qualified} ALTER COLUMN {col} SET DATA TYPE VARCHAR")
        done.append((table, column))
    return done
