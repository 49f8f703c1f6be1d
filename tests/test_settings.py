"""Settings are read once: flags over environment over the home's config.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from commons.model.errors import CommonsError
from commons.settings import LlmSettings, Settings, default_home


def write_config(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text, encoding="utf-8")


def test_the_home_comes_from_the_flag_then_the_environment_then_xdg(tmp_path: Path) -> None:
    env = {"COMMONS_HOME": str(tmp_path / "env"), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    assert default_home(str(tmp_path / "flag"), env) == tmp_path / "flag"
    assert default_home(None, env) == tmp_path / "env"
    assert default_home(None, {"XDG_DATA_HOME": str(tmp_path / "xdg")}) == tmp_path / "xdg/commons"
    assert default_home(None, {}, user_home=tmp_path) == tmp_path / ".local/share/commons"


def test_flags_win_over_environment_which_wins_over_the_config(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_config(home, 'embedder = "minilm"\nindex_url = "http://conf:8000"\n'
                       '[llm]\nurl = "http://conf-llm"\nmodel = "conf-model"\nkey = "conf-key"\n')
    from_config = Settings.load({"home": str(home)}, {})
    assert from_config.embedder == "minilm" and from_config.index_url == "http://conf:8000"
    assert from_config.llm == LlmSettings("http://conf-llm", "conf-model", "conf-key", None)

    env = {"COMMONS_EMBEDDER": "fake", "COMMONS_LLM_API_KEY": "env-key",
           "COMMONS_INDEX_URL": "http://env:8000"}
    from_env = Settings.load({"home": str(home)}, env)
    assert from_env.embedder == "fake" and from_env.llm.key == "env-key"
    assert from_env.index_url == "http://env:8000"

    from_flags = Settings.load({"home": str(home), "index_url": "http://flag:8000"}, env)
    assert from_flags.index_url == "http://flag:8000"


def test_an_ask_uses_its_own_options_before_the_defaults() -> None:
    defaults = LlmSettings(url="http://llm", model="small", key="k", gguf="/m.gguf")
    assert defaults.choose(None, None, None) == ("http://llm", "small", None)
    assert defaults.choose("http://other", None, None) == ("http://other", "small", None)
    assert defaults.choose(None, None, "/x.gguf") == (None, None, "/x.gguf")
    assert defaults.choose(None, "big", None) == (None, "big", None)
    assert LlmSettings(model="small").choose(None, None, None) == (None, None, None)
    assert LlmSettings(gguf="/m.gguf").choose(None, None, None) == (None, None, "/m.gguf")


def test_a_broken_config_file_is_named_with_a_way_out(tmp_path: Path) -> None:
    write_config(tmp_path / "home", "embedder = \n")
    with pytest.raises(CommonsError, match=r"config\.toml.*fix or remove the file"):
        Settings.load({"home": str(tmp_path / "home")}, {})
    write_config(tmp_path / "other", "llm = 3\n")
    with pytest.raises(CommonsError, match=r"\[llm\] must be a table"):
        Settings.load({"home": str(tmp_path / "other")}, {})


def test_a_home_that_is_a_file_is_left_to_the_home_checks(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("not a home")
    assert Settings.load({"home": str(path)}, {}).home == path
