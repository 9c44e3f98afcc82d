"""Settings: defaults < platform.yaml < PLATFORM_* environment variables < flags.

One table (`FIELDS`) declares every setting once: its dotted key, type, default,
environment variable and help. `load_settings()` layers the sources, remembers where each
value came from (for `platform config`), validates, and returns one frozen `Settings`
tree. Called by every CLI command; stages and engines receive the resulting `Settings`.

Secrets (git passwords, Vault tokens) are never flags, so they never reach argv: they
come from the environment or from files named in the settings.

Every invalid value, flag or file is a `ConfigError`: bad usage, which the CLI exits 2 for.

Two settings name the user's own content for the GitOps repository (`platform up
--template`, `--package`): they are made absolute when read (relative to platform.yaml's
directory for that file, to the working directory otherwise), since they are saved with
the platform and a later `platform up` may run elsewhere. Their shape is checked here for
every command; whether the directories exist only by `platform up` (`check_content`), so
`platform down` still works after a package directory was deleted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bootstrap.images import K3S_IMAGE
from stacks.errors import PermanentError

NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
# One DNS label (RFC 1123): ingress hosts are <component>.<domain>.
LABEL_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
KIND_NAMES = {
    bool: "a boolean (true or false)",
    int: "an integer",
    float: "a number",
    str: "a string",
    tuple: "a list of strings",
}
# A template given as a git URL: scheme://... or scp-like user@host:path, then #REF.
URL_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
SCP_LIKE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*@[A-Za-z0-9.-]+:(?!//)")
GIT_SCHEMES = ("http", "https", "git", "ssh", "file")
# A git ref as `git check-ref-format` allows it, conservatively, and no option look-alike.
REF_PATTERN = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/+-]{1,200}(?<![./])$")
MAX_PACKAGES = 50


class ConfigError(PermanentError):
    """A setting, flag, environment variable or file the user gave is invalid (exit 2)."""


@dataclass(frozen=True)
class Field:
    key: str
    kind: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()

    @property
    def env(self) -> str:
        return "PLATFORM_" + self.key.upper().replace(".", "_").replace("-", "_")


FIELDS: tuple[Field, ...] = (
    Field("name", str, "local", "Name of the platform (several can coexist)."),
    Field("domain", str, "localdev.me", "DNS domain for ingress hosts (git.<domain>, ...)."),
    Field("engine", str, "k3d", "Where the cluster comes from.", ("k3d", "existing")),
    Field("kubeconfig", str, "", "Kubeconfig for --engine existing (default: $KUBECONFIG)."),
    Field("context", str, "", "Kubeconfig context for --engine existing."),
    Field("merge_kubeconfig", bool, False, "Also merge the k3d kubeconfig into ~/.kube/config."),
    Field("k3d.servers", int, 1, "k3s server nodes."),
    Field("k3d.agents", int, 0, "k3s agent nodes."),
    Field("k3d.api_port", int, 6443, "Host port of the Kubernetes API."),
    Field("k3d.http_port", int, 80, "Host port for HTTP ingress."),
    Field("k3d.https_port", int, 443, "Host port for HTTPS ingress."),
    Field("k3d.image", str, K3S_IMAGE, "k3s node image."),
    Field("git.url", str, "", "An existing git server's base URL (then none is deployed)."),
    Field("git.username", str, "platform", "Read-write git user."),
    Field("git.password_file", str, "", "File with the read-write git password."),
    Field("git.readonly_username", str, "cluster", "Read-only git user for the cluster."),
    Field("git.readonly_password_file", str, "", "File with the read-only git password."),
    Field(
        "git.access",
        str,
        "auto",
        "How the bootstrap reaches the platform's own git server: its ingress on this "
        "machine, or a port-forward through the Kubernetes API (auto: ingress with k3d, "
        "port-forward with an existing cluster).",
        ("auto", "ingress", "port-forward"),
    ),
    Field("vault.address", str, "", "An existing Vault/OpenBao address (then none is deployed)."),
    Field("vault.token_file", str, "", "File with a token for an already-unsealed Vault."),
    Field("vault.unseal_keys_file", str, "", "JSON file with unseal keys of an existing Vault."),
    Field("vault.key_shares", int, 3, "Unseal key shares at initialisation."),
    Field("vault.key_threshold", int, 2, "Unseal keys needed to unseal."),
    Field(
        "vault.access",
        str,
        "auto",
        "How the bootstrap reaches the platform's own Vault: its ingress on this machine, "
        "or a port-forward through the Kubernetes API (auto: ingress with k3d, "
        "port-forward with an existing cluster).",
        ("auto", "ingress", "port-forward"),
    ),
    Field("terraform.binary", str, "", "tofu or terraform binary (default: found on PATH)."),
    Field(
        "image.base",
        str,
        "",
        "Base image for building the component image (Dockerfile ARG BASE; default: "
        "python:3.11-slim-bookworm, pulled when absent).",
    ),
    Field(
        "image.build",
        str,
        "auto",
        "Build the component image when it is missing or from another version: auto (with "
        "k3d, which imports it into the cluster), yes (also with an existing cluster that "
        "runs on this machine's Docker), no.",
        ("auto", "yes", "no"),
    ),
    Field(
        "template",
        str,
        "",
        "What the GitOps repository is seeded from: a directory or a git URL[#REF] holding "
        "registry/CLUSTER/ (default: the built-in gitops-template/).",
    ),
    Field(
        "packages",
        tuple,
        (),
        "Directories added to the GitOps repository as apps/<directory name>/, each with "
        "an Application (a list; in the environment, paths separated by ':').",
    ),
    Field("timeout", float, 900.0, "Seconds `platform up` may take in all."),
    Field("stage_timeout", float, 300.0, "Seconds one stage may take."),
)
FIELDS_BY_KEY = {f.key: f for f in FIELDS}
# Settings that describe one run, not the platform: never saved with it.
RUN_ONLY = frozenset({"name", "timeout", "stage_timeout", "merge_kubeconfig"})


@dataclass(frozen=True)
class K3dSettings:
    servers: int
    agents: int
    api_port: int
    http_port: int
    https_port: int
    image: str


@dataclass(frozen=True)
class GitSettings:
    url: str
    username: str
    password_file: str
    readonly_username: str
    readonly_password_file: str
    access: str


@dataclass(frozen=True)
class VaultSettings:
    address: str
    token_file: str
    unseal_keys_file: str
    key_shares: int
    key_threshold: int
    access: str


@dataclass(frozen=True)
class TerraformSettings:
    binary: str


@dataclass(frozen=True)
class ImageSettings:
    base: str
    build: str


@dataclass(frozen=True)
class Settings:
    name: str
    domain: str
    engine: str
    kubeconfig: str
    context: str
    merge_kubeconfig: bool
    k3d: K3dSettings
    git: GitSettings
    vault: VaultSettings
    terraform: TerraformSettings
    timeout: float
    stage_timeout: float
    home: Path
    image: ImageSettings = field(default_factory=lambda: ImageSettings("", "auto"))
    # The user's own content (`--template`, `--package`); absolute paths or a git URL.
    template: str = ""
    packages: tuple[str, ...] = ()
    # key -> where the value came from ("default", "platform.yaml", "env PLATFORM_X", "flag")
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def state_dir(self) -> Path:
        return self.home / self.name

    def value(self, key: str) -> Any:
        node: Any = self
        for part in key.split("."):
            node = getattr(node, part)
        return node


def platform_home(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    configured = env.get("PLATFORM_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".platform"


def check_home(home: Path) -> None:
    """The state home must be (or be creatable as) a directory: say so before any command
    trips over it with NotADirectoryError."""
    for path in (home, *home.parents):
        if path.exists():
            if not path.is_dir():
                which = "it" if path == home else f"its parent {path}"
                raise ConfigError(
                    f"the platform home {home} (PLATFORM_HOME) is not a directory: "
                    f"{which} is a file",
                    hint="point PLATFORM_HOME at a directory (or unset it for ~/.platform)",
                )
            return


def check_domain(domain: str, source: str) -> str:
    """A DNS name (lowercase letters, digits, dashes; dot-separated labels), lowercased."""
    name = domain.strip().lower().rstrip(".")
    labels = name.split(".")
    if not name or len(name) > 253 or not all(LABEL_PATTERN.match(label) for label in labels):
        raise ConfigError(
            f"the domain {domain!r} from {source} is not a DNS name",
            hint="use dot-separated labels of letters, digits and dashes, e.g. localdev.me",
        )
    return name


def _coerce(spec: Field, raw: Any, source: str) -> Any:
    if spec.kind is tuple:
        return _coerce_list(spec, raw, source)
    try:
        if isinstance(raw, Mapping | list | tuple | set):
            raise ValueError(f"{_describe(raw)} is not a single value")
        if spec.kind is bool:
            if isinstance(raw, bool):
                value: Any = raw
            elif str(raw).strip().lower() in {"1", "true", "yes", "on"}:
                value = True
            elif str(raw).strip().lower() in {"0", "false", "no", "off", ""}:
                value = False
            else:
                raise ValueError(f"{raw!r} is not a boolean")
        elif spec.kind is int:
            if isinstance(raw, bool | float):
                raise ValueError(f"{raw!r} is not an integer")
            value = int(raw)
        elif spec.kind is float:
            if isinstance(raw, bool):
                raise ValueError(f"{raw!r} is not a number")
            value = float(raw)
        else:
            value = str(raw)
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"setting {spec.key} from {source} is invalid: {error}",
            hint=f"give {spec.key} {KIND_NAMES.get(spec.kind, 'a ' + spec.kind.__name__)} value",
        ) from error
    if spec.choices and value not in spec.choices:
        raise ConfigError(
            f"setting {spec.key} from {source} is {value!r}, which is not one of "
            f"{', '.join(spec.choices)}",
            hint=f"set {spec.key} to one of {', '.join(spec.choices)}",
        )
    if spec.key == "domain":
        value = check_domain(value, source)
    return value


def _coerce_list(spec: Field, raw: Any, source: str) -> tuple[str, ...]:
    """A list setting: a YAML/JSON list or flags (a sequence of strings), or one string
    of paths separated by os.pathsep, as PATH (the environment)."""
    if isinstance(raw, str):
        items = [part.strip() for part in raw.split(os.pathsep)]
    elif isinstance(raw, list | tuple) and all(
        isinstance(item, str | int | float) and not isinstance(item, bool) for item in raw
    ):
        items = [str(item).strip() for item in raw]
    else:
        raise ConfigError(
            f"setting {spec.key} from {source} is invalid: {_describe(raw)} is not a list of "
            "strings",
            hint=f"give {spec.key} a list of directories",
        )
    return tuple(item for item in items if item)


def _absolute(key: str, value: Any, base: Path) -> Any:
    """Path settings made absolute against `base` (a template URL is left as it is)."""
    if key == "template":
        if not value or is_git_url(value):
            return value
        return str((base / Path(value).expanduser()).resolve())
    if key == "packages":
        return tuple(str((base / Path(item).expanduser()).resolve()) for item in value)
    return value


def is_git_url(template: str) -> bool:
    """Whether a template setting names a git repository rather than a directory."""
    return bool(URL_SCHEME.match(template) or SCP_LIKE.match(template))


@dataclass(frozen=True)
class TemplateRef:
    """A git template: the repository URL and the ref after '#' ('' = default branch)."""

    url: str
    ref: str


def parse_template_url(template: str, source: str = "--template") -> TemplateRef:
    """URL[#REF], checked: a git scheme, no credentials in it (they would be saved with
    the platform and be visible in argv), a ref git accepts."""
    url, _, ref = template.partition("#")
    scheme_match = URL_SCHEME.match(url)
    if scheme_match:
        scheme = scheme_match.group(0)[:-3].lower()
        if scheme not in GIT_SCHEMES:
            raise ConfigError(
                f"the template URL from {source} has the scheme {scheme!r}, which git cannot "
                "clone here",
                hint=f"use one of {', '.join(GIT_SCHEMES)} (or a local directory)",
            )
        authority = url[len(scheme_match.group(0)) :].split("/", 1)[0]
        if "@" in authority and scheme in ("http", "https"):
            raise ConfigError(
                f"the template URL from {source} carries credentials (user@ or user:password@ "
                "before the host)",
                hint="drop them: the URL is saved with the platform and passed to git on its "
                "command line; git's own credential helper or SSH keys log in instead",
            )
        if not authority and scheme != "file":
            raise ConfigError(f"the template URL from {source} has no host")
    if "\n" in template or "\r" in template or any(ord(c) < 32 for c in template):
        raise ConfigError(f"the template URL from {source} holds control characters")
    if ref and not REF_PATTERN.match(ref):
        raise ConfigError(
            f"the template ref {ref!r} from {source} is not a branch, tag or commit name",
            hint="write URL#BRANCH, URL#TAG or URL#COMMIT (letters, digits, . _ / + -)",
        )
    if "#" in template and not ref:
        raise ConfigError(
            f"the template URL from {source} ends with '#' but names no ref",
            hint="write URL#BRANCH, or the URL alone for its default branch",
        )
    return TemplateRef(url, ref)


def package_name(path: str) -> str:
    """The app name of a package directory: the directory's own name, as it is (a name
    that is not a DNS label is an error, never silently changed)."""
    return Path(path).name


def _check_content(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    """The shape of --template and --package (for every command; existence: check_content)."""
    template = values["template"]
    if template and is_git_url(template):
        parse_template_url(template, _source_name("template", sources))
    packages = values["packages"]
    where = _source_name("packages", sources)
    if len(packages) > MAX_PACKAGES:
        raise ConfigError(
            f"{len(packages)} packages from {where}: at most {MAX_PACKAGES}",
            hint="put related manifests in one package directory, or use --template",
        )
    seen: dict[str, str] = {}
    for path in packages:
        name = package_name(path)
        if not LABEL_PATTERN.match(name):
            raise ConfigError(
                f"the package directory {path} (from {where}) is named {name!r}, which is not "
                "a DNS label, so it cannot name its app and Application",
                hint="rename the directory: 1-63 lowercase letters, digits and dashes, "
                "starting and ending with a letter or digit",
            )
        if name in seen and seen[name] != path:
            raise ConfigError(
                f"the packages {seen[name]} and {path} (from {where}) would both become "
                f"apps/{name}/",
                hint="rename one of the directories: a package's app is named after it",
            )
        seen[name] = path


def _source_name(key: str, sources: Mapping[str, str]) -> str:
    """Where a content setting came from, in the user's words (--package, env ..., a file)."""
    source = sources.get(key, "default")
    if source == "flag":
        return "--package" if key == "packages" else f"--{key}"
    return source


