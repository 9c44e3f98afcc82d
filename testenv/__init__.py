"""Real binaries for the tests: kube-apiserver, etcd, kwok, OpenBao, OpenTofu, k3d, CoreDNS.

`python -m testenv` (run by `make testenv` and `.ci/run`) fills a cache outside the repo;
the pytest fixtures in tests/ call `locate()` to find what it provided.
"""

from testenv.provide import MissingBinary, cache_root, locate, terraform_cli_config

__all__ = ["MissingBinary", "cache_root", "locate", "terraform_cli_config"]
