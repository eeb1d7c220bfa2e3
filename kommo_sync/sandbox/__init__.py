"""Local HTTP servers that behave like Kommo, Mailchimp and Klaviyo (tests, demo, benchmarks)."""
