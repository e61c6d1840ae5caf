"""Settings: defaults, config.toml, CALSVC_<SECTION>_<KEY> overrides with their
fixed names, bad values, production without a secret, secrets hidden, the generated
development secret."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from calsvc.config import ConfigError, Secret, Settings, ensure_secret, env_name, load_settings

SECRET = "s" * 40


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


@pytest.fixture
def empty_dir(tmp_path, monkeypatch) -> Path:
    """A working directory without a config.toml, so nothing but the defaults applies."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- defaults -------------------------------------------------------------------------------

def test_defaults_without_file_or_environment(empty_dir):
    s = load_settings(None, environ={})
    assert s.database.url == ""
    assert s.redis.url == ""
    assert s.auth.secret == ""
    assert s.auth.bcrypt_rounds == 12
    assert s.auth.algorithm == "HS256"
    assert s.auth.access_token_minutes == 15
    assert s.server.env == "development"
    assert s.production is False
    assert s.rate_limit.auth_per_minute == 20
    assert s.rate_limit.user_per_minute == 600
    assert s.cors.allow_origins == ()
    assert s.database.auto_migrate is True
    assert s.server.max_body_bytes == 1024 * 1024
    assert s.server.max_bulk_body_bytes == 8 * 1024 * 1024
    assert (s.server.header_timeout, s.server.body_timeout) == (10.0, 30.0)
    assert s == Settings()


def test_config_toml_in_working_directory_is_read_by_default(empty_dir):
    write(empty_dir, "[server]\nport = 9999\n")
    assert load_settings(None, environ={}).server.port == 9999


def test_calsvc_config_names_the_file(tmp_path, empty_dir):
    other = tmp_path / "elsewhere.toml"
    other.write_text("[server]\nport = 7777\n")
    assert load_settings(None, environ={"CALSVC_CONFIG": str(other)}).server.port == 7777


# -- the TOML file --------------------------------------------------------------------------

def test_toml_values_of_every_section(tmp_path):
    path = write(tmp_path, f"""
[server]
host = "0.0.0.0"
port = 9000
workers = 3
env = "production"

[database]
url = "postgresql://app:pw@db/calsvc"
auto_migrate = false
pool_max_size = 20

[redis]
url = "redis://cache:6379/0"

[auth]
secret = "{SECRET}"
bcrypt_rounds = 10
access_token_minutes = 5

[rate_limit]
auth_per_minute = 7
user_per_minute = 0

[cors]
allow_origins = ["https://a.example", "https://b.example"]
""")
    s = load_settings(path, environ={})
    assert (s.server.host, s.server.port, s.server.workers, s.server.env) == ("0.0.0.0", 9000, 3, "production")
    assert s.production is True
    assert s.database.url == "postgresql://app:pw@db/calsvc"
    assert isinstance(s.database.url, Secret)
    assert s.database.auto_migrate is False
    assert s.database.pool_max_size == 20
    assert s.redis.url == "redis://cache:6379/0"
    assert s.auth.secret == SECRET
    assert isinstance(s.auth.secret, Secret)
    assert s.auth.bcrypt_rounds == 10
    assert s.auth.access_token_minutes == 5
    assert s.rate_limit.auth_per_minute == 7
    assert s.rate_limit.user_per_minute == 0
    assert s.cors.allow_origins == ("https://a.example", "https://b.example")


def test_keys_missing_from_the_file_keep_their_defaults(tmp_path):
    s = load_settings(write(tmp_path, "[auth]\nbcrypt_rounds = 5\n"), environ={})
    assert s.auth.bcrypt_rounds == 5
    assert s.auth.access_token_minutes == 15
    assert s.server.port == 8080
    assert s.rate_limit.auth_per_minute == 20


# -- the environment ------------------------------------------------------------------------

@pytest.mark.parametrize("section,key,name", [
    ("database", "url", "CALSVC_DATABASE_URL"),
    ("redis", "url", "CALSVC_REDIS_URL"),
    ("auth", "secret", "CALSVC_AUTH_SECRET"),
    ("auth", "bcrypt_rounds", "CALSVC_AUTH_BCRYPT_ROUNDS"),
    ("server", "env", "CALSVC_SERVER_ENV"),
    ("rate_limit", "auth_per_minute", "CALSVC_RATE_LIMIT_AUTH_PER_MINUTE"),
    ("rate_limit", "user_per_minute", "CALSVC_RATE_LIMIT_USER_PER_MINUTE"),
    ("cors", "allow_origins", "CALSVC_CORS_ALLOW_ORIGINS"),
    ("database", "auto_migrate", "CALSVC_DATABASE_AUTO_MIGRATE"),
])
def test_fixed_environment_names(section, key, name):
    assert env_name(section, key) == name


