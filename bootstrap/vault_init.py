"""Initialise Vault in a process of its own, so the keys survive kill -9 of `platform up`.

`sys/init` returns the only copy of the unseal keys and the root token. If the process
that asked were killed between Vault answering and the keys reaching the disk, the keys
would be lost and the Vault unusable. So the vault stage starts this small program in
its own session (a Ctrl-C or kill -9 of `platform up` does not reach it); it asks Vault,
writes the answer atomically (0600) to the state dir, and exits. The next `platform up`
finds the keys file, or a pending marker while this program is still at work.

    python -m bootstrap.vault_init --address URL --shares N --threshold T --out FILE

No secret is taken from or printed to the command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bootstrap.state import write_atomic
from stacks.errors import PlatformError
from stacks.vault.api import VaultApi

PENDING_SUFFIX = ".pending"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bootstrap.vault_init")
    parser.add_argument("--address", required=True)
    parser.add_argument("--shares", type=int, required=True)
    parser.add_argument("--threshold", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    pending = args.out.with_name(args.out.name + PENDING_SUFFIX)
    write_atomic(pending, f"{os.getpid()}\n".encode(), mode=0o600)
    try:
        keys = VaultApi(args.address).initialise(args.shares, args.threshold)
        write_atomic(args.out, keys.to_json().encode(), mode=0o600)
    except PlatformError as error:
        print(f"vault_init: {error}", file=sys.stderr)
        return 1
    finally:
        pending.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
