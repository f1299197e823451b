"""Reference tables: the stored results a run is compared with, and the comparison.

``reference_results/<tier>-<device kind>.csv`` holds one row per (claim, case, metric): the
claim's statistic (``value``, the gap for scaling claims) with its CI, both exponents, the
fit window and method, the verdict, and where the numbers came from (tier, device kind,
package versions, commit, date). An empty ``tolerance`` cell means the claim's default;
a number there overrides it for that case and is kept when the row is rewritten.

Every leaderboard row gets a reference status independent of its verdict: ``match``
(verdict equal and every number within tolerance), ``drift``, ``new`` (no reference row)
or ``missing`` (a reference row, but no numbers this run). A table is only written when
asked — ``update`` rewrites the rows that drifted or are new, ``regenerate`` every row the
run produced — and both keep the rows of cases the run did not produce. ``paper.csv``
holds the paper's own, qualitative, expectations.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from pathlib import Path

from ntkbench.claims import CLAIMS, DOES_NOT_HOLD, HOLDS, INCONCLUSIVE
from ntkbench.metadata import versions_text
from ntkbench.storage import atomic_write_bytes, locked

COLUMNS = ["claim", "case", "metric", "value", "value_lo", "value_hi", "alpha_a", "alpha_b",
           "window_lo", "window_hi", "method", "tolerance", "verdict", "tier", "device_kind",
           "versions", "commit", "date"]
NUMERIC = ("value", "value_lo", "value_hi", "alpha_a", "alpha_b", "window_lo", "window_hi", "tolerance")
REQUIRED = ("claim", "case", "metric", "value", "verdict")
PAPER_COLUMNS = ["claim", "expected", "source", "note"]
VERDICTS = (HOLDS, DOES_NOT_HOLD, INCONCLUSIVE)
MATCH, DRIFT, NEW, MISSING = "match", "drift", "new", "missing"
COMPARED = (("value", "gap"), ("alpha_a", "alpha_a"), ("alpha_b", "alpha_b"))  # (reference, row)


class ReferenceError(ValueError):
    """A reference file that cannot be used; the message names the file and line."""


def known_claims() -> set[str]:
    return set(CLAIMS) | {f"{claim_id} control" for claim_id in CLAIMS}


def table_path(directory: Path, tier: str, device_kind: str) -> Path:
    return Path(directory) / f"{tier}-{device_kind}.csv"


def find_table(directory: Path, tier: str, device_kind: str) -> Path:
    """The table to compare with: this device kind's, else another kind's for the tier
    (a comparison across device kinds, shown as such), else this kind's (not yet written)."""
    own = table_path(directory, tier, device_kind)
    others = sorted(Path(directory).glob(f"{tier}-*.csv"))
    return own if own.exists() or not others else others[0]


def _number(text: str) -> float:
    return float(text) if text.strip() else math.nan


def _present(value) -> bool:
    return isinstance(value, int | float) and not math.isnan(value)


def read_rows(path: Path, columns: list[str], check) -> list[tuple[int, dict]]:
    """(line, row) for every data row of a CSV with exactly ``columns``, one row per line;
    ``check(row)`` returns an error text or None. Any problem raises ReferenceError naming
    the file and line: a bad byte, an unbalanced quote, a wrong number of fields, a file
    that ends inside a row (tables are written with a final newline: a cut file has none)."""
    data = Path(path).read_bytes()
    rows = []
    for line, raw in enumerate(data.splitlines(keepends=True), start=1):
        try:
            text = raw.decode("utf-8")
            (fields,) = list(csv.reader([text.rstrip("\r\n")], strict=True)) or [[]]
        except UnicodeDecodeError:
            raise ReferenceError(f"{path}, line {line}: not UTF-8 text") from None
        except (csv.Error, ValueError) as exc:
            raise ReferenceError(f"{path}, line {line}: {exc} (unbalanced quote?)") from None
        if line == 1:
            if fields != columns:
                raise ReferenceError(f"{path}, line 1: header {fields or 'missing'}; expected the columns "
                                     f"{','.join(columns)}")
            continue
        if not text.endswith("\n"):
            raise ReferenceError(f"{path}, line {line}: the file ends inside this row (truncated?)")
        if not text.strip():
            continue
        if len(fields) != len(columns):
            raise ReferenceError(f"{path}, line {line}: {len(fields)} fields, expected {len(columns)} "
                                 "(truncated or hand-edited?)")
        row = dict(zip(columns, fields))
        problem = check(row)
        if problem:
            raise ReferenceError(f"{path}, line {line}: {problem}")
        rows.append((line, row))
    if not data:
        raise ReferenceError(f"{path}, line 1: header missing; expected the columns {','.join(columns)}")
    return rows


