"""Mailchimp: audience members, merge fields and stage tags; unsubscribes and activity read back."""

from __future__ import annotations

from kommo_sync.destinations.mailchimp.api import mailchimp_http
from kommo_sync.destinations.mailchimp.checks import mailchimp_checks
from kommo_sync.destinations.mailchimp.config import SECRET_KEYS, MailchimpConfig, parse_mailchimp
from kommo_sync.destinations.mailchimp.destination import MailchimpDestination
from kommo_sync.destinations.mailchimp.init_step import INIT
from kommo_sync.destinations.registry import Vendor, Wiring
from kommo_sync.http import HttpClient


def build_mailchimp(config: MailchimpConfig, wiring: Wiring) -> MailchimpDestination:
    archive = HttpClient(
        base_url="",
        vendor="Mailchimp batch archive",
        clock=wiring.clock,
        expect_json=False,
        timeout=wiring.timeout,
    )
    http = mailchimp_http(config, wiring.clock, wiring.timeout)
    return MailchimpDestination(
        config, dict(wiring.tags), http, archive, wiring.clock, job_timer=wiring.job_timer()
    )


VENDOR = Vendor(
    name="mailchimp",
    parse=parse_mailchimp,
    build=build_mailchimp,
    secret_keys=SECRET_KEYS,
    checks=mailchimp_checks,
    init=INIT,
)

__all__ = ["VENDOR", "MailchimpConfig", "MailchimpDestination", "build_mailchimp", "mailchimp_http"]
