"""`python -m testenv [TOOL ...]`: provide the test binaries and print what is where.

Run by `make testenv` and `.ci/run`. Exit 1 with one line per binary it could not get.
Builds run two at a time (PLATFORM_TESTENV_JOBS), longest first: a Go build spends
much of its time on one core (fetching modules, linking), so a second build beside it
uses the idle core; on a cold 2-core machine this is the largest part of CI.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import Future, ThreadPoolExecutor, as_completed

from testenv.catalog import Tool, all_tools
from testenv.provide import MissingBinary, Provided, cache_root, provide

DEFAULT_JOBS = 2


def _jobs() -> int:
    value = os.environ.get("PLATFORM_TESTENV_JOBS", "")
    try:
        return max(1, int(value)) if value else DEFAULT_JOBS
    except ValueError:
        print(f"PLATFORM_TESTENV_JOBS={value!r} is not a number; using {DEFAULT_JOBS}")
        return DEFAULT_JOBS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testenv", description=__doc__)
    parser.add_argument("tools", nargs="*", help="only these tools (default: all)")
    args = parser.parse_args(argv)
    known = {t.name for t in all_tools()}
    unknown = sorted(set(args.tools) - known)
    if unknown:
        print(f"unknown tool(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return 2
    wanted = [t for t in all_tools() if not args.tools or t.name in args.tools]
    jobs = _jobs()
    print(f"testenv cache: {cache_root()} ({jobs} at a time)", flush=True)
    failures = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        running: dict[Future[Provided], Tool] = {
            pool.submit(provide, tool): tool
            for tool in sorted(wanted, key=lambda t: t.cold_seconds, reverse=True)
        }
        for done in as_completed(running):
            tool = running[done]
            try:
                result = done.result()
            except MissingBinary as error:
                print(f"  {tool.name:<26} {tool.version:<9} MISSING", flush=True)
                failures.append(str(error))
                continue
            paths = ", ".join(str(p) for p in result.paths.values())
            print(
                f"  {tool.name:<26} {tool.version:<9} {result.source:<10} "
                f"{result.seconds:7.1f}s  {paths}",
                flush=True,
            )
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