def _check_result(row: dict) -> str | None:
    for column in REQUIRED:
        if not row[column].strip():
            return f"column {column!r} is empty"
    if row["claim"] not in known_claims():
        return f"unknown claim {row['claim']!r}; known: {', '.join(sorted(known_claims()))}"
    if row["verdict"] not in VERDICTS:
        return f"verdict {row['verdict']!r} is not one of {', '.join(VERDICTS)}"
    for column in NUMERIC:
        try:
            row[column] = _number(row[column])
        except ValueError:
            return f"column {column!r}: {row[column]!r} is not a number"
    if not math.isfinite(row["value"]):
        return f"column 'value': {row['value']} is not a finite number"
    return None


@dataclasses.dataclass
class ReferenceTable:
    path: Path
    rows: dict[tuple[str, str, str], dict]

    @classmethod
    def load(cls, path: Path) -> ReferenceTable:
        """The table at ``path`` (empty when there is no file yet), fully validated."""
        path = Path(path)
        if not path.exists():
            return cls(path, {})
        rows, lines = {}, {}
        for line, row in read_rows(path, COLUMNS, _check_result):
            key = (row["claim"], row["case"], row["metric"])
            if key in rows:
                raise ReferenceError(f"{path}, line {line}: a second row for {' / '.join(key)} "
                                     f"(first on line {lines[key]})")
            rows[key], lines[key] = row, line
        return cls(path, rows)

    @property
    def device_kinds(self) -> set[str]:
        return {row["device_kind"] for row in self.rows.values()}

    def compare(self, row: dict) -> dict:
        """The reference status of one leaderboard row, with the numbers behind it."""
        reference = self.rows.get((row["claim"], row["case"], row["metric"]))
        measured = _present(row.get("gap"))
        if reference is None:
            return {"reference": NEW if measured else "", "reference_detail": ""}
        fields = {"reference_value": reference["value"], "reference_device": reference["device_kind"]}
        if not measured:
            return {**fields, "reference": MISSING,
                    "reference_detail": f"reference {reference['value']:.4g}, none this run"}
        tolerance = reference["tolerance"] if _present(reference["tolerance"]) else row["tolerance"]
        if row["verdict"] != reference["verdict"]:
            return {**fields, "reference": DRIFT,
                    "reference_detail": f"verdict '{row['verdict']}', reference '{reference['verdict']}'"}
        for ours, theirs in COMPARED:
            new, old = row.get(theirs, math.nan), reference[ours]
            if _present(new) != _present(old) or (_present(new) and abs(new - old) > tolerance * (1 + 1e-9)):
                return {**fields, "reference": DRIFT,
                        "reference_detail": f"{theirs} {new:.4g}, reference {old:.4g} (tolerance {tolerance:g})"}
        return {**fields, "reference": MATCH, "reference_detail": ""}

    def merged(self, rows: list[dict], mode: str, metadata: dict) -> tuple[ReferenceTable, int]:
        """A copy with the run's rows written in (``mode``: "update" or "regenerate") and
        the number of rows written; rows of other cases and of failed cases are kept."""
        merged, written = dict(self.rows), 0
        for row in rows:
            if not _present(row.get("gap")) or row["verdict"] not in VERDICTS:
                continue
            if mode == "update" and row.get("reference") not in (NEW, DRIFT):
                continue
            key = (row["claim"], row["case"], row["metric"])
            old_tolerance = self.rows[key]["tolerance"] if key in self.rows else math.nan
            merged[key] = reference_row(row, metadata, old_tolerance)
            written += 1
        return ReferenceTable(self.path, merged), written

    def write(self) -> None:
        """Replace the file atomically (rows sorted by claim, case and metric)."""
        with locked(self.path):
            self._replace()

    def _replace(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
        writer.writeheader()
        for key in sorted(self.rows):
            writer.writerow({k: _cell(v) for k, v in self.rows[key].items()})
        atomic_write_bytes(self.path, buffer.getvalue().encode("utf-8"))

    def orphans(self, keys: set[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
        """The table's rows whose (claim, case, metric) is not among ``keys`` (every case the
        suite defines): rows of deleted or renamed cases."""
        return sorted(set(self.rows) - keys)


def update_table(path: Path, rows: list[dict], mode: str | None, metadata: dict,
                 prune: set[tuple[str, str, str]] = frozenset(), fresh: bool = False) -> tuple[ReferenceTable, int]:
    """Read the table at ``path``, write the run's rows into it (``mode``: "update",
    "regenerate" or None), drop the rows ``prune`` names and write it back, all under the
    table's lock, so that concurrent writers never lose each other's rows; ``fresh``: start
    from an empty table instead. Returns the table and the number of rows written."""
    with locked(path):
        base = ReferenceTable(Path(path), {}) if fresh else ReferenceTable.load(path)
        merged, written = base.merged(rows, mode, metadata) if mode else (base, 0)
        merged.rows = {key: row for key, row in merged.rows.items() if key not in prune}
        merged._replace()
    return merged, written


def reference_row(row: dict, metadata: dict, tolerance: float = math.nan) -> dict:
    commit = metadata.get("commit", "unknown")
    return {
        "claim": row["claim"], "case": row["case"], "metric": row["metric"],
        "value": row["gap"], "value_lo": row["gap_lo"], "value_hi": row["gap_hi"],
        "alpha_a": row.get("alpha_a", math.nan), "alpha_b": row.get("alpha_b", math.nan),
        "window_lo": row["window_lo"], "window_hi": row["window_hi"], "method": row["method"],
        "tolerance": tolerance, "verdict": row["verdict"], "tier": row["tier"],
        "device_kind": metadata.get("device_kind", ""), "versions": versions_text(metadata.get("versions", {})),
        "commit": commit[:12] + ("+dirty" if metadata.get("dirty") else ""), "date": metadata.get("date", ""),
    }


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.10g}"
    return str(value)


def _check_expectation(row: dict) -> str | None:
    if row["claim"] not in CLAIMS:
        return f"unknown claim {row['claim']!r}; known: {', '.join(sorted(CLAIMS))}"
    if row["expected"] not in VERDICTS:
        return f"expected {row['expected']!r} is not one of {', '.join(VERDICTS)}"
    if not row["source"].strip():
        return "every expectation needs a source (section, figure or table of the paper)"
    return None


def paper_expectations(path: Path) -> dict[str, dict]:
    """The paper's qualitative expectations by claim id (``paper.csv``)."""
    return {row["claim"]: row for _, row in read_rows(Path(path), PAPER_COLUMNS, _check_expectation)}


def table_from_results(frame, metadata: dict, path: Path) -> ReferenceTable:
    """A stored run's results as a reference table, to compare another run with."""
    rows = {}
    for row in frame.to_dict("records"):
        if _present(row.get("gap")) and row.get("verdict") in VERDICTS:
            rows[(row["claim"], row["case"], row["metric"])] = reference_row(row, metadata)
    return ReferenceTable(Path(path), rows)


def compare_rows(table: ReferenceTable, rows: list[dict]) -> list[dict]:
    """The reference status of every row, then the table's rows this run did not produce
    (status "not run", informational: a partial run is not a failure)."""
    out, seen = [], set()
    for row in rows:
        key = (row["claim"], row["case"], row["metric"])
        seen.add(key)
        status = table.compare(row)
        out.append({"claim": key[0], "case": key[1], "metric": key[2], "verdict": row["verdict"],
                    "status": status["reference"] or "—", "detail": status["reference_detail"]})
    out += [{"claim": k[0], "case": k[1], "metric": k[2], "verdict": "", "status": "not run", "detail": ""}
            for k in sorted(set(table.rows) - seen)]
    return out
