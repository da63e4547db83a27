"""Settings from HELIOS_* environment variables."""

import pytest

from ingest_services.settings import SettingsError, load_settings


def test_reads_env(monkeypatch):
    monkeypatch.setenv("HELIOS_PARTITIONS", "12")
    monkeypatch.setenv("HELIOS_GATEWAY_PORT", "18080")
    monkeypatch.setenv("HELIOS_AUCTION_STRATEGY", "threshold")
    monkeypatch.setenv("HELIOS_TOPIC_REQUESTS", "req")
    monkeypatch.setenv("HELIOS_THRESHOLD_WIN_PROBABILITY", "0.75")
    s = load_settings()
    assert s.partitions == 12
    assert s.gateway_port == 18080
    assert s.auction_strategy == "threshold"
    assert s.topic_requests == "req"
    assert s.threshold_win_probability == 0.75


def test_defaults(monkeypatch):
    for var in ("HELIOS_PARTITIONS", "HELIOS_AUCTION_STRATEGY", "HELIOS_TOPIC_REQUESTS"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings()
    assert s.partitions == 6
    assert s.auction_strategy == "market"


def test_overrides_beat_env(monkeypatch):
    monkeypatch.setenv("HELIOS_PARTITIONS", "12")
    assert load_settings(partitions=3).partitions == 3


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("HELIOS_PARTITIONS", "abc"),
        ("HELIOS_PARTITIONS", "0"),
        ("HELIOS_GATEWAY_PORT", "70000"),
        ("HELIOS_GATEWAY_PORT", "0"),
        ("HELIOS_AUCTION_STRATEGY", "nope"),
        ("HELIOS_THRESHOLD_WIN_PROBABILITY", "1.5"),
        ("HELIOS_LOG_LEVEL", "LOUD"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert var in str(info.value)
    assert value in str(info.value)
    assert isinstance(info.value, ValueError)


def test_bad_override_names_variable():
    with pytest.raises(SettingsError, match="HELIOS_MARKET_COMPETITORS"):
        load_settings(market_competitors=51)


def test_dlq_and_all_topics(monkeypatch):
    monkeypatch.setenv("HELIOS_TOPIC_OUTCOMES", "outs")
    s = load_settings()
    assert s.dlq("bid_requests") == "bid_requests.dlq"
    assert s.all_topics == [
        "bid_requests", "bid_responses", "outs",
        "bid_requests.dlq", "bid_responses.dlq", "outs.dlq",
    ]


def test_settings_frozen():
    s = load_settings()
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError
        s.partitions = 9


def test_log_level_in_any_case(monkeypatch):
    monkeypatch.setenv("HELIOS_LOG_LEVEL", "info")
    assert load_settings().log_level == "INFO"


def test_a_bad_flag_value_is_named_as_the_flag():
    with pytest.raises(SettingsError) as info:
        load_settings(gateway_port=70000)  # what `helios up --gateway-port 70000` passes
    assert str(info.value).startswith("--gateway-port 70000 (instead of HELIOS_GATEWAY_PORT)")
