"""kommo-sync: keep email marketing platforms in step with a Kommo CRM."""

__version__ = "0.1.0"