def check_content(settings: Settings) -> None:
    """`platform up`: the template directory and each package exist and are directories."""
    candidates: list[tuple[str, str]] = []
    if settings.template and not is_git_url(settings.template):
        candidates.append(("template", settings.template))
    candidates.extend(("packages", path) for path in settings.packages)
    for key, path in candidates:
        what = "template" if key == "template" else "package"
        where = _source_name(key, settings.sources)
        target = Path(path)
        if not target.exists():
            saved = settings.sources.get(key) == "saved with the platform"
            env = FIELDS_BY_KEY[key].env
            raise ConfigError(
                f"the {what} directory {path} ({where if saved else 'from ' + where}) "
                "does not exist",
                hint=f"give --{what} again with existing directories (it replaces the saved "
                f"setting), or set {env}= (empty) to drop it"
                if saved
                else f"give the path of an existing directory to --{what}",
            )
        if not target.is_dir():
            raise ConfigError(
                f"the {what} {path} (from {where}) is a file, not a directory",
                hint=f"give --{what} the directory that holds the manifests",
            )


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple | set):
        return "a list"
    return repr(value)


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{str(key).replace('-', '_')}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def read_config_file(path: Path) -> dict[str, Any]:
    """Flattened settings from a platform.yaml; a clear error names the file and line."""
    try:
        text = path.read_text()
    except FileNotFoundError as error:
        raise ConfigError(
            f"the config file {path} does not exist",
            hint="create it, or drop --config to use the defaults",
        ) from error
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(
            f"the config file {where} is not valid YAML: {problem}",
            hint="fix the YAML (see `platform config --help` for the keys)",
        ) from error
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"the config file {path} must hold a mapping of settings, not {type(data).__name__}",
            hint="write settings as `key: value` lines",
        )
    sections = {key.split(".")[0] for key in FIELDS_BY_KEY if "." in key}
    for raw_key, value in data.items():
        key = str(raw_key).replace("-", "_")
        if key in sections and not isinstance(value, Mapping):
            keys = ", ".join(k.split(".", 1)[1] for k in FIELDS_BY_KEY if k.startswith(key + "."))
            raise ConfigError(
                f"the config file {path} gives {key} {_describe(value)}, but {key} is a "
                f"section of settings ({keys})",
                hint=f"write `{key}:` followed by indented `setting: value` lines",
            )
        if key in FIELDS_BY_KEY and isinstance(value, Mapping):
            raise ConfigError(
                f"the config file {path} gives {key} a mapping, but {key} is one value",
                hint=f"write `{key}: value` ({KIND_NAMES.get(FIELDS_BY_KEY[key].kind, 'a value')})",
            )
    flat = _flatten(data)
    unknown = sorted(set(flat) - set(FIELDS_BY_KEY))
    if unknown:
        raise ConfigError(
            f"the config file {path} has unknown setting(s): {', '.join(unknown)}",
            hint="run `platform config` to see every valid key",
        )
    return flat


