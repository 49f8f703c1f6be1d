"""One typed settings object, read once at start-up from flags, environment and config.

Precedence, highest first: command-line flags, environment variables, the home's
`config.toml`, built-in defaults. Only the composition root calls `Settings.load`;
every other module receives the values it needs as arguments and never reads the
environment itself.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from commons.model.errors import CommonsError
from commons.storage.home import unusable_home

CONFIG_FILE = "config.toml"
DEFAULT_EMBEDDER = "minilm"

# Environment variables the root reads (and nothing else does).
ENV_HOME = "COMMONS_HOME"
ENV_EMBEDDER = "COMMONS_EMBEDDER"
ENV_LLM_KEY = "COMMONS_LLM_API_KEY"
ENV_LLM_URL = "COMMONS_LLM_URL"
ENV_LLM_MODEL = "COMMONS_LLM_MODEL"
ENV_INDEX_URL = "COMMONS_INDEX_URL"
ENV_CACHE = "COMMONS_CACHE"


@dataclass(frozen=True)
class LlmSettings:
    """Where a generated answer comes from by default, if anywhere (else: extractive)."""

    url: str | None = None
    model: str | None = None
    key: str | None = None
    gguf: str | None = None

    def choose(
        self, llm: str | None, model: str | None, gguf: str | None
    ) -> tuple[str | None, str | None, str | None]:
        """The (url, model, gguf) an `ask` uses: its own options if it gave any, else
        these defaults (a model only with a url; a url before a GGUF file)."""
        if llm or gguf:
            return llm, model or (self.model if llm else None), gguf
        if model:
            return None, model, None  # an error the user can read: --model needs --llm
        if self.url:
            return self.url, self.model, None
        return None, None, self.gguf


@dataclass(frozen=True)
class Settings:
    home: Path
    # Derived files (the exported embedding model); Settings.load reads it from the environment.
    cache: Path = field(default_factory=lambda: Path.home() / ".cache" / "commons")
    embedder: str = DEFAULT_EMBEDDER
    llm: LlmSettings = field(default_factory=LlmSettings)
    listen: str | None = None
    peers: tuple[str, ...] = ()
    index_url: str | None = None
    # Your display name when a home is made (a first run, `init`), your default
    # licence for what you add (None: you state one each time, or it is "not
    # stated"), the mirror's policy file, and where the app's node listens.
    name: str | None = None
    licence: str | None = None
    policy: str | None = None
    app_listen: str | None = None

    @classmethod
    def load(
        cls,
        flags: Mapping[str, Any],
        environ: Mapping[str, str],
        *,
        user_home: Path | None = None,
    ) -> Settings:
        """Settings from `flags` (None or missing means "not given"), `environ` and the
        home's config file, if there is one."""
        home = default_home(flags.get("home"), environ, user_home=user_home)
        config = read_config(home / CONFIG_FILE)
        llm_config = config.get("llm", {})
        if not isinstance(llm_config, dict):
            raise CommonsError(f"{home / CONFIG_FILE}: [llm] must be a table")

        def pick(flag: str, env: str | None, *conf: Any) -> Any:
            value = flags.get(flag)
            if value not in (None, "", [], ()):
                return value
            if env and environ.get(env):
                return environ[env]
            for c in conf:
                if c not in (None, ""):
                    return c
            return None

        app_config = config.get("app", {})
        if not isinstance(app_config, dict):
            raise CommonsError(f"{home / CONFIG_FILE}: [app] must be a table")
        peers = flags.get("peers") or config.get("peers") or ()
        return cls(
            home=home,
            cache=default_cache(environ, user_home=user_home),
            embedder=pick("embedder", ENV_EMBEDDER, config.get("embedder")) or DEFAULT_EMBEDDER,
            # An ask's own --llm/--model/--gguf are merged at the ask (`LlmSettings.choose`).
            llm=LlmSettings(
                url=pick("", ENV_LLM_URL, llm_config.get("url")),
                model=pick("", ENV_LLM_MODEL, llm_config.get("model")),
                key=pick("", ENV_LLM_KEY, llm_config.get("key")),
                gguf=pick("", None, llm_config.get("gguf")),
            ),
            listen=pick("listen", None, config.get("listen")),
            peers=tuple(str(p) for p in peers),
            index_url=pick("index_url", ENV_INDEX_URL, config.get("index_url")),
            name=_text_or_none(config.get("name")),  # `--name` of serve names the node
            licence=pick("licence", None, config.get("licence")),
            policy=pick("policy", None, config.get("policy")),
            app_listen=pick("app_listen", None, app_config.get("listen")),
        )


def default_home(
    given: str | Path | None, environ: Mapping[str, str], *, user_home: Path | None = None
) -> Path:
    """--home, else $COMMONS_HOME, else $XDG_DATA_HOME/commons (~/.local/share/commons)."""
    if given:
        return Path(given).expanduser()
    if environ.get(ENV_HOME):
        return Path(environ[ENV_HOME]).expanduser()
    base = user_home if user_home is not None else Path(environ.get("HOME") or Path.home())
    data = environ.get("XDG_DATA_HOME") or base / ".local" / "share"
    return Path(data) / "commons"


def default_cache(environ: Mapping[str, str], *, user_home: Path | None = None) -> Path:
    """$COMMONS_CACHE, else $XDG_CACHE_HOME/commons (~/.cache/commons)."""
    if environ.get(ENV_CACHE):
        return Path(environ[ENV_CACHE]).expanduser()
    base = user_home if user_home is not None else Path(environ.get("HOME") or Path.home())
    return Path(environ.get("XDG_CACHE_HOME") or base / ".cache") / "commons"


def read_config(path: Path) -> dict[str, Any]:
    """The home's config file as a table, or an empty one if there is none."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (FileNotFoundError, NotADirectoryError):
        return {}  # no file, or no home yet: the home's own checks say what is wrong
    except PermissionError as exc:  # a home of another user, or one made unreadable
        raise unusable_home(path.parent, exc) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CommonsError(f"cannot read {path}: {exc}; fix or remove the file") from exc


def _text_or_none(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
