"""The client's side of Bundles: refusing an answer that does not fit, and chunked uploads (no I/O).

The Bundle rule itself (entries, conditional requests, ``fullUrl``, outcomes) lives in
``adapter.bundles``, shared with the files; here are the parts that raise the client's errors:
``parse_bundle_response`` (an answer wrongly shaped or not answering the request is refused),
``UnwritableResources`` and ``UploadPlan`` (a chunked upload: the input checked whole, the bundles
to send, what to say when it stops half-way).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Literal

from adapter.bundles import (
    BundleResult,
    TransactionMode,
    UploadSummary,
    bundle_result,
    chunked,
    entry_request,
    response_entries,
    response_problems,
    shift_indexes,
    transaction_bundle,
)
from mappings.errors import ExitCode, TrialfhirError

from ._errors import (
    FhirHttpError,
    InvalidResponse,
    TransactionFailed,
    TransactionResponseMismatch,
)

__all__ = [
    "UnwritableResources",
    "UploadPlan",
    "parse_bundle_response",
]


def parse_bundle_response(
    response: Mapping[str, Any], request: Mapping[str, Any] | None = None
) -> BundleResult:
    """Read a transaction-response or batch-response Bundle into per-entry outcomes
    (``adapter.bundles.bundle_result``), after checking it.

    ``request`` (the bundle that was sent) supplies each entry's method and type; entries are matched
    by position, as the specification requires, after ``response_problems`` found none.

    Raises:
        InvalidResponse: the Bundle is wrongly shaped (entry not a list of objects with a status).
        TransactionResponseMismatch: it does not answer ``request`` (``.problems`` lists why).
    """
    shape = response_entries(response)
    if isinstance(shape, str):
        raise InvalidResponse(shape)
    if request is not None:
        problems = response_problems(response, request)
        if problems:
            raise TransactionResponseMismatch(problems)
    return bundle_result(response, request)


class UnwritableResources(TrialfhirError, ValueError):
    """Resources given to an upload that cannot be written in its mode (no resourceType, no business
    identifier for a conditional mode, no id for ``update``): every one is listed, nothing was sent.

    Attributes:
        problems: one line per resource: its position in the input (from 0), its type and why.
    """

    code: ClassVar[str] = "unwritable_resources"
    exit_code: ClassVar[ExitCode] = ExitCode.BAD_INPUT

    def __init__(self, problems: Sequence[str], mode: str) -> None:
        self.problems = list(problems)
        shown = "; ".join(self.problems[:20])
        if len(self.problems) > 20:
            shown += f"; ... and {len(self.problems) - 20} more"
        super().__init__(
            f"{len(self.problems)} resource(s) cannot be written as {mode} (positions in the input, "
            f"from 0; nothing was sent): {shown}"
        )


class UploadPlan:
    """A chunked upload without the I/O: the input checked whole, the bundles to send, in order, the
    running summary, and what to say when it stops half-way.

    plan = UploadPlan(resources, chunk_size=200, base_url=client.base_url)
    plan.check()                                     # before the first write
    for bundle in plan.bundles():
        try:
            result = client.transaction(bundle)
        except FhirError as exc:
            failure = plan.interrupted(exc)          # says which chunks were committed
            ...
        plan.done(result)
    return plan.summary

    ``resources`` is read twice (once to check, once to send) when it can be (a list, or any iterable
    whose ``iter()`` starts again); a one-shot iterator is read into a list first.
    """

    def __init__(
        self,
        resources: Iterable[Mapping[str, Any]],
        *,
        chunk_size: int,
        mode: TransactionMode,
        bundle_type: Literal["transaction", "batch"],
        identifier_system: str | None,
        base_url: str | None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk size must be at least 1")
        self._resources = list(resources) if isinstance(resources, Iterator) else resources
        self._chunk_size = chunk_size
        self._mode: TransactionMode = mode
        self.bundle_type: Literal["transaction", "batch"] = bundle_type
        self._identifier_system = identifier_system
        self._base_url = base_url
        self._progress = progress
        self.summary = UploadSummary()
        self.total: int | None = None
        self.sent = 0
        self.chunk = -1
        self._chunk_len = 0

    def check(self) -> None:
        """Read the whole input once and check every resource can be written in the mode.

        Raises:
            UnwritableResources: listing every resource that cannot (nothing has been sent).
            Whatever reading the input raises (e.g. ``FhirFileError`` for a bad line in a file).
        """
        problems: list[str] = []
        total = 0
        for index, resource in enumerate(self._resources):
            request = entry_request(resource, self._mode, self._identifier_system)
            if isinstance(request, str):
                problems.append(f"resource {index}{request}")
            total += 1
        if problems:
            raise UnwritableResources(problems, self._mode)
        self.total = total

    def bundles(self) -> Iterator[dict[str, Any]]:
        """The bundles, one per chunk; an error reading the input on the way gets a note saying
        what was committed before it."""
        chunks = chunked(self._resources, self._chunk_size)
        number = 0
        while True:
            try:
                resources = next(chunks, None)
                if resources is None:
                    return
                bundle = transaction_bundle(
                    resources,
                    mode=self._mode,
                    bundle_type=self.bundle_type,
                    identifier_system=self._identifier_system,
                    base_url=self._base_url,
                )
            except Exception as exc:  # annotated and raised again, never swallowed
                exc.add_note(self.committed(f"chunk {number + 1} and later were not sent"))
                raise
            self.chunk, self._chunk_len = number, len(resources)
            number += 1
            yield bundle

    def done(self, result: BundleResult) -> None:
        """Count a committed chunk, log its counts (types and results only), report progress."""
        self.summary.add(result, offset=self.sent)
        self.sent += self._chunk_len
        logging.getLogger("trialfhir.client").info(
            "upload chunk %d: %d entries, %s",
            self.chunk,
            self._chunk_len,
            ", ".join(f"{rt} {counts}" for rt, counts in result.counts().items()),
        )
        if self._progress is not None:
            self._progress(self.sent)

    def committed(self, current: str) -> str:
        """What is on the server after a stop in the current chunk: the chunks committed before it,
        ``current`` (what became of this one), and whether re-running the upload completes it."""
        done = self.summary.bundles
        of = f" of {self.total}" if self.total is not None else ""
        if done == 0:
            before = "nothing was committed before it"
        elif done == 1:
            before = f"chunk 1 ({self.sent}{of} resources) was committed before it"
        else:
            before = f"chunks 1-{done} ({self.sent}{of} resources) were committed before it"
        if self._mode == "create":
            again = "Mode create is not idempotent: re-running would write duplicates"
        else:
            again = "Re-running the same upload completes it (it is idempotent)"
        return f"{before[0].upper()}{before[1:]}; {current}. {again}."

    def interrupted(self, exc: Exception) -> Exception:
        """The error to raise when sending the current chunk failed: a TransactionFailed or
        TransactionResponseMismatch again with the chunk, upload-wide entry indexes and what was
        committed; any other error with a note saying what was committed."""
        number = self.chunk + 1
        if isinstance(exc, TransactionFailed):
            current = (
                f"chunk {number} was rolled back (a transaction is all or nothing)"
                if self.bundle_type == "transaction"
                else f"chunk {number} failed"
            )
            return TransactionFailed(
                exc.status,
                outcome=exc.outcome,
                failed_entries=shift_indexes(exc.failed_entries, self.sent),
                chunk=self.chunk,
                completed=self.summary,
                committed=self.committed(current),
            )
        if isinstance(exc, TransactionResponseMismatch):
            current = f"the server says chunk {number} was committed too, but its answer cannot be trusted"
            return TransactionResponseMismatch(
                exc.problems,
                chunk=self.chunk,
                completed=self.summary,
                committed=self.committed(current),
            )
        if isinstance(exc, FhirHttpError):
            current = f"chunk {number} was refused"
        else:
            current = f"chunk {number} may or may not have been committed (no answer)"
        exc.add_note(self.committed(current))
        return exc

    def failed(self, exc: TransactionFailed) -> Exception:
        """``interrupted`` for a TransactionFailed (kept for callers of the earlier name)."""
        return self.interrupted(exc)
