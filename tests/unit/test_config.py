"""Config: typed values, ${VAR} secrets, and errors that name the key path."""

from pathlib import Path

import pytest

from kommo_sync.config import load_config, parse_config
from kommo_sync.errors import ConfigError
from kommo_sync.model import Stage

ENV = {"KOMMO_TOKEN": "tok-123456", "MC_KEY": "abc123-us6", "KL_KEY": "pk_abc"}


def minimal(**sections):
    raw = {"kommo": {"base_url": "https://acme.kommo.com", "token": "${KOMMO_TOKEN}"}}
    raw.update(sections)
    return raw


def error_of(raw, environ=ENV) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, environ)
    return info.value


def test_minimal_config_has_defaults_and_interpolated_token():
    config = parse_config(minimal(), ENV)
    assert config.kommo.token == "tok-123456"
    assert config.tags[Stage.WON] == "Customer"
    assert config.kommo.consent_field is None
    assert config.mailchimp is None and config.klaviyo is None
    assert config.secrets == ("tok-123456",)


@pytest.mark.parametrize(
    "raw, key, words",
    [
        ({}, "kommo", "required"),
        ({"kommo": {"token": "x"}}, "kommo.base_url", "required"),
        (
            {"kommo": {"base_url": "acme.kommo.com", "token": "x"}},
            "kommo.base_url",
            "must be a URL",
        ),
        ({"kommo": {"base_url": "https://[::1", "token": "x"}}, "kommo.base_url", "must be a URL"),
        (
            {"kommo": {"base_url": "https://a.kommo.com:99999", "token": "x"}},
            "kommo.base_url",
            "must be a URL",
        ),
        (
            {"kommo": {"base_url": "https://a.kommo.com", "token": "${NOPE}"}},
            "kommo.token",
            "NOPE is not set",
        ),
        ({"kommo": {"base_url": "https://a.kommo.com", "tokn": "x"}}, "kommo.tokn", "unknown key"),
        (minimal(tags={"won": "Customer", "new": "Customer"}), "tags", "own tag"),
        (minimal(tags={"winner": "x"}), "tags.winner", "unknown key"),
        (
            minimal(kommo={"base_url": "https://a.kommo.com", "token": "t", "pipelines": "Sales"}),
            "kommo.pipelines",
            "must be a list",
        ),
        (
            minimal(mailchimp={"api_key": "nodc", "list_id": "x"}),
            "mailchimp.api_key",
            "data center",
        ),
        (minimal(mailchimp={"api_key": "${MC_KEY}"}), "mailchimp.list_id", "required"),
        (
            minimal(mailchimp={"api_key": "k-us1", "list_id": "x", "without_consent": "maybe"}),
            "mailchimp.without_consent",
            "skip, transactional, pending",
        ),
        (
            minimal(
                mailchimp={
                    "api_key": "k-us1",
                    "list_id": "x",
                    "merge_fields": {"TOOLONGTAG12": "phone"},
                }
            ),
            "mailchimp.merge_fields.TOOLONGTAG12",
            "1-10",
        ),
        (
            minimal(
                mailchimp={"api_key": "k-us1", "list_id": "x", "merge_fields": {"X": "shoe_size"}}
            ),
            "mailchimp.merge_fields.X",
            "unknown contact attribute",
        ),
        (
            minimal(klaviyo={"api_key": "k", "list_id": "L", "lists_by_stage": {"hot": "X"}}),
            "klaviyo.lists_by_stage.hot",
            "not a stage",
        ),
        (
            minimal(klaviyo={"api_key": "k", "list_id": "L", "events_since": "yesterday"}),
            "klaviyo.events_since",
            "ISO date",
        ),
        (minimal(feedback={"activity": "yes"}), "feedback.activity", "true or false"),
        (
            minimal(mailchimp={"api_key": "k-us1", "list_id": "x", "on_delete": "archived"}),
            "mailchimp.on_delete",
            "did you mean archive?",
        ),
        (
            minimal(klaviyo={"api_key": "k", "list_id": "L", "on_delete": "supress"}),
            "klaviyo.on_delete",
            "remove_from_lists, suppress, keep",
        ),
    ],
)
def test_errors_name_the_key_and_the_problem(raw, key, words):
    error = error_of(raw)
    assert error.key == key
    assert words in str(error)
    assert str(error).startswith(f"{key}: ")


def test_secret_values_never_appear_in_errors_about_them():
    error = error_of(
        minimal(mailchimp={"api_key": "${MC_KEY}", "list_id": "x", "without_consent": "bad"})
    )
    assert "abc123-us6" not in str(error)


def test_mailchimp_data_center_comes_from_the_key_suffix():
    config = parse_config(minimal(mailchimp={"api_key": "${MC_KEY}", "list_id": "L1"}), ENV)
    assert config.mailchimp.base_url == "https://us6.api.mailchimp.com/3.0"
    assert config.mailchimp.merge_fields["COMPANY"] == "company"


def test_klaviyo_section_parses_dates_stages_and_defaults():
    klaviyo = {
        "api_key": "${KL_KEY}",
        "list_id": "L",
        "lists_by_stage": {"won": "W"},
        "events_since": "2026-01-01",
    }
    config = parse_config(minimal(klaviyo=klaviyo), ENV)
    assert config.klaviyo.lists_by_stage == {Stage.WON: "W"}
    assert config.klaviyo.events_since.isoformat() == "2026-01-01T00:00:00+00:00"
    assert config.klaviyo.events["won"] == "Deal Won"
    assert config.klaviyo.revision == "2026-07-15"


def test_numeric_field_reference_becomes_an_id():
    config = parse_config(
        minimal(
            kommo={
                "base_url": "https://a.kommo.com",
                "token": "t",
                "consent_field": "123456",
                "lead_source_field": "Lead source",
            }
        ),
        ENV,
    )
    assert config.kommo.consent_field == 123456
    assert config.kommo.lead_source_field == "Lead source"


def test_load_config_reports_missing_file_and_bad_yaml(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "sync.yaml", ENV)
    bad = tmp_path / "bad.yaml"
    bad.write_text("kommo: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, ENV)


def test_state_path_is_relative_to_the_config_file(tmp_path: Path):
    path = tmp_path / "sync.yaml"
    path.write_text("kommo: {base_url: 'https://a.kommo.com', token: t}\nstate: ./x.db\n")
    assert load_config(path, {}).state == tmp_path / "x.db"


def test_example_config_is_valid():
    example = Path(__file__).resolve().parents[2] / "sync.yaml.example"
    config = load_config(
        example, {"KOMMO_TOKEN": "t", "MAILCHIMP_API_KEY": "k-us1", "KLAVIYO_API_KEY": "pk"}
    )
    assert config.kommo.consent_field == "Email consent"
    assert config.warnings == ()


def test_the_example_config_never_replays_history():
    """Copied as told, it starts deal events at the first run: no Won/Lost flow fires for old
    deals."""
    example = Path(__file__).resolve().parents[2] / "sync.yaml.example"
    config = load_config(
        example, {"KOMMO_TOKEN": "t", "MAILCHIMP_API_KEY": "k-us1", "KLAVIYO_API_KEY": "pk"}
    )
    assert config.klaviyo.events_since is None
    assert "# events_since:" in example.read_text()
