"""Run uvr's SQL on a current ClickHouse in process (chdb-core) for the SQL
compatibility check (chcompat_test.go, docs/clickhouse.md).

Usage: python chdb_check.py SPEC.json > ANSWERS.json

SPEC holds {"database", "ddl": [...], "tables": [{"name", "parts"}], "queries": [...]}:
the DDL runs in order in a fresh database with merges stopped, each table is
described and then loaded from its TSV files (the parts of ClickHouse 18.16,
in block order), one insert and so one part per file, and each query runs on
that data. ANSWERS holds {"version", "chdb_core", "ddl", "tables",
"queries"}, one {"error"} or {"error", "tsv"} per item, in the same order: an
error does not stop the run, so one report lists every difference.
"""

import json
import sys
import tempfile
from importlib.metadata import version

from chdb import session


def run(s, sql, fmt="TSV"):
    try:
        return {"error": "", "tsv": s.query(sql, fmt).data()}
    except Exception as e:  # chdb raises its own error type for a refused statement
        return {"error": str(e).strip(), "tsv": ""}


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    db = spec["database"]
    with tempfile.TemporaryDirectory() as path:
        s = session.Session(path)
        # Settings of the check, not of uvr's SQL: answers are compared as
        # text, and 18.16 prints decimals with every digit of the scale
        # (current releases drop trailing zeros by default) and runs in UTC.
        s.query("SET output_format_decimal_trailing_zeros = 1")
        s.query("SET session_timezone = 'UTC'")
        s.query("SYSTEM STOP MERGES")
        s.query(f"CREATE DATABASE {db}")
        s.query(f"USE {db}")
        out = {
            "version": s.query("SELECT version()", "TSV").data().strip(),
            "chdb_core": version("chdb-core"),
            "ddl": [run(s, q) for q in spec["ddl"]],
            "tables": [],
        }
        for t in spec["tables"]:
            answer = run(s, f"SELECT name, type FROM system.columns WHERE database = '{db}' AND table = '{t['name']}'")
            for part in t["parts"]:
                if answer["error"]:
                    break
                answer["error"] = run(s, f"INSERT INTO {t['name']} FROM INFILE '{part}' FORMAT TSV")["error"]
            out["tables"].append(answer)
        out["queries"] = [run(s, q) for q in spec["queries"]]
        s.close()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
