from __future__ import annotations

import pytest

from cache_extension.goparse import parse_bool, parse_duration
from cache_extension.settings import Settings, SettingsError, load_settings

# -- Go durations ---------------------------------------------------------------

GOOD_DURATIONS = [
    ("0", 0.0),
    ("+0", 0.0),
    ("-0", 0.0),
    ("0s", 0.0),
    ("30s", 30.0),
    ("3m", 180.0),
    ("5m", 300.0),
    ("1h30m", 5400.0),
    ("1.5h", 5400.0),
    ("300ms", 0.3),
    ("2h45m30.5s", 9930.5),
    ("1ns", 1e-9),
    ("1us", 1e-6),
    ("1\u00b5s", 1e-6),  # micro sign
    ("1\u03bcs", 1e-6),  # Greek mu
    (".5s", 0.5),
    ("5.s", 5.0),
    ("-1s", -1.0),
    ("+2m", 120.0),
    ("1h1m1s", 3661.0),
    ("1m1m", 120.0),
    ("0.000000001s", 1e-9),
    ("0.0000000019s", 1e-9),  # below 1 ns is truncated, as in Go
    ("2562047h47m16.854775807s", ((1 << 63) - 1) / 1e9),  # the largest time.Duration
    ("-2562047h47m16.854775808s", -(1 << 63) / 1e9),
]


@pytest.mark.parametrize("text,seconds", GOOD_DURATIONS)
def test_parse_duration_good(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12, abs=1e-12)


BAD_DURATIONS = [
    ("", 'time: invalid duration ""'),
    ("30", 'time: missing unit in duration "30"'),
    ("00", 'time: missing unit in duration "00"'),
    ("1.5.5s", 'time: missing unit in duration "1.5.5s"'),
    ("5d", 'time: unknown unit "d" in duration "5d"'),
    ("1h 30m", 'time: unknown unit "h " in duration "1h 30m"'),
    ("1s ", 'time: unknown unit "s " in duration "1s "'),
    ("1e3s", 'time: unknown unit "e" in duration "1e3s"'),
    ("5S", 'time: unknown unit "S" in duration "5S"'),
    (".", 'time: invalid duration "."'),
    (".s", 'time: invalid duration ".s"'),
    ("-", 'time: invalid duration "-"'),
    ("+", 'time: invalid duration "+"'),
    ("x", 'time: invalid duration "x"'),
    ("s", 'time: invalid duration "s"'),
    (" 1s", 'time: invalid duration " 1s"'),
    ("--1s", 'time: invalid duration "--1s"'),
    ("2562047h47m16.854775808s", 'time: invalid duration "2562047h47m16.854775808s"'),
    ("99999999999999999999999h", 'time: invalid duration "99999999999999999999999h"'),
    ("\u0663s", 'time: invalid duration "\\xd9\\xa3s"'),  # non-ASCII digits are not digits
    ("1\u00e9", 'time: unknown unit "\\xc3\\xa9" in duration "1\\xc3\\xa9"'),
]


@pytest.mark.parametrize("text,message", BAD_DURATIONS)
def test_parse_duration_bad(text, message):
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value) == message


# -- Go ParseBool ---------------------------------------------------------------


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_parse_bool_true(text):
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_parse_bool_false(text):
    assert parse_bool(text) is False


@pytest.mark.parametrize("text", ["yes", "no", " true", "true ", "", "tRUE", "TRue", "2", "on", "y", "falsE"])
def test_parse_bool_bad(text):
    with pytest.raises(ValueError) as info:
        parse_bool(text)
    # The spellings accepted, not Go's "strconv.ParseBool: parsing ...: invalid syntax".
    assert str(info.value) == ("must be true or false "
                               "(accepted: 1, t, T, TRUE, true, True and 0, f, F, FALSE, false, False)")


# -- settings ---------------------------------------------------------------------

TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE-secret-token"
BASE = {"AWS_SESSION_TOKEN": TOKEN}


def settings(**env: str) -> Settings:
    return load_settings({**BASE, **env})


def test_defaults():
    s = load_settings(BASE)
    assert s == Settings(
        config_path="/var/task/config.yaml",
        init_startup=True,
        ttl=300.0,
        port=4000,
        log_level="INFO",
        token=TOKEN,
        region=None,
        metrics="off",
        metrics_namespace="LambdaCacheExtension",
        metrics_dimensions={"FunctionName": "unknown"},
        log_json=False,
        max_stale=300.0,
    )


