"""The one adapter to git (GitPython and the git CLI it drives) for the bootstrap.

    login = GitLogin("platform", password)
    heads = remote_heads(url, login)              {"refs/heads/main": sha}; RepoNotFound
    checkout = Checkout.clone(url, workdir, login)
    changed = checkout.write_tree(files, owned_dirs=["platform/vault"])
    sha = checkout.commit("message", AUTHOR)
    checkout.push("main")

Credentials never appear in a URL or in argv: they reach git as an `http.extraHeader`
through the GIT_CONFIG_COUNT/KEY/VALUE environment of the git process alone, so they are
not in /proc/<pid>/cmdline, not in the server's access log, and not in the clone's
.git/config. Prompts and the user's own credential helpers are switched off for these
calls. Library errors become PlatformErrors here (`failed to <verb> <url>: <cause>`),
their text passed through stacks.redact and trimmed.

`fetch_template` is the other direction: the user's own template repository (`platform
up --template URL#REF`), fetched with the user's own git setup, never prompting.

Called by the `gitserver` and `seed` stages and by `platform git clone`.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import git

from bootstrap.config import ConfigError
from stacks import redact
from stacks.errors import PermanentError, PlatformError, TransientError, trim

AUTHOR = ("platform bootstrap", "bootstrap@platform.local")
DEFAULT_BRANCH = "main"
TIMEOUT = 120.0


class RepoNotFound(PermanentError):
    """The server answers, but has no repository at that URL (yet)."""


@dataclass(frozen=True)
class GitLogin:
    username: str
    password: str

    def __repr__(self) -> str:  # never print the password, even by accident
        return f"GitLogin(username={self.username!r})"

    def header(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        redact.register(self.password, token)
        return f"Authorization: Basic {token}"


def environment(login: GitLogin | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for one git process: the login as an extra header, no prompts, no
    credential helpers, no user config that could rewrite URLs."""
    env = {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "GCM_INTERACTIVE": "never",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "credential.helper",
        "GIT_CONFIG_VALUE_0": "",
    }
    if login is not None:
        env.update(
            {
                "GIT_CONFIG_COUNT": "2",
                "GIT_CONFIG_KEY_1": "http.extraHeader",
                "GIT_CONFIG_VALUE_1": login.header(),
            }
        )
    env.update(extra or {})
    return env


def _classify(verb: str, url: str, error: Exception) -> PlatformError:
    stderr = getattr(error, "stderr", "") or str(error)
    text = trim(redact.redact(str(stderr).replace("stderr:", "").strip().strip("'")), 400)
    lower = text.lower()
    message = f"failed to {verb} {url}: {text}"
    if any(s in lower for s in ("401", "authentication failed", "could not read username")):
        return PermanentError(
            f"failed to {verb} {url}: the git server refused the credentials",
            hint="check git.username and the password in git.password_file (or run "
            "`platform up --from gitserver` to create the platform's credentials again)",
        )
    if "403" in lower:
        return PermanentError(
            f"failed to {verb} {url}: the git user may not do this (HTTP 403)",
            hint="use a git user with write access for git.username",
        )
    if any(s in lower for s in ("not found", "404", "does not appear to be a git repository")):
        return RepoNotFound(message, hint="create the repository, or check git.url")
    if any(s in lower for s in ("non-fast-forward", "fetch first", "rejected", "stale info")):
        return TransientError(
            f"failed to {verb} {url}: someone pushed at the same time ({text})",
            hint="run `platform up` again",
        )
    return TransientError(message, hint="check that the git server runs and git.url is right")


def remote_heads(url: str, login: GitLogin | None, timeout: float = 30.0) -> dict[str, str]:
    """ref -> sha of the repository's branches and HEAD (empty for an empty repository)."""
    try:
        out = git.cmd.Git().ls_remote(url, env=environment(login), kill_after_timeout=timeout)
    except git.GitCommandError as error:
        raise _classify("list the branches of", url, error) from None
    heads: dict[str, str] = {}
    for line in str(out).splitlines():
        sha, _, ref = line.partition("\t")
        if ref == "HEAD" or ref.startswith("refs/heads/"):
            heads[ref] = sha
    return heads


