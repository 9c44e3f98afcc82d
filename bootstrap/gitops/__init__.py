"""The platform's GitOps repository, from the bootstrap's side.

    repo.py        render gitops-template/ (or the user's template) into the repository's
                   files; its URLs
    template.py    which template: the built-in, a directory, or a git URL#REF fetched here
    packages.py    `--package DIR`: a directory as apps/<name>/ plus its Application
    tree.py        reading a user's directory within bounds (no links, size and count limits)
    source.py      where the cluster pulls it from, and with which read-only login
    git_client.py  the one GitPython adapter: push, remote heads, a clone for a person

Used by the `gitserver`, `seed` and `reconciler` stages and by `platform git ...`.
"""