def test_metrics_settings():
    s = load_settings({**BASE, "CACHE_EXTENSION_METRICS": "EMF", "CACHE_EXTENSION_METRICS_NAMESPACE": "Team/Cache",
                       "CACHE_EXTENSION_METRICS_DIMENSIONS": "FunctionName, Region",
                       "AWS_LAMBDA_FUNCTION_NAME": "fn", "AWS_REGION": "eu-west-1", "AWS_LAMBDA_LOG_FORMAT": "JSON"})
    assert (s.metrics, s.metrics_namespace, s.log_json) == ("emf", "Team/Cache", True)
    assert s.metrics_dimensions == {"FunctionName": "fn", "Region": "eu-west-1"}
    for name, value in [("CACHE_EXTENSION_METRICS", "statsd"), ("CACHE_EXTENSION_METRICS_DIMENSIONS", "Table"),
                        ("CACHE_EXTENSION_METRICS_DIMENSIONS", "Region,Region"), ("CACHE_EXTENSION_METRICS_NAMESPACE", ":x")]:
        with pytest.raises(SettingsError) as error:
            load_settings({**BASE, name: value})
        assert str(error.value).startswith(f"{name}=")


def test_token_not_in_repr():
    assert TOKEN not in repr(load_settings(BASE))


def test_empty_strings_count_as_unset():
    s = settings(
        CACHE_EXTENSION_CONFIG="", LAMBDA_TASK_ROOT="", CACHE_EXTENSION_INIT_STARTUP="", CACHE_EXTENSION_TTL="",
        CACHE_EXTENSION_PORT="", CACHE_EXTENSION_LOG_LEVEL="", CACHE_EXTENSION_TOKEN="", AWS_REGION="",
        AWS_DEFAULT_REGION="",
    )
    assert s == load_settings(BASE)


def test_config_path():
    assert settings(LAMBDA_TASK_ROOT="/opt/app").config_path == "/opt/app/config.yaml"
    assert settings(LAMBDA_TASK_ROOT="/opt/app/").config_path == "/opt/app/config.yaml"
    assert settings(LAMBDA_TASK_ROOT="/opt/app", CACHE_EXTENSION_CONFIG="/tmp/c.yml").config_path == "/tmp/c.yml"


def test_values():
    s = settings(
        CACHE_EXTENSION_INIT_STARTUP="false", CACHE_EXTENSION_TTL="1h30m", CACHE_EXTENSION_PORT="2773",
        CACHE_EXTENSION_LOG_LEVEL="Warn", CACHE_EXTENSION_MAX_STALE="90s",
    )
    assert (s.init_startup, s.ttl, s.port, s.log_level, s.max_stale) == (False, 5400.0, 2773, "WARNING", 90.0)
    assert settings(CACHE_EXTENSION_MAX_STALE="0s").max_stale == 0.0  # no stale serving at all


@pytest.mark.parametrize("given,expected", [
    ("debug", "DEBUG"), ("INFO", "INFO"), ("warn", "WARNING"), ("WARNING", "WARNING"), ("Error", "ERROR"),
])
def test_log_levels(given, expected):
    assert settings(CACHE_EXTENSION_LOG_LEVEL=given).log_level == expected


@pytest.mark.parametrize("port", ["1", "80", "65535", "04000"])
def test_good_ports(port):
    assert settings(CACHE_EXTENSION_PORT=port).port == int(port)


def test_token_precedence():
    assert settings(CACHE_EXTENSION_TOKEN="mine").token == "mine"
    assert load_settings({"CACHE_EXTENSION_TOKEN": "mine"}).token == "mine"
    # SnapStart: no session token, the container credentials endpoint's token instead
    assert load_settings({"AWS_CONTAINER_AUTHORIZATION_TOKEN": "container"}).token == "container"
    assert load_settings({"AWS_SESSION_TOKEN": "session", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "c"}).token == "session"
    assert load_settings({"CACHE_EXTENSION_TOKEN": "mine", "AWS_SESSION_TOKEN": "s",
                          "AWS_CONTAINER_AUTHORIZATION_TOKEN": "c"}).token == "mine"
    assert load_settings({"AWS_SESSION_TOKEN": "", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "c"}).token == "c"


def test_snapshot_secrets_setting():
    assert settings().snapshot_secrets is True
    assert settings(CACHE_EXTENSION_SNAPSHOT_SECRETS="false").snapshot_secrets is False
    with pytest.raises(SettingsError, match="CACHE_EXTENSION_SNAPSHOT_SECRETS"):
        settings(CACHE_EXTENSION_SNAPSHOT_SECRETS="no")


