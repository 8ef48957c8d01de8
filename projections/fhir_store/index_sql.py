"""The statements that write a resource's index rows, per index table."""

from __future__ import annotations

from projections.fhir_store.schema import INDEX_TABLES

COLUMNS = {table: ("rid", "pid", *cols) for table, cols in INDEX_TABLES.values()}
INSERT = {
    table: f"INSERT OR IGNORE INTO {table} ({', '.join(cols)})" for table, cols in COLUMNS.items()
}
# Every column of an index table is in its primary key: a row is deleted by its values.
DELETE = {
    table: f"DELETE FROM {table} WHERE {' AND '.join(f'{c} = ?' for c in cols)}"
    for table, cols in COLUMNS.items()
}
SELECT = {  # + " IN (?, ...)"
    table: f"SELECT {', '.join(cols)} FROM {table} WHERE rid" for table, cols in COLUMNS.items()
}
