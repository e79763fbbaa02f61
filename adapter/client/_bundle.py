"""The client's side of Bundles: refusing an answer that does not fit, and chunked uploads (no I/O).

The Bundle rule itself (entries, conditional requests, ``fullUrl``, outcomes) lives in
``adapter.bundles``, shared with the files; here are the parts that raise the client's errors:
``parse_bundle_response`` (an answer wrongly shaped or not answering the request is refused),
``UnwritableResources`` and ``UploadPlan`` (a chunked upload: the input checked whole, the bundles
to send, in order or in dependency waves (``dependency_waves``) for concurrent sending, what to say
when it stops half-way).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
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
    "dependency_waves",
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


def _references(value: Any) -> Iterator[str]:
    """Every ``reference`` string in a resource, at any depth (no recursion: depth is the input's)."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, child in item.items():
                if key == "reference" and isinstance(child, str):
                    yield child
                elif isinstance(child, (Mapping, list)):
                    stack.append(child)
        elif isinstance(item, list):
            stack.extend(child for child in item if isinstance(child, (Mapping, list)))


def _local(reference: str, base_url: str | None) -> str:
    """A reference as ``Type/id`` (or ``Type?search``) when it points into the server: the base
    stripped, the version (``/_history/n``) dropped."""
    if base_url is not None and reference.startswith(base_url):
        reference = reference[len(base_url) :].lstrip("/")
    head, _, _ = reference.partition("/_history/")
    return head


def dependency_waves(
    resources: Sequence[Mapping[str, Any]],
    chunk_size: int,
    *,
    mode: TransactionMode,
    identifier_system: str | None = None,
    base_url: str | None = None,
) -> list[list[int]]:
    """The chunks of ``resources`` (``chunk_size`` each, in order) grouped into waves that may be
    sent concurrently: a chunk goes in the wave after the last wave holding a chunk before it that
    writes what it refers to (``Type/id``, its ``fullUrl``, or any resource of the type of a
    conditional reference ``Type?...``) or that writes the same resource (same ``Type/id`` or same
    conditional URL: the later write must come after the earlier one, as in order).

    References to a chunk after it (the input's order already puts them after) and to what the
    upload does not hold do not move it: they are as they would be sent in order. Chunk indexes from
    0, each wave in chunk order.
    """
    base = base_url.rstrip("/") + "/" if base_url is not None else None
    written: dict[str, int] = {}  # what an earlier chunk writes -> its wave
    type_wave: dict[str, int] = {}  # resource type -> the last wave writing one of that type
    waves: list[list[int]] = []
    for chunk, start in enumerate(range(0, len(resources), chunk_size)):
        members = resources[start : start + chunk_size]
        keys: list[tuple[str, str]] = []
        wave = 0
        for resource in members:
            rt = str(resource.get("resourceType"))
            own = [f"{rt}/{resource['id']}"] if isinstance(resource.get("id"), str) else []
            request = entry_request(resource, mode, identifier_system)
            if isinstance(request, dict) and "?" in str(request.get("url", "")):
                own.append(str(request["url"]))
            for key in own:
                keys.append((rt, key))
                if key in written:
                    wave = max(wave, written[key] + 1)
            for reference in _references(resource):
                if reference.startswith("#"):
                    continue
                local = _local(reference, base)
                if local in written:
                    wave = max(wave, written[local] + 1)
                elif "?" in local and local.split("?", 1)[0] in type_wave:
                    wave = max(wave, type_wave[local.split("?", 1)[0]] + 1)
        for rt, key in keys:
            written[key] = wave
            type_wave[rt] = max(type_wave.get(rt, 0), wave)
        if wave == len(waves):
            waves.append([])
        waves[wave].append(chunk)
    return waves


def _numbers(chunks: Collection[int]) -> str:
    """Chunk indexes (from 0) as the message counts them (from 1), in ranges: ``1-3, 5``."""
    ordered = sorted(c + 1 for c in chunks)
    parts: list[str] = []
    start = prev = ordered[0]
    for number in [*ordered[1:], None]:
        if number is not None and number == prev + 1:
            prev = number
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if number is not None:
            start = prev = number
    word = "chunk" if len(ordered) == 1 else "chunks"
    return f"{word} {', '.join(parts)}"


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

    With ``concurrency`` above 1, ``check`` also holds the input as a list and groups the chunks into
    ``waves`` (``dependency_waves``); ``chunk_bundle(i)`` builds chunk i, ``done(result, chunk=i)``
    counts it, ``stopped`` says what became of every chunk when some did not commit.
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
        concurrency: int = 1,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk size must be at least 1")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
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
        self.concurrency = concurrency
        self.waves: list[list[int]] = []
        """Chunk indexes per wave (``concurrency`` > 1, after ``check``); one wave of all otherwise."""
        self.committed_chunks: set[int] = set()
        self.interruption = ""
        """What was committed when the sending was cancelled (Ctrl-C), set by the sender."""

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
        if self.concurrency > 1:
            if not isinstance(self._resources, Sequence):
                self._resources = list(self._resources)
            self.waves = dependency_waves(
                self._resources,
                self._chunk_size,
                mode=self._mode,
                identifier_system=self._identifier_system,
                base_url=self._base_url,
            )

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

    def chunk_bundle(self, chunk: int) -> dict[str, Any]:
        """The bundle of chunk ``chunk`` (from 0) of a checked plan with ``concurrency`` > 1."""
        assert isinstance(self._resources, Sequence), "check() holds the input as a list"
        start = chunk * self._chunk_size
        return transaction_bundle(
            self._resources[start : start + self._chunk_size],
            mode=self._mode,
            bundle_type=self.bundle_type,
            identifier_system=self._identifier_system,
            base_url=self._base_url,
        )

    def _length(self, chunk: int) -> int:
        total = self.total if self.total is not None else 0
        return max(0, min(self._chunk_size, total - chunk * self._chunk_size))

    def done(self, result: BundleResult, *, chunk: int | None = None) -> None:
        """Count a committed chunk (the current one, or ``chunk`` when sent concurrently), log its
        counts (types and results only), report progress."""
        if chunk is None:
            chunk, length, offset = self.chunk, self._chunk_len, self.sent
        else:
            length, offset = self._length(chunk), chunk * self._chunk_size
        self.summary.add(result, offset=offset)
        self.committed_chunks.add(chunk)
        self.sent += length
        logging.getLogger("trialfhir.client").info(
            "upload chunk %d: %d entries, %s",
            chunk,
            length,
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
        return f"{before[0].upper()}{before[1:]}; {current}. {self._again()}."

    def became(self, chunk: int, exc: BaseException) -> str:
        """What became of chunk ``chunk`` when sending it raised ``exc``."""
        number = chunk + 1
        if isinstance(exc, TransactionFailed):
            if self.bundle_type == "transaction":
                return f"chunk {number} was rolled back (a transaction is all or nothing)"
            return f"chunk {number} failed"
        if isinstance(exc, TransactionResponseMismatch):
            return f"the server says chunk {number} was committed too, but its answer cannot be trusted"
        if isinstance(exc, FhirHttpError):
            return f"chunk {number} was refused"
        return f"chunk {number} may or may not have been committed (no answer)"

    def _again(self) -> str:
        if self._mode == "create":
            return "Mode create is not idempotent: re-running would write duplicates"
        return "Re-running the same upload completes it (it is idempotent)"

    def report(self, unsettled: Mapping[int, str], *, after_failure: bool = True) -> str:
        """What is on the server when the chunks in ``unsettled`` (index -> what became of it) did not
        commit: the chunks committed (by number, wherever they are), those, the chunks not sent, and
        whether re-running completes the upload. After a failure, said as ``committed`` says it
        when the stop is one chunk after an unbroken run of committed ones (as in order)."""
        done = self.committed_chunks
        if after_failure and len(unsettled) == 1:
            (chunk,) = unsettled
            if done == set(range(chunk)):
                return self.committed(unsettled[chunk])
        of = f" of {self.total}" if self.total is not None else ""
        if done:
            verb = "was" if len(done) == 1 else "were"
            parts = [f"{_numbers(done).capitalize()} ({self.sent}{of} resources) {verb} committed"]
        else:
            parts = ["Nothing was committed"]
        parts.extend(unsettled[chunk] for chunk in sorted(unsettled))
        chunks = self._chunk_count()
        unsent = [c for c in range(chunks) if c not in done and c not in unsettled]
        if unsent:
            verb = "was" if len(unsent) == 1 else "were"
            parts.append(f"{_numbers(unsent)} {verb} not sent")
        return f"{'; '.join(parts)}. {self._again()}."

    def _chunk_count(self) -> int:
        total = self.total if self.total is not None else 0
        return -(-total // self._chunk_size)

    def stopped(self, failures: Mapping[int, BaseException]) -> BaseException:
        """The error to raise when chunks sent concurrently failed (``failures``: chunk -> what it
        raised; the other chunks of the wave committed or were not sent): the first failure's error,
        as ``interrupted`` makes it, saying what became of every chunk."""
        chunk = min(failures)
        exc = failures[chunk]
        message = self.report({c: self.became(c, e) for c, e in failures.items()})
        if isinstance(exc, TransactionFailed):
            return TransactionFailed(
                exc.status,
                outcome=exc.outcome,
                failed_entries=shift_indexes(exc.failed_entries, chunk * self._chunk_size),
                chunk=chunk,
                completed=self.summary,
                committed=message,
            )
        if isinstance(exc, TransactionResponseMismatch):
            return TransactionResponseMismatch(
                exc.problems, chunk=chunk, completed=self.summary, committed=message
            )
        exc.add_note(message)
        return exc

    def interrupted(self, exc: Exception) -> Exception:
        """The error to raise when sending the current chunk failed: a TransactionFailed or
        TransactionResponseMismatch again with the chunk, upload-wide entry indexes and what was
        committed; any other error with a note saying what was committed."""
        current = self.became(self.chunk, exc)
        if isinstance(exc, TransactionFailed):
            return TransactionFailed(
                exc.status,
                outcome=exc.outcome,
                failed_entries=shift_indexes(exc.failed_entries, self.sent),
                chunk=self.chunk,
                completed=self.summary,
                committed=self.committed(current),
            )
        if isinstance(exc, TransactionResponseMismatch):
            return TransactionResponseMismatch(
                exc.problems,
                chunk=self.chunk,
                completed=self.summary,
                committed=self.committed(current),
            )
        exc.add_note(self.committed(current))
        return exc

    def failed(self, exc: TransactionFailed) -> Exception:
        """``interrupted`` for a TransactionFailed (kept for callers of the earlier name)."""
        return self.interrupted(exc)
