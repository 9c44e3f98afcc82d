"""`python -m testenv [TOOL ...]`: provide the test binaries and print what is where.

Run by `make testenv` and `.ci/run`. Exit 1 with one line per binary it could not get.
"""

from __future__ import annotations

import argparse
import sys

from testenv.catalog import all_tools
from testenv.provide import MissingBinary, cache_root, provide


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testenv", description=__doc__)
    parser.add_argument("tools", nargs="*", help="only these tools (default: all)")
    args = parser.parse_args(argv)
    known = {t.name for t in all_tools()}
    unknown = sorted(set(args.tools) - known)
    if unknown:
        print(f"unknown tool(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return 2
    print(f"testenv cache: {cache_root()}", flush=True)
    failures = []
    for tool in all_tools():
        if args.tools and tool.name not in args.tools:
            continue
        try:
            result = provide(tool)
        except MissingBinary as error:
            print(f"  {tool.name:<26} {tool.version:<9} MISSING", flush=True)
            failures.append(str(error))
            continue
        paths = ", ".join(str(p) for p in result.paths.values())
        print(
            f"  {tool.name:<26} {tool.version:<9} {result.source:<10} {result.seconds:7.1f}s  {paths}",
            flush=True,
        )
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
