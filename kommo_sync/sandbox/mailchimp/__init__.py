"""A local Mailchimp for tests, demos and benchmarks; `MailchimpSandbox` is the app to serve."""

from kommo_sync.sandbox.mailchimp.rules import subscriber_hash
from kommo_sync.sandbox.mailchimp.sandbox import MailchimpSandbox

__all__ = ["MailchimpSandbox", "subscriber_hash"]
