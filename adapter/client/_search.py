"""Searches: a lazy, immutable, chainable query that pages through ``Bundle.link[next]`` when iterated.

    search = client.search("Patient").where(identifier=token(system, value)).count(50)
    for patient in search: ...              # matches only, over every page
    for entry in search.entries(): ...      # every entry, with search.mode (match / include / outcome)
    n = search.total()                      # _summary=count

Every builder method returns a new object; nothing is sent before iteration. ``Search`` runs on a
``FhirClient``, ``AsyncSearch`` (``async for``) on an ``AsyncFhirClient``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Literal, Protocol, Self, TypeVar

from adapter.fhir_query import SearchParams, SearchValue, format_search_value, search_pairs

from ._core import ClientCore, RequestSpec
from ._errors import InvalidResponse, PageLimitReached, PagingLoop

__all__ = ["AsyncSearch", "Page", "Search", "SearchEntry"]

logger = logging.getLogger("trialfhir.client")

SummaryMode = Literal["true", "false", "text", "data", "count"]
TotalMode = Literal["none", "estimate", "accurate"]


@dataclass(frozen=True, slots=True)
class SearchEntry:
    """One entry of a searchset: the resource and why it is there (``match``, ``include``, ``outcome``)."""

    resource: dict[str, Any]
    mode: str | None
    full_url: str | None = None
    score: float | None = None

    @property
    def is_match(self) -> bool:
        """True for resources that matched the search (mode ``match``, or no mode given)."""
        return (
            self.mode in (None, "match") and self.resource.get("resourceType") != "OperationOutcome"
        )


@dataclass(frozen=True, slots=True)
class Page:
    """One searchset Bundle and its position (1-based) in the paging sequence."""

    bundle: dict[str, Any] = field(repr=False)
    number: int

    @property
    def entries(self) -> list[SearchEntry]:
        out: list[SearchEntry] = []
        for raw in self.bundle.get("entry") or []:
            resource = raw.get("resource")
            if resource is None:
                continue
            search = raw.get("search") or {}
            mode, score, full_url = search.get("mode"), search.get("score"), raw.get("fullUrl")
            out.append(
                SearchEntry(
                    resource,
                    mode if isinstance(mode, str) else None,
                    full_url if isinstance(full_url, str) else None,
                    score if isinstance(score, (int, float)) else None,
                )
            )
        return out

    @property
    def next_link(self) -> str | None:
        for link in self.bundle.get("link") or []:
            if link.get("relation") == "next" and isinstance(link.get("url"), str):
                return str(link["url"])
        return None

    @property
    def total(self) -> int | None:
        value = self.bundle.get("total")
        return value if isinstance(value, int) else None


def _as_page(body: Any, number: int) -> Page:
    """A searchset page, its shape checked: ``entry`` and ``link`` lists of objects, each entry's
    ``resource`` (when there is one) an object with a ``resourceType``, ``search`` an object."""
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise InvalidResponse(f"search page {number}: expected a Bundle")
    for name in ("entry", "link"):
        if name not in body:
            continue
        items = body[name]  # present means a list: JSON null is not FHIR (an empty page omits it)
        if not (isinstance(items, list) and all(isinstance(item, dict) for item in items)):
            raise InvalidResponse(f"search page {number}: Bundle.{name} is not a list of objects")
    for index, entry in enumerate(body.get("entry") or []):
        resource = entry.get("resource")
        if resource is not None and not (
            isinstance(resource, dict) and isinstance(resource.get("resourceType"), str)
        ):
            raise InvalidResponse(
                f"search page {number}: Bundle.entry[{index}].resource is not a FHIR resource"
            )
        if not isinstance(entry.get("search", {}), dict):
            raise InvalidResponse(
                f"search page {number}: Bundle.entry[{index}].search is not an object"
            )
    return Page(body, number)


class _HasCore(Protocol):
    @property
    def _core(self) -> ClientCore: ...


class _Sender(_HasCore, Protocol):
    """What a Search needs from FhirClient: its core and one JSON request."""

    def _request_json(self, spec: RequestSpec) -> Any: ...


class _AsyncSender(_HasCore, Protocol):
    """What an AsyncSearch needs from AsyncFhirClient."""

    async def _request_json(self, spec: RequestSpec) -> Any: ...


C = TypeVar("C", bound=_HasCore)


@dataclass(frozen=True)
class _Query(Generic[C]):
    """The immutable query state and its builder methods (shared by Search and AsyncSearch)."""

    client: C = field(repr=False, compare=False)
    resource_type: str | None
    params: tuple[tuple[str, str], ...] = ()
    page_cap: int | None = None
    max_resources: int | None = None
    use_post: bool = False
    start_link: str | None = None
    start_page: int = 1

    def _with(self, *pairs: tuple[str, str]) -> Self:
        return replace(self, params=self.params + pairs)

    def where(
        self, params: SearchParams | None = None, /, **kwargs: SearchValue | Sequence[SearchValue]
    ) -> Self:
        """Add search parameters: ``where(identifier="sys|val")`` or ``where({"subject:Patient.identifier": v})``.

        A list value repeats the parameter (AND); OR is a comma inside one value. Keyword names are used
        as given, except ``__`` which becomes ``:`` (``code__text="x"`` is ``code:text=x``).
        """
        pairs = search_pairs(params)
        pairs += search_pairs({name.replace("__", ":"): value for name, value in kwargs.items()})
        return self._with(*pairs)

    def include(self, target: str, *, iterate: bool = False) -> Self:
        """``_include=Type:param[:target]`` (``_include:iterate`` with ``iterate=True``)."""
        return self._with(("_include:iterate" if iterate else "_include", target))

    def revinclude(self, target: str, *, iterate: bool = False) -> Self:
        """``_revinclude=Type:param`` (``_revinclude:iterate`` with ``iterate=True``)."""
        return self._with(("_revinclude:iterate" if iterate else "_revinclude", target))

    def has(self, chain: str, value: SearchValue) -> Self:
        """Reverse chaining: ``has("Observation:patient:code", "1234-5")`` is ``_has:Observation:patient:code=1234-5``."""
        return self._with((f"_has:{chain}", format_search_value(value)))

    def count(self, page_size: int) -> Self:
        """``_count``: resources per page (the server may cap it)."""
        if page_size < 0:
            raise ValueError("_count must not be negative")
        return self._with(("_count", str(page_size)))

    def sort(self, *fields: str) -> Self:
        """``_sort=a,-b``."""
        return self._with(("_sort", ",".join(fields)))

    def elements(self, *names: str) -> Self:
        """``_elements=a,b``."""
        return self._with(("_elements", ",".join(names)))

    def summary(self, mode: SummaryMode) -> Self:
        """``_summary``."""
        return self._with(("_summary", mode))

    def total_mode(self, mode: TotalMode) -> Self:
        """``_total``: ask the server to compute Bundle.total (``accurate``) or not."""
        return self._with(("_total", mode))

    def max_pages(self, pages: int) -> Self:
        """The page cap of this search (the client's ``max_pages`` otherwise): a search with more
        pages raises ``PageLimitReached`` when the cap is reached (never a quiet stop, which would
        drop data). To take only the first resources, use ``limit``."""
        if pages < 1:
            raise ValueError("the page cap must be at least 1")
        return replace(self, page_cap=pages)

    def limit(self, resources: int) -> Self:
        """Stop iterating matches after this many resources."""
        if resources < 0:
            raise ValueError("limit must not be negative")
        return replace(self, max_resources=resources)

    def post(self, enabled: bool = True) -> Self:
        """Send the first page as ``POST Type/_search`` with a form body (long queries, no values in
        the URL); the server's next links are then followed with GET as given."""
        return replace(self, use_post=enabled)

    def resume(self, next_link: str, *, page_number: int = 2) -> Self:
        """Continue a search from a saved ``Page.next_link`` (a checkpoint), e.g. after a crash.

        The link is checked against the server's origin like any other; HAPI keeps them for an hour,
        after which the server answers 410 (``Gone``).
        """
        return replace(self, start_link=next_link, start_page=page_number)

    def query_pairs(self) -> list[tuple[str, str]]:
        """The (name, value) pairs that will be sent (before percent-encoding)."""
        return list(self.params)

    def _first_spec(self) -> RequestSpec:
        core = self.client._core
        if self.start_link is not None:
            return core.next_page(self.start_link, self.resource_type)
        return core.search(self.resource_type, self.params, post=self.use_post)

    def _first_query(self) -> Self:
        query = self if any(n == "_count" for n, _ in self.params) else self.count(1)
        return query.limit(1)

    def _without(self, *names: str) -> tuple[tuple[str, str], ...]:
        return tuple(p for p in self.params if p[0] not in names)

    def _log_page(self, page: Page) -> None:
        logger.debug(
            "search %s page %d: %d entries%s",
            self.resource_type or "-",
            page.number,
            len(page.bundle.get("entry") or []),
            ", more" if page.next_link else "",
        )

    def _paging(self) -> _Paging:
        return _Paging(self, self.page_cap or self.client._core.max_pages)


class _Paging:
    """One walk through a search's pages: refuses a next link already followed (a loop) and a page
    beyond the cap (both errors, never a quiet stop)."""

    def __init__(self, query: _Query[Any], cap: int) -> None:
        self.query = query
        self.cap = cap
        self.number = query.start_page
        self.spec = query._first_spec()
        self.seen: dict[str, int] = {}
        if self.spec.method == "GET":
            self.seen[str(self.spec.url)] = self.number

    def follow(self, page: Page) -> RequestSpec | None:
        """The request for the page after ``page``, or None when it is the last one."""
        link = page.next_link
        if link is None:
            return None
        if page.number - self.query.start_page + 1 >= self.cap:
            raise PageLimitReached(self.cap, self.query.resource_type)
        core: ClientCore = self.query.client._core
        spec = core.next_page(link, self.query.resource_type)
        key = str(spec.url)
        if key in self.seen:
            raise PagingLoop(page.number + 1, self.seen[key])
        self.number += 1
        self.seen[key] = self.number
        self.spec = spec
        return spec


class Search(_Query[_Sender]):
    """A search on a ``FhirClient``; iterating it yields the matching resources of every page."""

    def pages(self) -> Iterator[Page]:
        """Every searchset page, following ``next`` links exactly as the server gave them.

        Raises:
            UnsafeNextLink, PagingLoop, PageLimitReached: before asking for a page it should not.
        """
        paging = self._paging()
        while True:
            page = _as_page(self.client._request_json(paging.spec), paging.number)
            self._log_page(page)
            yield page
            if paging.follow(page) is None:
                return

    def entries(self) -> Iterator[SearchEntry]:
        """Every entry of every page (matches, included resources, outcome warnings), lazily."""
        for page in self.pages():
            yield from page.entries

    def __iter__(self) -> Iterator[dict[str, Any]]:
        remaining = self.max_resources
        if remaining == 0:
            return
        for entry in self.entries():
            if entry.is_match:
                yield entry.resource
                if remaining is not None:
                    remaining -= 1
                    if remaining == 0:
                        return

    def all(self) -> list[dict[str, Any]]:
        """Every matching resource, as a list."""
        return list(self)

    def included(self) -> list[dict[str, Any]]:
        """Every resource that came with search.mode ``include`` (from _include / _revinclude)."""
        return [e.resource for e in self.entries() if e.mode == "include"]

    def first(self) -> dict[str, Any] | None:
        """The first match, or None when the search found nothing (never a 404)."""
        return next(iter(self._first_query()), None)

    def total(self) -> int:
        """How many resources match (``_summary=count``)."""
        spec = self.client._core.search(
            self.resource_type,
            (
                *self._without("_count", "_summary", "_include", "_revinclude"),
                ("_summary", "count"),
            ),
        )
        total = _as_page(self.client._request_json(spec), 1).total
        if total is None:
            raise InvalidResponse("the server did not return Bundle.total for _summary=count")
        return total


class AsyncSearch(_Query[_AsyncSender]):
    """A search on an ``AsyncFhirClient``; ``async for`` yields the matching resources of every page."""

    async def pages(self) -> AsyncGenerator[Page, None]:
        """Every searchset page, following ``next`` links exactly as the server gave them.

        Raises:
            UnsafeNextLink, PagingLoop, PageLimitReached: before asking for a page it should not.
        """
        paging = self._paging()
        while True:
            page = _as_page(await self.client._request_json(paging.spec), paging.number)
            self._log_page(page)
            yield page
            if paging.follow(page) is None:
                return

    async def entries(self) -> AsyncGenerator[SearchEntry, None]:
        """Every entry of every page (matches, included resources, outcome warnings), lazily."""
        async with aclosing(self.pages()) as pages:
            async for page in pages:
                for entry in page.entries:
                    yield entry

    async def __aiter__(self) -> AsyncGenerator[dict[str, Any], None]:
        remaining = self.max_resources
        if remaining == 0:
            return
        async with aclosing(self.entries()) as entries:
            async for entry in entries:
                if entry.is_match:
                    yield entry.resource
                    if remaining is not None:
                        remaining -= 1
                        if remaining == 0:
                            return

    async def all(self) -> list[dict[str, Any]]:
        """Every matching resource, as a list."""
        return [resource async for resource in self]

    async def included(self) -> list[dict[str, Any]]:
        """Every resource that came with search.mode ``include``."""
        return [e.resource async for e in self.entries() if e.mode == "include"]

    async def first(self) -> dict[str, Any] | None:
        """The first match, or None when the search found nothing (never a 404)."""
        async with aclosing(self._first_query().__aiter__()) as resources:
            async for resource in resources:
                return resource
        return None

    async def total(self) -> int:
        """How many resources match (``_summary=count``)."""
        spec = self.client._core.search(
            self.resource_type,
            (
                *self._without("_count", "_summary", "_include", "_revinclude"),
                ("_summary", "count"),
            ),
        )
        total = _as_page(await self.client._request_json(spec), 1).total
        if total is None:
            raise InvalidResponse("the server did not return Bundle.total for _summary=count")
        return total