def test_region_precedence():
    assert settings(AWS_DEFAULT_REGION="eu-west-1").region == "eu-west-1"
    assert settings(AWS_REGION="us-east-2", AWS_DEFAULT_REGION="eu-west-1").region == "us-east-2"


INVALID = [
    ("CACHE_EXTENSION_INIT_STARTUP", "yes",
     'CACHE_EXTENSION_INIT_STARTUP="yes": must be true or false (accepted: 1, t, T, TRUE, true, True and 0, f, F, '
     'FALSE, false, False)'),
    ("CACHE_EXTENSION_SNAPSHOT_SECRETS", "on", 'CACHE_EXTENSION_SNAPSHOT_SECRETS="on": must be true or false (accepted'),
    ("CACHE_EXTENSION_TTL", "5x", 'CACHE_EXTENSION_TTL="5x": time: unknown unit "x" in duration "5x"; use a Go duration '
                                  'such as 30s, 5m or 1h30m (units: ns, us, ms, s, m, h)'),
    ("CACHE_EXTENSION_TTL", "30", 'CACHE_EXTENSION_TTL="30": time: missing unit in duration "30"; use a Go duration'),
    ("CACHE_EXTENSION_TTL", "0", 'CACHE_EXTENSION_TTL="0": must be greater than zero'),
    ("CACHE_EXTENSION_TTL", "-1s", 'CACHE_EXTENSION_TTL="-1s": must be greater than zero'),
    ("CACHE_EXTENSION_MAX_STALE", "-5m", 'CACHE_EXTENSION_MAX_STALE="-5m": must be zero or more'),
    ("CACHE_EXTENSION_MAX_STALE", "forever",
     'CACHE_EXTENSION_MAX_STALE="forever": time: invalid duration "forever"; use a Go duration such as 30s'),
    ("CACHE_EXTENSION_PORT", "0", 'CACHE_EXTENSION_PORT="0": must be a port number from 1 to 65535'),
    ("CACHE_EXTENSION_PORT", "65536", 'CACHE_EXTENSION_PORT="65536": must be'),
    ("CACHE_EXTENSION_PORT", "-1", 'CACHE_EXTENSION_PORT="-1": must be'),
    ("CACHE_EXTENSION_PORT", " 80", 'CACHE_EXTENSION_PORT=" 80": must be'),
    ("CACHE_EXTENSION_PORT", "+80", 'CACHE_EXTENSION_PORT="+80": must be'),
    ("CACHE_EXTENSION_PORT", "8_0", 'CACHE_EXTENSION_PORT="8_0": must be'),
    ("CACHE_EXTENSION_PORT", "\u0668\u0660", 'CACHE_EXTENSION_PORT="\u0668\u0660": must be'),
    ("CACHE_EXTENSION_PORT", "9" * 5000, "CACHE_EXTENSION_PORT="),
    ("CACHE_EXTENSION_PORT", "http", 'CACHE_EXTENSION_PORT="http": must be'),
    ("CACHE_EXTENSION_LOG_LEVEL", "verbose",
     'CACHE_EXTENSION_LOG_LEVEL="verbose": must be one of debug, info, warn, error'),
    ("CACHE_EXTENSION_LOG_LEVEL", "critical", 'CACHE_EXTENSION_LOG_LEVEL="critical": must be'),
]


@pytest.mark.parametrize("name,value,message", INVALID)
def test_invalid_values_name_the_variable(name, value, message):
    with pytest.raises(SettingsError) as info:
        settings(**{name: value})
    assert str(info.value).startswith(message)
    assert TOKEN not in str(info.value)


def test_no_token_is_an_error_naming_every_variable():
    with pytest.raises(SettingsError) as info:
        load_settings({"AWS_REGION": "us-east-1"})
    for name in ("CACHE_EXTENSION_TOKEN", "AWS_SESSION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN"):
        assert name in str(info.value)


def test_token_never_in_error_messages():
    custom = "custom-token-value-0123456789"
    for name, value, _ in INVALID:
        for env in ({**BASE, name: value}, {"CACHE_EXTENSION_TOKEN": custom, name: value}):
            with pytest.raises(SettingsError) as info:
                load_settings(env)
            assert TOKEN not in str(info.value) and custom not in str(info.value)
            assert TOKEN not in repr(info.value) and custom not in repr(info.value)


def test_load_settings_does_not_read_os_environ(monkeypatch):
    monkeypatch.setenv("AWS_SESSION_TOKEN", "from-os-environ")
    monkeypatch.setenv("CACHE_EXTENSION_TTL", "bogus")
    with pytest.raises(SettingsError, match="AWS_SESSION_TOKEN"):
        load_settings({})
