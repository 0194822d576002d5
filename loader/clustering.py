"""BigQuery clustering of the merged tables: on the columns each merge looks rows up by.

dlt merges a table by deleting the target rows whose key is in the new load, then inserting
(delete-insert); an scd2 table by comparing row hashes. BigQuery bills a query by the bytes it
scans: on an unclustered table every merge scans the whole table, however few rows changed. With
the table clustered on the merge key, BigQuery prunes the blocks whose key range cannot match.

BigQuery sets clustering when a table is created (dlt adds `CLUSTER BY` to its `CREATE TABLE`),
so the hints must be in place before the first load; a table created earlier keeps its layout.
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, List

# the column dlt joins a nested table to its root row by (delete-insert deletes nested rows by it)
ROOT_KEY = "_dlt_root_id"
# the row key: an scd2 merge matches root rows (a hash of the row) and nested rows by it
ROW_KEY = "_dlt_id"


# dlt warns, on each nested table it creates, that per-column cluster hints are deprecated in favour
# of bigquery_adapter's table hint, which a table dlt has not seen yet cannot have. Expected here;
# tests/test_bigquery.py reads the nested tables' CLUSTER BY back, so a dlt that drops it shows.
warnings.filterwarnings(
    "ignore", message="Defining clustered tables in BigQuery using per-column", category=DeprecationWarning
)


def cluster_merge_tables(source: Any, destination: str) -> Dict[str, List[str]]:
    """Cluster every merge table of `source` on its merge key; only for the bigquery destination.

    Root tables: the primary key, else the merge key (delete-insert), or the row hash (scd2), as a
    table hint through dlt's `bigquery_adapter`. Nested tables are created by dlt as data arrives,
    unknown until then, so a schema-wide column hint names their columns: `_dlt_root_id`
    (delete-insert nested tables), then `_dlt_id` (scd2 nested tables have no root key and are
    matched by it).

    Returns the cluster columns per root table (empty for other destinations).
    """
    if destination != "bigquery":
        return {}
    from dlt.destinations.adapters import bigquery_adapter
    from dlt.destinations.impl.bigquery.bigquery_adapter import CLUSTER_COLUMNS_HINT

    naming = source.schema.naming
    chosen: Dict[str, List[str]] = {}
    for resource in source.resources.values():
        table = resource.compute_table_schema()
        if table.get("write_disposition") != "merge":
            continue
        columns = table.get("columns", {})
        if table.get("x-merge-strategy") == "scd2":
            keys = [n for n, c in columns.items() if c.get("x-row-version")] or [ROW_KEY]
        else:  # delete-insert deletes by the primary key, or by the merge key when there is none
            keys = [n for n, c in columns.items() if c.get("primary_key")] or [
                n for n, c in columns.items() if c.get("merge_key")
            ]
        if not keys:
            continue
        bigquery_adapter(resource, cluster=keys)
        in_warehouse = [naming.normalize_identifier(k) for k in keys]
        if in_warehouse != keys:
            # the adapter's column hints must use the resource's names (`sessionId`), but dlt puts
            # its table hint into the DDL as given: there it must be the warehouse's (`session_id`)
            resource.apply_hints(additional_table_hints={CLUSTER_COLUMNS_HINT: in_warehouse})
        chosen[naming.normalize_table_identifier(resource.name)] = in_warehouse
    # dlt has no table-level default for tables it has not seen yet: a column default hint it is
    # (the table hint of a root table, when set, wins over its column hints)
    source.schema.merge_hints({"cluster": [ROOT_KEY, ROW_KEY]})
    return chosen