def seeded_revision(heads: Mapping[str, str]) -> str:
    """The commit a repository's HEAD (else main, else any branch) points at; '' if empty."""
    for ref in ("HEAD", f"refs/heads/{DEFAULT_BRANCH}"):
        if ref in heads:
            return heads[ref]
    return next(iter(sorted(heads.values())), "")


class Checkout:
    """A working copy cloned with a login that is kept in memory, never in .git/config."""

    def __init__(self, repo: git.Repo, url: str, login: GitLogin | None) -> None:
        self.repo = repo
        self.url = url
        self.login = login

    @classmethod
    def clone(cls, url: str, directory: Path, login: GitLogin | None) -> Checkout:
        try:
            repo = git.Repo.clone_from(
                url, directory, env=environment(login), kill_after_timeout=TIMEOUT
            )
        except git.GitCommandError as error:
            raise _classify("clone", url, error) from None
        return cls(repo, url, login)

    @classmethod
    def init(cls, url: str, directory: Path, login: GitLogin | None) -> Checkout:
        """A new local repository whose origin is `url` (for servers that create a
        repository on its first push)."""
        try:
            repo = git.Repo.init(directory)
            repo.create_remote("origin", url)
        except git.GitCommandError as error:
            raise _classify("initialise a repository for", url, error) from None
        return cls(repo, url, login)

    def close(self) -> None:
        """End the git processes GitPython keeps running for this working copy."""
        self.repo.close()

    @property
    def root(self) -> Path:
        return Path(str(self.repo.working_tree_dir))

    def has_commits(self) -> bool:
        try:
            self.repo.head.commit  # noqa: B018 - raises on an unborn branch
        except ValueError:
            return False
        return True

    def head_sha(self) -> str:
        return self.repo.head.commit.hexsha if self.has_commits() else ""

    def branch(self) -> str:
        with contextlib.suppress(TypeError):
            return self.repo.active_branch.name
        return DEFAULT_BRANCH

    def write_tree(self, files: Mapping[str, bytes], owned_dirs: Iterable[str] = ()) -> bool:
        """Write `files`; delete files under `owned_dirs` that are not in `files`.
        Files elsewhere (a user's own apps) are left alone. True when anything changed."""
        root = self.root
        for owned in owned_dirs:
            folder = root / owned
            if folder.is_dir():
                for path in sorted(folder.rglob("*")):
                    relative = path.relative_to(root).as_posix()
                    if path.is_file() and relative not in files:
                        path.unlink()
        for relative, content in files.items():
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.is_file() or target.read_bytes() != content:
                target.write_bytes(content)
        self._git("add", "--all")
        return bool(self._git("status", "--porcelain").strip())

    def commit(self, message: str, author: tuple[str, str] = AUTHOR) -> str:
        name, email = author
        identity = {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
        }
        if not self.has_commits():
            self._git("symbolic-ref", "HEAD", f"refs/heads/{DEFAULT_BRANCH}")
        self._git("commit", "--quiet", "--no-verify", "-m", message, extra=identity)
        return self.head_sha()

    def push(self, branch: str | None = None) -> None:
        """Push HEAD to `branch` (fast-forward only: history is never rewritten)."""
        target = branch or self.branch()
        try:
            self.repo.git.push(
                "origin",
                f"HEAD:refs/heads/{target}",
                env=environment(self.login),
                kill_after_timeout=TIMEOUT,
            )
        except git.GitCommandError as error:
            raise _classify("push to", self.url, error) from None

    def _git(self, *args: str, extra: Mapping[str, str] | None = None) -> str:
        try:
            return str(
                self.repo.git.execute(
                    ["git", *args],
                    env=environment(None, extra),
                    kill_after_timeout=TIMEOUT,
                )
            )
        except git.GitCommandError as error:
            raise _classify(f"run git {args[0]} in", str(self.root), error) from None