def test_fixed_environment_names_override_the_file(tmp_path):
    path = write(tmp_path, """
[database]
url = "postgresql://file/db"
[redis]
url = "redis://file"
[auth]
secret = "from-the-file-from-the-file-from-the-file"
bcrypt_rounds = 10
[server]
env = "development"
[rate_limit]
auth_per_minute = 1
user_per_minute = 2
[cors]
allow_origins = ["https://file.example"]
""")
    env = {
        "CALSVC_DATABASE_URL": "postgresql://env/db",
        "CALSVC_REDIS_URL": "redis://env:6379/1",
        "CALSVC_AUTH_SECRET": SECRET,
        "CALSVC_AUTH_BCRYPT_ROUNDS": "4",
        "CALSVC_SERVER_ENV": "production",
        "CALSVC_RATE_LIMIT_AUTH_PER_MINUTE": "33",
        "CALSVC_RATE_LIMIT_USER_PER_MINUTE": "0",
        "CALSVC_CORS_ALLOW_ORIGINS": "https://a.example, https://b.example,,",
    }
    s = load_settings(path, environ=env)
    assert s.database.url == "postgresql://env/db"
    assert s.redis.url == "redis://env:6379/1"
    assert s.auth.secret == SECRET
    assert s.auth.bcrypt_rounds == 4
    assert s.server.env == "production" and s.production
    assert s.rate_limit.auth_per_minute == 33
    assert s.rate_limit.user_per_minute == 0
    assert s.cors.allow_origins == ("https://a.example", "https://b.example")


def test_empty_redis_url_means_no_redis(tmp_path):
    path = write(tmp_path, '[redis]\nurl = "redis://file"\n')
    s = load_settings(path, environ={"CALSVC_REDIS_URL": ""})
    assert s.redis.url == ""
    assert not s.redis.url


def test_every_key_has_an_override(tmp_path):
    env = {
        "CALSVC_SERVER_PORT": "8181",
        "CALSVC_SERVER_SHUTDOWN_TIMEOUT": "1.5",
        "CALSVC_SERVER_HEADER_TIMEOUT": "0.5",
        "CALSVC_SERVER_BODY_TIMEOUT": "2",
        "CALSVC_SERVER_REDOC_SCRIPT_URL": "/static/redoc.js",
        "CALSVC_DATABASE_AUTO_MIGRATE": "false",
        "CALSVC_DATABASE_COMMAND_TIMEOUT": "3",
        "CALSVC_AUTH_ACCESS_TOKEN_MINUTES": "30",
        "CALSVC_AUTH_ALGORITHM": "HS512",
    }
    s = load_settings(write(tmp_path, ""), environ=env)
    assert s.server.port == 8181
    assert s.server.shutdown_timeout == 1.5
    assert (s.server.header_timeout, s.server.body_timeout) == (0.5, 2.0)
    assert s.server.redoc_script_url == "/static/redoc.js"
    assert s.database.auto_migrate is False
    assert s.database.command_timeout == 3.0
    assert s.auth.access_token_minutes == 30
    assert s.auth.algorithm == "HS512"


@pytest.mark.parametrize("text,expected", [
    ("true", True), ("1", True), ("YES", True), ("on", True),
    ("false", False), ("0", False), ("No", False), ("off", False),
])
def test_boolean_spellings(tmp_path, text, expected):
    s = load_settings(write(tmp_path, ""), environ={"CALSVC_DATABASE_AUTO_MIGRATE": text})
    assert s.database.auto_migrate is expected


def test_unrelated_and_test_suite_variables_are_ignored(tmp_path):
    env = {"PATH": "/bin", "CALSVCX": "1", "CALSVC_TEST_DATABASE_URL": "x", "calsvc_test_anything": "1"}
    assert load_settings(write(tmp_path, ""), environ=env) == Settings()


@pytest.mark.parametrize("name,needle", [
    ("CALSVC_SERVER_PROT", "CALSVC_SERVER_PROT (did you mean CALSVC_SERVER_PORT?)"),
    ("calsvc_server_port", "calsvc_server_port (did you mean CALSVC_SERVER_PORT?)"),
    ("CALSVC_DATABASE_URI", "did you mean CALSVC_DATABASE_URL?"),
    ("CALSVC_REQUIRE_BROWSER", "unknown variable CALSVC_REQUIRE_BROWSER: rename or unset it"),
])
def test_unknown_calsvc_variables_are_refused_with_the_closest_name(tmp_path, name, needle):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, ""), environ={name: "1", "CALSVC_SERVER_PORT": "1"})
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_a_refused_url_is_not_echoed(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, ""), environ={"CALSVC_DATABASE_URL": "mysql://root:hunter2@db/x"})
    assert "hunter2" not in str(info.value) and "not mysql://;" in str(info.value)


