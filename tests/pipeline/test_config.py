"""config.toml loading: defaults, relative paths, and messages that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_config_loads_with_at_least_12_feeds_in_four_languages() -> None:
    config = load_config(REPO / "config.toml")
    assert len(config.feeds) >= 12
    assert {f.language for f in config.feeds} >= {"en", "ru", "tg", "fa"}
    assert config.database_url == "sqlite:///" + str(REPO / "newswatch.db")
    assert config.notifiers["outbox"].type == "outbox"


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, 'rules_dir = "r"\n[fetch]\ntimeout = "2s"\n'))
    assert config.rules_dir == tmp_path / "r"
    assert config.outbox_dir == tmp_path / "outbox"
    assert config.fetch.timeout_s == 2.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('timezone = "Mars/Olympus"', "timezone: unknown time zone 'Mars/Olympus'"),
        (
            '[fetch]\ntimeout = "20x"',
            "fetch.timeout: '20x' is not a duration\nhint: write e.g. \"30s\"",
        ),
        ("[fetch]\ntimout = 3", "fetch.timout: unknown key\nhint: did you mean 'timeout'?"),
        ('[[feeds]]\nname = "a"\nurl = "file:///etc/passwd"', "feeds[0].url: file scheme in URL"),
        ('[[feeds]]\nname = "a"\nurl = "gopher://x/"', "only http and https are allowed"),
        ('[[feeds]]\nname = "a"\nurl = "https:///feed"', "feeds[0].url: no host in URL"),
        ('[[feeds]]\nname = "a"\nurl = "http://[::1/rss"', "feeds[0].url: not a valid URL"),
        ('[[feeds]]\nname = "a"\nurl = "http://x:99999/"', "feeds[0].url: not a valid URL"),
        (
            '[[feeds]]\nname = "a b"\nurl = "http://x/"',
            "feeds[0].name: 'a b' is not a valid feed name\nhint: use letters, digits, '.', '-'",
        ),
        (
            '[[feeds]]\nname = "a"\nurl = "http://x/a"\n[[feeds]]\nname = "a"\nurl = "http://x/b"',
            "two feeds are named 'a'",
        ),
        (
            '[notifiers.x]\ntype = "emial"',
            "notifiers.x.type: 'emial' is not one of email, webhook, outbox\n"
            "hint: did you mean 'email'?",
        ),
        ('[notifiers.x]\ntype = "webhook"', "notifiers.x.url: a webhook notifier needs a url"),
    ],
)
def test_errors_name_the_key_and_what_to_write(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    assert message in str(info.value)
    assert str(info.value).startswith(str(tmp_path / "config.toml"))


def test_secrets_come_from_the_environment_and_are_not_in_repr(tmp_path: Path) -> None:
    path = _write(tmp_path, '[notifiers.m]\ntype = "email"\nsmtp_host = "h"\npassword_env = "PW"\n')
    config = load_config(path, environ={"PW": "s3cret"})
    assert config.notifiers["m"].password == "s3cret"
    assert "s3cret" not in repr(config)


def test_missing_file_says_how_to_choose_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config PATH"):
        load_config(tmp_path / "nope.toml")


def test_config_option_works_before_and_after_the_verb(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    path = _write(tmp_path, '[[feeds]]\nname = "only-one"\nurl = "http://127.0.0.1:9/x"\n')
    for argv in (
        ["--config", str(path), "feeds", "list"],
        ["feeds", "--config", str(path), "list"],
        ["feeds", "list", "--config", str(path)],
    ):
        assert main(argv) == 0
        assert "only-one" in capsys.readouterr().out
