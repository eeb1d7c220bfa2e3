"""Klaviyo: profiles with crm_stage, deal_amount and kommo_deal_id, stage lists, consent and
deal events; suppressions read back."""

from __future__ import annotations

from kommo_sync.destinations.klaviyo.api import klaviyo_http
from kommo_sync.destinations.klaviyo.checks import klaviyo_checks
from kommo_sync.destinations.klaviyo.config import SECRET_KEYS, KlaviyoConfig, parse_klaviyo
from kommo_sync.destinations.klaviyo.destination import KlaviyoDestination, build_klaviyo
from kommo_sync.destinations.klaviyo.init_step import INIT
from kommo_sync.destinations.registry import Vendor, Wiring


def _build(config: KlaviyoConfig, wiring: Wiring) -> KlaviyoDestination:
    return build_klaviyo(config, wiring.tags, wiring.clock, wiring.timeout, wiring.job_timer())


VENDOR = Vendor(
    name="klaviyo",
    parse=parse_klaviyo,
    build=_build,
    secret_keys=SECRET_KEYS,
    checks=klaviyo_checks,
    init=INIT,
)

__all__ = ["VENDOR", "KlaviyoConfig", "KlaviyoDestination", "build_klaviyo", "klaviyo_http"]