def test_every_unknown_variable_is_named_at_once(tmp_path):
    with pytest.raises(ConfigError, match="unknown variables CALSVC_A, CALSVC_B: rename or unset them"):
        load_settings(write(tmp_path, ""), environ={"CALSVC_B": "1", "CALSVC_A": "1"})


# -- bad values -----------------------------------------------------------------------------

@pytest.mark.parametrize("env,needle", [
    ({"CALSVC_AUTH_BCRYPT_ROUNDS": "twelve"}, "auth.bcrypt_rounds"),
    ({"CALSVC_AUTH_BCRYPT_ROUNDS": "3"}, "CALSVC_AUTH_BCRYPT_ROUNDS"),
    ({"CALSVC_AUTH_BCRYPT_ROUNDS": "32"}, "CALSVC_AUTH_BCRYPT_ROUNDS"),
    ({"CALSVC_SERVER_ENV": "staging"}, "CALSVC_SERVER_ENV"),
    ({"CALSVC_SERVER_PORT": "80.5"}, "server.port"),
    ({"CALSVC_SERVER_PORT": "70000"}, "server.port"),
    ({"CALSVC_SERVER_WORKERS": "0"}, "server.workers"),
    ({"CALSVC_RATE_LIMIT_AUTH_PER_MINUTE": "-1"}, "rate limits"),
    ({"CALSVC_RATE_LIMIT_USER_PER_MINUTE": "lots"}, "rate_limit.user_per_minute"),
    ({"CALSVC_DATABASE_AUTO_MIGRATE": "maybe"}, "database.auto_migrate"),
    ({"CALSVC_DATABASE_CONNECT_TIMEOUT": "soon"}, "database.connect_timeout"),
    ({"CALSVC_SERVER_HEADER_TIMEOUT": "0"}, "server.header_timeout"),
    ({"CALSVC_SERVER_BODY_TIMEOUT": "-1"}, "server.body_timeout"),
    ({"CALSVC_AUTH_SECRET": "too-short"}, "CALSVC_AUTH_SECRET"),
    ({"CALSVC_AUTH_ALGORITHM": "none"}, "auth.algorithm"),
    ({"CALSVC_AUTH_ALGORITHM": "RS256"}, "auth.algorithm"),
    ({"CALSVC_DATABASE_URL": "mysql://u:pw@db/x"}, "CALSVC_DATABASE_URL) must be a PostgreSQL URL"),
    ({"CALSVC_DATABASE_URL": "db.example:5432/x"}, "has no scheme"),
    ({"CALSVC_DATABASE_LISTEN_URL": "postgresql+psycopg://db/x"}, "not postgresql+psycopg://"),
    ({"CALSVC_REDIS_URL": "http://cache"}, "CALSVC_REDIS_URL) must be a Redis URL"),
])
def test_bad_environment_values_raise_config_error(tmp_path, env, needle):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, ""), environ=env)
    assert needle in str(info.value)


@pytest.mark.parametrize("text,needle", [
    ("[server]\nport = \"eighty\"\n", "server.port"),
    ("[server]\nport = true\n", "server.port"),
    ("[cors]\nallow_origins = 5\n", "cors.allow_origins"),
    ("[nonsense]\nx = 1\n", "nonsense"),
    ("[server]\nnot_a_key = 1\n", "server.not_a_key"),
    ("[server\nport = 1\n", "not valid TOML"),
])
def test_bad_file_values_raise_config_error(tmp_path, text, needle):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), environ={})
    assert needle in str(info.value)


def test_missing_named_file_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "absent.toml", environ={})


def test_production_without_a_secret_refuses_with_a_clear_message(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, ""), environ={"CALSVC_SERVER_ENV": "production"})
    message = str(info.value)
    assert "production" in message
    assert "CALSVC_AUTH_SECRET" in message


def test_production_with_an_empty_secret_variable_refuses(tmp_path):
    path = write(tmp_path, f'[auth]\nsecret = "{SECRET}"\n')
    with pytest.raises(ConfigError, match="CALSVC_AUTH_SECRET"):
        load_settings(path, environ={"CALSVC_SERVER_ENV": "production", "CALSVC_AUTH_SECRET": ""})


