"""The warehouse a run loaded into, read back the same way whichever it is: the local DuckDB file, or a
dataset of the BigQuery emulator (tests/bigquery_emulator.py). Tests that say the same thing of both
destinations are parametrized over `DESTINATIONS` and get their reader from `open_warehouse`.

Column types are compared as dlt data types ("bigint", "text", ...): DuckDB and BigQuery spell them
differently. A type outside the small maps below is shown as `<destination>:<TYPE>`, so it never
equals a dlt type by accident.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Sequence, Set

import pytest

from simulator.local import RUN_HISTORY_TABLE
from tests.helpers import table_counts

if TYPE_CHECKING:
    from bigquery_emulator import BigQueryEmulator

DESTINATIONS = ["duckdb", "bigquery"]
BOOKKEEPING = ("_dlt_load_id", "_dlt_id", "_dlt_parent_id", "_dlt_root_id")
HISTORY = RUN_HISTORY_TABLE

DUCKDB_TYPES = {
    "BIGINT": "bigint",
    "VARCHAR": "text",
    "DOUBLE": "double",
    "BOOLEAN": "bool",
    "TIMESTAMP WITH TIME ZONE": "timestamp",
    "DATE": "date",
    "JSON": "json",
}
BIGQUERY_TYPES = {
    "INTEGER": "bigint",
    "STRING": "text",
    "FLOAT": "double",
    "BOOLEAN": "bool",
    "TIMESTAMP": "timestamp",
    "DATE": "date",
    "JSON": "json",
}


class Warehouse:
    """What both readers answer; a subclass reads tables, rows and column types of its destination."""

    destination = ""

    def tables(self) -> List[str]:
        raise NotImplementedError

    def rows(self, name: str) -> List[Dict[str, Any]]:
        raise NotImplementedError

    def columns(self, name: str) -> Dict[str, str]:
        """Column -> dlt data type."""
        raise NotImplementedError

    def counts(self) -> Dict[str, int]:
        """Rows per data table (`data_tables`)."""
        raise NotImplementedError

    def data_tables(self) -> List[str]:
        """The tables of the API's data: dlt's own tables and the run history left out."""
        return [t for t in self.tables() if not t.startswith("_dlt") and t != HISTORY]

    def content(self) -> Dict[str, List[str]]:
        """Every data table's rows without dlt's per-load bookkeeping, in a stable order."""
        out = {}
        for name in self.data_tables():
            rows = [sorted((k, v) for k, v in r.items() if k not in BOOKKEEPING) for r in self.rows(name)]
            out[name] = sorted(map(repr, rows))
        return out

    def raw_rows(self, tables: Iterable[str]) -> Dict[str, List[str]]:
        """Every column of every row, dlt's ids and load ids included, in a stable order ([]: no such table)."""
        present = set(self.tables())
        return {t: sorted(repr(sorted(r.items())) for r in self.rows(t)) if t in present else [] for t in tables}

    def load_ids(self, tables: Iterable[str]) -> Set[str]:
        """Load ids of the rows of `tables` that carry one (root tables; nested tables carry none)."""
        present = set(self.tables())
        found: Set[str] = set()
        for t in tables:
            if t in present and "_dlt_load_id" in self.columns(t):
                found |= {r["_dlt_load_id"] for r in self.rows(t)}
        return found


class DuckDbReader(Warehouse):
    """The DuckDB file of a local run, opened read-only for each read."""

    destination = "duckdb"

    def __init__(self, path: str, dataset: str = "analytics") -> None:
        self.path = path
        self.dataset = dataset

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> List[Dict[str, Any]]:
        import duckdb

        with duckdb.connect(self.path, read_only=True) as con:
            cur = con.execute(sql, list(params))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def tables(self) -> List[str]:
        sql = "select table_name from information_schema.tables where table_schema = ?"
        return sorted(r["table_name"] for r in self._fetch(sql, [self.dataset]))

    def rows(self, name: str) -> List[Dict[str, Any]]:
        return self._fetch(f'select * from "{self.dataset}"."{name}"')

    def counts(self) -> Dict[str, int]:
        return table_counts(self.path, self.dataset)

    def columns(self, name: str) -> Dict[str, str]:
        sql = "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ?"
        found = self._fetch(sql, [self.dataset, name])
        return {r["column_name"]: DUCKDB_TYPES.get(r["data_type"], f"duckdb:{r['data_type']}") for r in found}


