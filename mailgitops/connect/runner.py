"""Providers checked concurrently: a thread pool of `jobs` workers (the work is waiting on the
network, which threads do well); results in the order the providers were given."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

from mailgitops.connect.probe import Job, Options, check_provider
from mailgitops.connect.results import ProviderResult

Progress = Callable[[int, int], None]


def run(
    jobs: Sequence[Job], options: Options, workers: int, progress: Progress | None = None
) -> list[ProviderResult]:
    results: list[ProviderResult | None] = [None] * len(jobs)
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
        futures = {pool.submit(check_provider, job, options): i for i, job in enumerate(jobs)}
        for done, future in enumerate(as_completed(futures), start=1):
            results[futures[future]] = future.result()
            if progress is not None:
                progress(done, len(jobs))
    return [r for r in results if r is not None]