def test_production_with_a_secret_is_fine(tmp_path):
    s = load_settings(write(tmp_path, ""), environ={"CALSVC_SERVER_ENV": "production",
                                                     "CALSVC_AUTH_SECRET": SECRET})
    assert s.production and s.auth.secret == SECRET


def test_development_without_a_secret_is_fine(tmp_path):
    assert load_settings(write(tmp_path, ""), environ={}).auth.secret == ""


def test_replace_coerces_and_rejects_unknown_keys():
    s = Settings().replace(auth={"bcrypt_rounds": "5"}, cors={"allow_origins": "https://x.example"})
    assert s.auth.bcrypt_rounds == 5
    assert s.cors.allow_origins == ("https://x.example",)
    with pytest.raises(ConfigError, match="auth.nope"):
        Settings().replace(auth={"nope": 1})


# -- secrets stay hidden --------------------------------------------------------------------

def test_secrets_are_hidden_in_repr(tmp_path):
    db_url = "postgresql://app:db-password-123@db/calsvc"
    redis_url = "redis://:redis-password-456@cache:6379/0"
    s = load_settings(write(tmp_path, ""), environ={
        "CALSVC_DATABASE_URL": db_url, "CALSVC_REDIS_URL": redis_url, "CALSVC_AUTH_SECRET": SECRET,
    })
    for text in (repr(s), str(s), repr(s.auth), repr(s.database), repr(s.redis), f"{s}"):
        assert SECRET not in text
        assert "db-password-123" not in text
        assert "redis-password-456" not in text
    assert "**********" in repr(s.auth)
    # The values themselves are still the real ones.
    assert str(s.database.url) == db_url
    assert s.auth.secret == SECRET


def test_empty_secret_repr():
    assert repr(Secret("")) == "Secret('')"
    assert repr(Secret("x" * 40)) == "Secret('**********')"


# -- the generated development secret -------------------------------------------------------

def test_ensure_secret_generates_once_and_reuses(tmp_path):
    data_dir = tmp_path / "data" / "nested"
    s = Settings().replace(server={"data_dir": str(data_dir)})
    first = ensure_secret(s)
    secret_file = data_dir / "secret"
    assert secret_file.is_file()
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
    assert len(first.auth.secret) >= 32
    assert isinstance(first.auth.secret, Secret)
    assert secret_file.read_text().strip() == first.auth.secret
    # The original settings object is untouched (frozen).
    assert s.auth.secret == ""

    second = ensure_secret(s)
    assert second.auth.secret == first.auth.secret
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600


def test_ensure_secret_differs_per_data_folder(tmp_path):
    a = ensure_secret(Settings().replace(server={"data_dir": str(tmp_path / "a")}))
    b = ensure_secret(Settings().replace(server={"data_dir": str(tmp_path / "b")}))
    assert a.auth.secret != b.auth.secret


def test_ensure_secret_replaces_a_too_short_file(tmp_path):
    (tmp_path / "secret").write_text("short\n")
    s = ensure_secret(Settings().replace(server={"data_dir": str(tmp_path)}))
    assert len(s.auth.secret) >= 32
    assert (tmp_path / "secret").read_text().strip() == s.auth.secret


def test_ensure_secret_keeps_a_configured_secret(tmp_path):
    s = Settings().replace(server={"data_dir": str(tmp_path / "d")}, auth={"secret": SECRET})
    assert ensure_secret(s) is s
    assert not (tmp_path / "d").exists()


def test_drain_seconds_default_and_bounds(tmp_path):
    assert load_settings(write(tmp_path, ""), environ={}).server.drain_seconds == 2.0
    assert load_settings(write(tmp_path, ""), environ={"CALSVC_SERVER_DRAIN_SECONDS": "0"}).server.drain_seconds == 0
    with pytest.raises(ConfigError, match="server.drain_seconds"):
        load_settings(write(tmp_path, ""), environ={"CALSVC_SERVER_DRAIN_SECONDS": "-1"})


def test_a_data_folder_that_cannot_be_made_is_one_line_naming_the_setting(tmp_path):
    (tmp_path / "a-file").write_text("")
    settings = Settings().replace(server={"data_dir": str(tmp_path / "a-file" / "data")})
    with pytest.raises(ConfigError) as info:
        ensure_secret(settings)
    assert str(info.value).startswith("server.data_dir (CALSVC_SERVER_DATA_DIR): Not a directory:")
    assert "\n" not in str(info.value)
