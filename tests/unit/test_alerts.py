"""Issue 16, alerts: which events a run's ending raises (pure), the bodies, and `alerts:` parsed."""

import pytest

from kommo_sync.alerts import Ending, body, events
from kommo_sync.config import parse_config
from kommo_sync.errors import ConfigError

RAW = {"kommo": {"base_url": "https://acme.kommo.com", "token": "${T}"}, "state": "s.db"}
ENV = {"T": "kommo-token-0001", "HOOK": "https://hooks.slack.com/services/T000/B000/XXXXSECRET"}


@pytest.mark.parametrize(
    ("previous", "code", "expected"),
    [
        (None, 0, []),  # a first run that succeeds: nothing to say
        (None, 4, ["failure"]),  # a first run that fails
        (0, 4, ["failure"]),
        (1, 2, ["failure"]),  # rejections are a success for transitions
        (4, 4, []),  # a repeated failure: told once
        (4, 2, []),
        (4, 0, ["recovery"]),
        (2, 1, ["recovery"]),
        (0, 0, []),
        (4, 3, []),  # a held lock: nothing, whatever came before
        (0, 3, []),
        (4, 143, []),  # interrupted by SIGTERM: not a failure, not a recovery
    ],
)
def test_a_failure_and_a_recovery_are_told_once_per_transition(previous, code, expected):
    assert events(previous, code, 0) == expected


def test_a_run_that_raised_with_exit_1_is_a_bug_and_a_failure_not_a_success():
    assert events(0, 1, 0, raised=True) == ["failure"]
    assert events(4, 1, 0, raised=True) == []
    assert events(4, 130, 0, raised=True) == []
    assert not Ending.failed(1, "KeyError: 'x'").succeeded
    assert Ending(1, "3 rejected").succeeded


def test_new_rejections_are_told_with_the_transition_and_not_on_a_held_lock():
    assert events(0, 1, 2) == ["rejections"]
    assert events(4, 1, 1) == ["recovery", "rejections"]
    assert events(0, 3, 5) == []


def test_the_json_body_carries_the_run_and_the_slack_body_one_line():
    ending = Ending(4, "summary line", "kommo: token revoked", 7, 1_767_225_600, 1_767_225_660)
    generic = body("acme", "failure", ending, slack=False)
    assert generic["account"] == "acme" and generic["event"] == "failure"
    assert generic["exit_code"] == 4 and generic["run_id"] == 7
    assert generic["started_at"] == "2026-01-01T00:00:00Z" and generic["error"] == ending.error
    slack = body("acme", "failure", ending, slack=True)
    assert slack == {"text": "kommo-sync acme: the run failed, exit 4: kommo: token revoked"}


def test_alerts_default_to_json_and_all_three_events_and_their_urls_are_secrets():
    config = parse_config({**RAW, "alerts": {"webhook": "${HOOK}", "timeout": "2s"}}, ENV)
    assert config.alerts.format == "json" and config.alerts.timeout_seconds == 2.0
    assert config.alerts.on == {"failure", "recovery", "rejections"}
    assert ENV["HOOK"] in config.secrets and "/services/T000/B000/XXXXSECRET" in config.secrets


@pytest.mark.parametrize(
    ("alerts", "key", "why"),
    [
        ({"webhook": "http://hooks.example.com/x"}, "alerts.webhook", "must use https"),
        ({"format": "teams"}, "alerts.format", "must be one of json, slack"),
        ({"on": ["failure", "recover"]}, "alerts.on[1]", "did you mean recovery"),
        ({"timeout": "five"}, "alerts.timeout", "must be seconds like 5s"),
        ({"timeout": "90s"}, "alerts.timeout", "between 0.05s and 60s"),
        ({"ping": "https://hc-ping.com/x"}, "alerts.ping", "did you mean ping_url"),
    ],
)
def test_a_bad_alerts_value_names_its_key(alerts, key, why):
    with pytest.raises(ConfigError) as error:
        parse_config({**RAW, "alerts": alerts}, ENV)
    assert error.value.key == key and why in str(error.value)