def load_settings(
    flags: Mapping[str, Any] | None = None,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    saved: Mapping[str, Any] | None = None,
) -> Settings:
    """Layer the sources and build the settings tree.

    `flags` holds only options the user gave (None values are ignored). Without an
    explicit `config_file`, ./platform.yaml is read when it exists. `saved` holds the
    settings a platform was created with (state.json), so `platform down --name ws1`
    knows its engine without repeating every flag; it sits just above the defaults.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {f.key: f.default for f in FIELDS}
    sources: dict[str, str] = dict.fromkeys(values, "default")
    for key, raw in (saved or {}).items():
        if key in FIELDS_BY_KEY and key != "name":
            values[key] = _coerce(FIELDS_BY_KEY[key], raw, "state.json")
            sources[key] = "saved with the platform"

    if config_file is None and Path("platform.yaml").is_file():
        config_file = Path("platform.yaml")
    if config_file is not None:
        for key, raw in read_config_file(config_file).items():
            value = _coerce(FIELDS_BY_KEY[key], raw, str(config_file))
            values[key] = _absolute(key, value, config_file.resolve().parent)
            sources[key] = str(config_file)

    for spec in FIELDS:
        if spec.env in env:
            value = _coerce(spec, env[spec.env], f"${spec.env}")
            values[spec.key] = _absolute(spec.key, value, Path.cwd())
            sources[spec.key] = f"env {spec.env}"

    for key, raw in (flags or {}).items():
        if raw is None:
            continue
        spec = FIELDS_BY_KEY[key]
        value = _coerce(spec, raw, f"--{key.replace('_', '-').replace('.', '-')}")
        values[key] = _absolute(key, value, Path.cwd())
        sources[key] = "flag"

    home = platform_home(env)
    check_home(home)
    return _build(values, sources, home)


def _build(values: dict[str, Any], sources: dict[str, str], home: Path) -> Settings:
    name = values["name"]
    if not NAME_PATTERN.match(name):
        raise ConfigError(
            f"the platform name {name!r} is not valid",
            hint="use 1-32 lowercase letters, digits and dashes, starting and ending alphanumeric",
        )
    if (
        values["vault.key_threshold"] > values["vault.key_shares"]
        or values["vault.key_threshold"] < 1
    ):
        raise ConfigError(
            f"vault.key_threshold ({values['vault.key_threshold']}) must be between 1 and "
            f"vault.key_shares ({values['vault.key_shares']})",
            hint="lower vault.key_threshold or raise vault.key_shares",
        )
    for port_key in ("k3d.api_port", "k3d.http_port", "k3d.https_port"):
        if not 0 < values[port_key] < 65536:
            raise ConfigError(
                f"{port_key} is {values[port_key]}, not a TCP port",
                hint="choose a port between 1 and 65535",
            )

    _check_content(values, sources)

    def sub(prefix: str) -> dict[str, Any]:
        return {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(prefix + ".")}

    return Settings(
        name=name,
        domain=values["domain"],
        engine=values["engine"],
        kubeconfig=values["kubeconfig"],
        context=values["context"],
        merge_kubeconfig=values["merge_kubeconfig"],
        k3d=K3dSettings(**sub("k3d")),
        git=GitSettings(**sub("git")),
        vault=VaultSettings(**sub("vault")),
        terraform=TerraformSettings(**sub("terraform")),
        image=ImageSettings(**sub("image")),
        timeout=values["timeout"],
        stage_timeout=values["stage_timeout"],
        home=home,
        template=values["template"],
        packages=tuple(values["packages"]),
        sources=sources,
    )


def persistable(settings: Settings) -> dict[str, Any]:
    """Settings worth remembering with the platform: the ones not left at their default.
    (So a later `platform up` re-applies the same template setting and packages.)"""
    return {
        f.key: list(value) if isinstance(value := settings.value(f.key), tuple) else value
        for f in FIELDS
        if f.key not in RUN_ONLY and settings.sources.get(f.key, "default") != "default"
    }


def describe(settings: Settings) -> list[tuple[str, str, str]]:
    """(key, value, source) rows for `platform config`."""
    return [
        (f.key, repr(settings.value(f.key)), settings.sources.get(f.key, "default")) for f in FIELDS
    ]
