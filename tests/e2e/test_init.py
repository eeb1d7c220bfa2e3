"""`kommo-sync init`: asks, or takes every answer as a flag; lists what the accounts hold so the
user picks rather than types ids; writes a commented sync.yaml (secrets as ${VAR}) and an env
file (mode 0600) with the secrets; never overwrites a file."""

import stat

import pytest
from click.testing import CliRunner

from kommo_sync.cli import cli
from kommo_sync.config import Config, KommoConfig, load_config
from kommo_sync.destinations.klaviyo.config import KlaviyoConfig
from kommo_sync.destinations.mailchimp.config import MailchimpConfig
from tests.conftest import KLAVIYO_KEY, KOMMO_TOKEN, MAILCHIMP_KEY, assert_no_secret


@pytest.fixture
def accounts(world, sales):
    world.leads = sales - 1
    world.folder = world.tmp / "setup"
    return world


def flags(world, pipelines=("Sales", None), **overrides):
    """Every answer as a flag, aimed at the sandboxes (None: the Leads pipeline's id)."""
    given = {
        "--kommo-url": world.servers[0].url,
        "--kommo-token": KOMMO_TOKEN,
        "--mailchimp-key": MAILCHIMP_KEY,
        "--mailchimp-url": world.servers[1].url + "/3.0",
        "--mailchimp-audience": "CRM contacts",
        "--klaviyo-key": KLAVIYO_KEY,
        "--klaviyo-url": world.servers[2].url,
        "--klaviyo-list": world.klaviyo_list,
        "--consent-field": "Email consent",
        "--lead-source-field": "Lead source",
        "--dir": str(world.folder),
        **overrides,
    }
    args = [part for flag, value in given.items() if value is not None for part in (flag, value)]
    for pipeline in pipelines:
        args += ["--pipeline", pipeline or str(world.leads)]
    return [*args, "--yes"]


def init(world, *args, input=None):
    result = CliRunner().invoke(
        cli, ["init", *args], obj={"clock": world.clock}, input=input, catch_exceptions=False
    )
    assert "Traceback" not in result.output
    assert (world.kommo.writes(), world.mailchimp.writes(), world.klaviyo.writes()) == ([], [], [])
    assert_no_secret(result.output)
    return result


def expected(world, pipelines=("Sales", "Leads"), lead_source="Lead source") -> Config:
    return Config(
        kommo=KommoConfig(
            base_url=world.servers[0].url,
            token=KOMMO_TOKEN,
            consent_field="Email consent",
            lead_source_field=lead_source,
            pipelines=pipelines,
        ),
        account=world.folder.resolve().name,
        state=world.folder / "kommo-sync.db",
        destinations={
            "mailchimp": MailchimpConfig(
                api_key=MAILCHIMP_KEY, list_id=world.list_id, base_url=world.servers[1].url + "/3.0"
            ),
            "klaviyo": KlaviyoConfig(
                api_key=KLAVIYO_KEY, list_id=world.klaviyo_list, base_url=world.servers[2].url
            ),
        },
    )


def field_id(world, name):
    return next(f["id"] for f in world.kommo.custom_fields.values() if f["name"] == name)


def test_every_answer_as_a_flag_writes_a_commented_config_and_a_private_env_file_that_check_passes(
    accounts,
):
    result = init(accounts, *flags(accounts))
    assert result.exit_code == 0, result.output
    config_path, env_path = accounts.folder / "sync.yaml", accounts.folder / "kommo-sync.env"
    assert load_config(config_path, environ={}) == expected(accounts)
    text = config_path.read_text()
    assert_no_secret(text)
    assert "token: ${KOMMO_TOKEN}" in text and "env_file: kommo-sync.env" in text
    assert f"#   'Leads' (id {accounts.leads}), 'Sales' (id {accounts.leads + 1})" in text
    assert stat.S_IMODE(env_path.stat().st_mode) == 0o600
    assert env_path.read_text().splitlines()[1:] == [
        f"KOMMO_TOKEN={KOMMO_TOKEN}",
        f"MAILCHIMP_API_KEY={MAILCHIMP_KEY}",
        f"KLAVIYO_API_KEY={KLAVIYO_KEY}",
    ]
    assert result.stdout.splitlines()[-3:] == [
        f"Wrote {config_path} and {env_path} (mode 0600, the secrets). Next:",
        f"  kommo-sync --config {config_path} check",
        f"  kommo-sync --config {config_path} run --dry-run",
    ]
    checked = CliRunner().invoke(
        cli, ["--config", str(config_path), "check"], obj={"clock": accounts.clock}
    )
    assert checked.exit_code == 0, checked.output