class BigQueryReader(Warehouse):
    """One dataset of the emulator, read through google-cloud-bigquery."""

    destination = "bigquery"

    def __init__(self, emulator: BigQueryEmulator, dataset: str) -> None:
        self.client = emulator.client()
        self.project = emulator.project
        self.dataset = dataset

    def table(self, name: str) -> str:
        return f"`{self.project}.{self.dataset}.{name}`"

    def query(self, sql: str) -> List[Dict[str, Any]]:
        return [dict(row.items()) for row in self.client.query(sql).result()]

    def tables(self) -> List[str]:
        return sorted(t.table_id for t in self.client.list_tables(self.dataset))

    def counts(self) -> Dict[str, int]:
        return {t: self.query(f"select count(*) as n from {self.table(t)}")[0]["n"] for t in self.data_tables()}

    def native_columns(self, name: str) -> Dict[str, str]:
        """Column -> BigQuery type, from a query's result schema (the emulator's metadata misses added columns)."""
        schema = self.client.query(f"select * from {self.table(name)} limit 0").result().schema
        return {f.name: f.field_type for f in schema}

    def columns(self, name: str) -> Dict[str, str]:
        return {c: BIGQUERY_TYPES.get(t, f"bigquery:{t}") for c, t in self.native_columns(name).items()}

    def rows(self, name: str) -> List[Dict[str, Any]]:
        return self.query(f"select * from {self.table(name)}")

    def stored_schema(self, schema_name: str = "analytics") -> Dict[str, Any]:
        """The newest schema dlt stored in `_dlt_version` (what it declared, hints included)."""
        rows = self.query(
            f"select `schema` from {self.table('_dlt_version')} where schema_name = '{schema_name}' "
            "order by version desc limit 1"
        )
        return json.loads(rows[0]["schema"])

    def job_ids(self) -> Set[str]:
        return {j.job_id for j in self.client.list_jobs(max_results=100_000, page_size=100_000)}

    def jobs_since(self, seen: Set[str]) -> List[Any]:
        """Jobs (queries and loads, all datasets) that are not in `seen`."""
        return [j for j in self.client.list_jobs(max_results=100_000, page_size=100_000) if j.job_id not in seen]

    def _table_in_sql(self) -> str:
        """A regex for a table of this dataset as dlt writes it in SQL; the group is the table's name."""
        return rf"`{re.escape(self.project)}`\.`{re.escape(self.dataset)}`\.`([^`]+)`"

    def merges(self, jobs: Sequence[Any]) -> Counter:
        """Per data table: the jobs that wrote staged rows into it (a delete-insert, upsert or scd2 merge)."""
        into = re.compile(rf"(?:INSERT INTO|MERGE INTO|UPDATE) {self._table_in_sql()}")
        merged: Counter = Counter()
        for job in jobs:
            sql = getattr(job, "query", None) or ""
            if f"`{self.dataset}_staging`" in sql:
                merged.update({t for t in into.findall(sql) if not t.startswith("_dlt")})
        return merged

    def cluster_ddl(self, jobs: Sequence[Any]) -> Dict[str, List[str]]:
        """Per table created in the dataset: the columns of its `CLUSTER BY` (empty: none)."""
        create = re.compile(rf"CREATE TABLE {self._table_in_sql()}(.*?);", re.S)
        found = {}
        for job in jobs:
            for table, rest in create.findall(getattr(job, "query", None) or ""):
                clause = re.search(r"CLUSTER BY ([^\n;]+)", rest)
                found[table] = re.findall(r"`([^`]+)`", clause.group(1)) if clause else []
        return found


def open_warehouse(destination: str, request: pytest.FixtureRequest) -> Warehouse:
    """The warehouse this test's runs load into. For "bigquery" the loader's environment is switched to
    the session's emulator and a dataset of the test's own (the `bigquery_env` fixture): call this
    before the first run."""
    if destination == "bigquery":
        env = request.getfixturevalue("bigquery_env")
        return BigQueryReader(request.getfixturevalue("bigquery_emulator"), env["DATASET_NAME"])
    if destination == "duckdb":
        return DuckDbReader(request.getfixturevalue("loader_env")["DESTINATION__DUCKDB__CREDENTIALS"])
    raise ValueError(f"no reader for destination {destination!r}: one of {DESTINATIONS}")
