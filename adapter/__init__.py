"""trialfhir adapter: the edges (files, servers, analysis, command line)."""