def test_init_asks_for_each_answer_listing_what_the_accounts_hold(accounts):
    answers = [
        str(accounts.folder),
        accounts.servers[0].url,
        KOMMO_TOKEN,
        "2",
        "Email consent",
        "",
        MAILCHIMP_KEY,
        "",
        KLAVIYO_KEY,
        "1",
        "y",
    ]
    result = init(
        accounts,
        "--mailchimp-url",
        accounts.servers[1].url + "/3.0",
        "--klaviyo-url",
        accounts.servers[2].url,
        input="\n".join(answers) + "\n",
    )
    assert result.exit_code == 0, result.output
    assert load_config(accounts.folder / "sync.yaml", environ={}) == expected(
        accounts, pipelines=("Sales",), lead_source=None
    )
    shown = result.stdout
    for listing in (
        "Kommo pipelines:\n"
        f"  1) 'Leads' (id {accounts.leads})\n  2) 'Sales' (id {accounts.leads + 1})\n",
        f"Kommo checkbox fields:\n  1) 'Do not call' (id {field_id(accounts, 'Do not call')})\n"
        f"  2) 'Email consent' (id {accounts.kommo.consent_field_id})\n",
        f"Mailchimp audiences:\n  1) 'CRM contacts' (id {accounts.list_id}), 0 subscribed\n",
        f"Klaviyo lists:\n  1) 'CRM Leads' (id {accounts.klaviyo_list})\n",
    ):
        assert listing in shown


@pytest.mark.parametrize(
    "override, message",
    [
        (
            {"pipelines": ["Salse"]},
            "config error: --pipeline: no pipeline 'Salse' (did you mean 'Sales'?)",
        ),
        (
            {"--mailchimp-audience": "CRM contact"},
            "config error: --mailchimp-audience: no audience 'CRM contact' "
            "(did you mean 'CRM contacts'?)",
        ),
        (
            {"--klaviyo-list": "nope"},
            "config error: --klaviyo-list: no list 'nope' (lists: 'CRM Leads')",
        ),
        (
            {"--consent-field": "Lead source"},
            "config error: --consent-field: no checkbox field 'Lead source' "
            "(checkbox fields: 'Do not call', 'Email consent')",
        ),
        (
            {"--kommo-url": "https://acme.kommo.com/api/v4"},
            "config error: --kommo-url: give the account's address without /api/v4, like https://acme.kommo.com",
        ),
        (
            {"--kommo-url": None},
            "config error: --kommo-url: required with --yes (without it, init asks)",
        ),
        ({"--mailchimp-key": None}, "config error: --mailchimp-audience: needs --mailchimp-key"),
    ],
)
def test_a_wrong_or_missing_answer_exits_2_naming_the_flag_and_writes_nothing(
    accounts, override, message
):
    result = init(accounts, *flags(accounts, **override))
    assert (result.exit_code, result.stderr.strip()) == (2, message)
    assert not accounts.folder.exists() or list(accounts.folder.iterdir()) == []


def test_a_refused_token_exits_4_naming_the_flag_and_writes_nothing(accounts):
    result = init(accounts, *flags(accounts, **{"--kommo-token": "not-the-token"}))
    assert result.exit_code == 4
    assert result.stderr.startswith(
        "--kommo-token: Kommo refused GET /api/v4/leads/pipelines (HTTP 401"
    )
    assert not accounts.folder.exists()


@pytest.mark.parametrize("existing", ["sync.yaml", "kommo-sync.env"])
def test_init_never_overwrites_a_file_and_exits_2_naming_it_before_asking_anything(
    accounts, existing
):
    accounts.folder.mkdir()
    (accounts.folder / existing).write_text("mine\n")
    result = init(accounts, *flags(accounts))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"config error: --dir: {accounts.folder / existing} exists: init never "
        "overwrites a file; move it away or choose another --dir"
    )
    assert (accounts.folder / existing).read_text() == "mine\n"
    assert sorted(p.name for p in accounts.folder.iterdir()) == [existing]
    assert accounts.kommo.log == []


def test_with_yes_a_key_without_its_audience_takes_the_only_one_and_two_need_the_flag(accounts):
    result = init(accounts, *flags(accounts, **{"--mailchimp-audience": None}))
    assert result.exit_code == 0, result.output
    assert (
        load_config(accounts.folder / "sync.yaml", environ={}).mailchimp.list_id == accounts.list_id
    )
    second = accounts.mailchimp.add_list("Newsletter")
    accounts.folder = accounts.tmp / "again"
    result = init(accounts, *flags(accounts, **{"--mailchimp-audience": None}))
    assert (result.exit_code, result.stderr.strip()) == (
        2,
        f"config error: --mailchimp-audience: required with --yes: the account has 2 audiences: "
        f"'CRM contacts' (id {accounts.list_id}), 'Newsletter' (id {second})",
    )
