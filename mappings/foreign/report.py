"""The mapping report of the profile-free path: every resource read is mapped or skipped with a reason.

Pure data -> text: `MappingReport.to_json()` is the content of `mapping-report.json`,
`to_markdown()` the content of `mapping-report.md`, `summary()` the console lines. Examples name
resources (`Type/id`) and where they were read (file and line, Bundle entry), never a value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

EXAMPLES: Final = 3
"""Examples kept per reason (the smallest ids, so that the report does not depend on input order)."""


@dataclass
class Examples:
    """How often a reason occurred and a few of the resources it concerned."""

    count: int = 0
    examples: list[tuple[str, str]] = field(default_factory=list)  # (Type/id, where)

    def add(self, source: str, where: str) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES or (source, where) < self.examples[-1]:
            self.examples.append((source, where))
            self.examples.sort()
            del self.examples[EXAMPLES:]

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "examples": [
                {"source": s, "where": w} if w else {"source": s} for s, w in self.examples
            ],
        }


@dataclass
class TypeAccount:
    """One resource type: read = mapped + skipped."""

    read: int = 0
    mapped: dict[str, list[int]] = field(default_factory=dict)  # domain -> [resources, rows]
    skipped: dict[str, Examples] = field(default_factory=dict)
    notes: dict[str, Examples] = field(default_factory=dict)

    @property
    def mapped_resources(self) -> int:
        return sum(resources for resources, _ in self.mapped.values())

    @property
    def skipped_resources(self) -> int:
        return sum(e.count for e in self.skipped.values())


@dataclass
class MappingReport:
    """What the profile-free mapping did with every resource it was given."""

    study: str = ""
    subjects: int = 0
    types: dict[str, TypeAccount] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    coverage: dict[str, list[int]] = field(default_factory=dict)  # VS/LB: [with a value, mapped]
    input_problems: list[dict[str, str]] = field(default_factory=list)
    server_messages: list[dict[str, str]] = field(default_factory=list)
    not_data: list[dict[str, str]] = field(default_factory=list)
    """Files known not to be data (a Bulk Data manifest, an export's job state, hidden files)."""
    own: dict[str, int] = field(default_factory=dict)
    """A mixed input's resources of the adapter's own profile, by type: read by its lossless path
    (`mappings.trial`), not by this mapping, so outside `types` and the totals."""

    # --- recording -------------------------------------------------------------------------------

    def account(self, rtype: str) -> TypeAccount:
        found = self.types.get(rtype)
        if found is None:
            found = self.types[rtype] = TypeAccount()
        return found

    def read(self, rtype: str) -> None:
        self.account(rtype).read += 1

    def mapped(self, rtype: str, domain: str, rows: int) -> None:
        counts = self.account(rtype).mapped.setdefault(domain, [0, 0])
        counts[0] += 1
        counts[1] += rows

    def skipped(self, rtype: str, reason: str, source: str, where: str = "") -> None:
        self.account(rtype).skipped.setdefault(reason, Examples()).add(source, where)

    def note(self, rtype: str, note: str, source: str, where: str = "") -> None:
        self.account(rtype).notes.setdefault(note, Examples()).add(source, where)

    # --- checks ----------------------------------------------------------------------------------

    @property
    def total_read(self) -> int:
        return sum(a.read for a in self.types.values())

    @property
    def total_mapped(self) -> int:
        return sum(a.mapped_resources for a in self.types.values())

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def unbalanced(self) -> list[str]:
        """Resource types where mapped + skipped != read (always empty; a test keeps it so)."""
        return sorted(
            t for t, a in self.types.items() if a.mapped_resources + a.skipped_resources != a.read
        )

    def coverage_ratio(self, domains: tuple[str, ...] = ("VS", "LB")) -> float:
        """Mapped / with a value, over the Observations of `domains` that carry a value."""
        with_value = sum(self.coverage.get(d, [0, 0])[0] for d in domains)
        mapped = sum(self.coverage.get(d, [0, 0])[1] for d in domains)
        return mapped / with_value if with_value else 1.0

    # --- output ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        types: dict[str, Any] = {}
        for rtype in sorted(self.types):
            account = self.types[rtype]
            types[rtype] = {
                "read": account.read,
                "mapped": account.mapped_resources,
                "skipped": account.skipped_resources,
                "domains": {
                    d: {"resources": r, "rows": n} for d, (r, n) in sorted(account.mapped.items())
                },
                "skipped_by_reason": {k: v.to_dict() for k, v in sorted(account.skipped.items())},
                "notes": {k: v.to_dict() for k, v in sorted(account.notes.items())},
            }
        return {
            "study": self.study,
            "subjects": self.subjects,
            "totals": {
                "read": self.total_read,
                "mapped": self.total_mapped,
                "skipped": self.total_read - self.total_mapped,
                "rows": self.total_rows,
            },
            "rows_by_domain": dict(sorted(self.rows.items())),
            "value_coverage": {
                d: {"with_value": w, "mapped": m} for d, (w, m) in sorted(self.coverage.items())
            },
            "resource_types": types,
            "own_resources": dict(sorted(self.own.items())),
            "input_problems": self.input_problems,
            "server_messages": self.server_messages,
            "not_data": self.not_data,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def summary(self) -> list[str]:
        lines = [
            f"read {self.total_read} resources: {self.total_mapped} mapped, "
            f"{self.total_read - self.total_mapped} skipped; {self.subjects} subjects, "
            f"{self.total_rows} rows"
            + (
                " (" + ", ".join(f"{d} {n}" for d, n in sorted(self.rows.items())) + ")"
                if self.rows
                else ""
            )
        ]
        if self.own:
            lines.append(
                f"  and {sum(self.own.values())} resources of the adapter's own profile, read by "
                "its lossless path: " + ", ".join(f"{t} {n}" for t, n in sorted(self.own.items()))
            )
        for rtype in sorted(self.types):
            account = self.types[rtype]
            for reason, examples in sorted(account.skipped.items()):
                lines.append(f"  {rtype}: {examples.count} skipped: {reason}")
        if self.input_problems:
            lines.append(f"  {len(self.input_problems)} input problems (see the report)")
        if self.server_messages:
            lines.append(f"  {len(self.server_messages)} server messages (see the report)")
        if self.not_data:
            names = ", ".join(item["where"] for item in self.not_data[:5])
            more = f" and {len(self.not_data) - 5} more" if len(self.not_data) > 5 else ""
            lines.append(f"  not data, as expected: {names}{more}")
        return lines

    def to_markdown(self) -> str:
        out = ["# Mapping report", ""]
        out.append(f"Study: `{self.study or '(none)'}`; subjects: {self.subjects}.")
        out.append(
            f"Read {self.total_read} resources: {self.total_mapped} mapped, "
            f"{self.total_read - self.total_mapped} skipped; {self.total_rows} rows."
        )
        if self.own:
            out.append(
                f"Also read: {sum(self.own.values())} resources of the adapter's own profile, "
                "by its lossless path (not counted above): "
                + ", ".join(f"{t} {n}" for t, n in sorted(self.own.items()))
                + "."
            )
        out += ["", "## Rows by domain", "", "| domain | rows |", "|---|---|"]
        out += [f"| {d} | {n} |" for d, n in sorted(self.rows.items())]
        if self.coverage:
            out += [
                "",
                "## Observations with a value",
                "",
                "| domain | with a value | mapped |",
                "|---|---|---|",
            ]
            out += [f"| {d} | {w} | {m} |" for d, (w, m) in sorted(self.coverage.items())]
        out += [
            "",
            "## Resources",
            "",
            "| type | read | mapped | skipped | domains (resources/rows) |",
            "|---|---|---|---|---|",
        ]
        for rtype in sorted(self.types):
            a = self.types[rtype]
            domains = ", ".join(f"{d} {r}/{n}" for d, (r, n) in sorted(a.mapped.items()))
            out.append(
                f"| {rtype} | {a.read} | {a.mapped_resources} | {a.skipped_resources} | {domains} |"
            )
        for title, attribute in (("Skipped", "skipped"), ("Notes", "notes")):
            entries = [
                (rtype, reason, ex)
                for rtype in sorted(self.types)
                for reason, ex in sorted(getattr(self.types[rtype], attribute).items())
            ]
            if not entries:
                continue
            out += [
                "",
                f"## {title}",
                "",
                "| type | reason | count | examples |",
                "|---|---|---|---|",
            ]
            for rtype, reason, ex in entries:
                shown = "; ".join(f"`{s}`" + (f" ({w})" if w else "") for s, w in ex.examples)
                out.append(f"| {rtype} | {_cell(reason)} | {ex.count} | {_cell(shown)} |")
        for title, items in (
            ("Input problems", self.input_problems),
            ("Server messages", self.server_messages),
            ("Files that are not data", self.not_data),
        ):
            if items:
                out += ["", f"## {title}", ""]
                out += [
                    "- " + "; ".join(f"{k}: {_cell(v)}" for k, v in item.items()) for item in items
                ]
        return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