def clone_for_person(url: str, directory: Path, login: GitLogin) -> str:
    """`platform git clone`: a clone whose remote URL carries no credentials; the HEAD sha."""
    if directory.exists() and any(directory.iterdir()):
        raise PermanentError(
            f"{directory} exists and is not empty",
            hint="choose another directory: `platform git clone DIR`",
        )
    checkout = Checkout.clone(url, directory, login)
    return checkout.head_sha()


def set_origin(directory: Path, url: str) -> None:
    """Point a clone's `origin` at `url` (no credentials in it)."""
    try:
        git.Repo(directory).remote("origin").set_url(url)
    except git.GitCommandError as error:
        raise _classify("set the origin of", str(directory), error) from None


# Transports a template may be fetched over (git's own `ext::` and the like are refused,
# here and for anything the fetch could recurse into).
TEMPLATE_PROTOCOLS = "http:https:git:ssh:file"


def template_environment() -> dict[str, str]:
    """Environment for fetching the user's template: the user's own git setup (credential
    helpers, SSH keys, insteadOf rules) stays, since the repository is theirs, but nothing
    may prompt, so a run in CI fails with a sentence instead of hanging."""
    env = {
        "GIT_TERMINAL_PROMPT": "0",
        "GCM_INTERACTIVE": "never",
        "GIT_ALLOW_PROTOCOL": TEMPLATE_PROTOCOLS,
    }
    if not os.environ.get("GIT_SSH_COMMAND"):
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    return env


def fetch_template(url: str, ref: str, directory: Path, timeout: float = TIMEOUT) -> str:
    """The tree of `url` at `ref` (its default branch when '') in `directory`, one commit
    deep; the commit's sha. Errors say whether the URL, the ref or the network is wrong."""
    wanted = ref or "HEAD"
    env = template_environment()
    repo = git.Repo.init(directory)
    try:
        repo.git.execute(
            ["git", "fetch", "--quiet", "--depth", "1", "--no-tags", "--", url, wanted],
            env=env,
            kill_after_timeout=timeout,
        )
        repo.git.execute(["git", "checkout", "--quiet", "--detach", "FETCH_HEAD"], env=env)
        return str(repo.git.execute(["git", "rev-parse", "HEAD"], env=env)).strip()
    except git.GitCommandError as error:
        raise _template_error(url, ref, error, timeout) from None
    finally:
        repo.close()  # no git cat-file left running


def _template_error(
    url: str, ref: str, error: git.GitCommandError, timeout: float
) -> PlatformError:
    stderr = str(getattr(error, "stderr", "") or error)
    text = trim(redact.redact(stderr.replace("stderr:", "").strip().strip("'")), 300)
    lower = text.lower()
    where = f"the template repository {url}"
    if error.status in (-9, 137):  # killed at the timeout
        return PermanentError(
            f"fetching {where} took longer than {timeout:.0f}s",
            hint="check the network, or clone it yourself and give --template the directory",
        )
    if "unadvertised object" in lower or "not our ref" in lower:
        return ConfigError(
            f"{where} does not serve the commit {ref!r} directly",
            hint="name a branch or tag after '#' instead of a commit",
        )
    if "couldn't find remote ref" in lower:
        if not ref:
            return ConfigError(f"{where} is empty (it has no default branch)")
        return ConfigError(
            f"{where} has no branch or tag {ref!r}",
            hint="check the name after '#' (`git ls-remote URL` lists them), or drop "
            "#REF for the default branch",
        )
    if any(
        s in lower
        for s in (
            "401",
            "authentication",
            "could not read username",
            "terminal prompts disabled",
            "permission denied",
        )
    ):
        return PermanentError(
            f"{where} asks for a login, and nothing could answer it without a prompt",
            hint="let git log in without asking (a credential helper, an SSH key in the "
            "agent), or clone it yourself and give --template the directory",
        )
    if any(
        s in lower
        for s in ("not found", "404", "does not appear to be a git repository", "no such file")
    ):
        return ConfigError(
            f"there is no git repository at {url}",
            hint="check the URL (`git ls-remote URL` must work on this machine)",
        )
    return PermanentError(
        f"cannot fetch {where}: {text}",
        hint="check the URL and that this machine reaches it (offline: clone it while "
        "online and give --template the directory)",
    )
