"""Which template the GitOps repository is seeded from, and getting it onto this machine.

    source = template_source(settings)     TemplateSource(label="workshop", ...)
    root = source.materialise(workdir)     a directory to render, or None: the built-in

The built-in gitops-template/ (no `template` setting), a directory of the user's, or a
git repository (`URL#REF`, fetched one commit deep with a timeout through
bootstrap.gitops.git_client.fetch_template). Called by the `seed` stage; the renderer
itself (repo.py) only ever sees a directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bootstrap.config import Settings, is_git_url, parse_template_url
from bootstrap.gitops.git_client import TIMEOUT, fetch_template

BUILTIN = "gitops-template"


@dataclass(frozen=True)
class TemplateSource:
    """A template setting, understood: `label` names it in messages and commits."""

    label: str
    directory: Path | None = None  # a local template
    url: str = ""  # a git template
    ref: str = ""

    @property
    def builtin(self) -> bool:
        return self.directory is None and not self.url

    def describe(self) -> str:
        if self.url:
            return f"{self.url} at {self.ref or 'its default branch'}"
        if self.directory is not None:
            return str(self.directory)
        return f"the built-in {BUILTIN}/"

    def materialise(self, workdir: Path, timeout: float = TIMEOUT) -> tuple[Path | None, str]:
        """(directory to render or None for the built-in, what it is: label and commit)."""
        if self.url:
            target = workdir / "template"
            sha = fetch_template(self.url, self.ref, target, timeout)
            return target, f"{self.label} at {sha[:12]}"
        return self.directory, self.label


def template_source(settings: Settings) -> TemplateSource:
    value = settings.template
    if not value:
        return TemplateSource(BUILTIN)
    if is_git_url(value):
        ref = parse_template_url(value)
        label = f"{ref.url}#{ref.ref}" if ref.ref else ref.url
        return TemplateSource(label, url=ref.url, ref=ref.ref)
    return TemplateSource(Path(value).name or value, directory=Path(value))
