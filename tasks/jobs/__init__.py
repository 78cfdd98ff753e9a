"""The inbox app's jobs by area (bulk processing, categorizing, cleaning, digests), each
module with the helpers it splits out; `tasks` imports each to declare its jobs."""
