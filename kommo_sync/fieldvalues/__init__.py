"""Kommo field values → typed values → Mailchimp merge-field values and Klaviyo properties.

Pure: no HTTP, no config, no state. `normalise` reads one field's raw `values` (shapes and
their sources in `shapes.SHAPES`) in the account's timezone; `to_mailchimp` and `to_klaviyo`
convert the result for each target.
"""

from kommo_sync.fieldvalues.klaviyo import to_klaviyo
from kommo_sync.fieldvalues.mailchimp import (
    MergeFieldSpec,
    mailchimp_can_hold,
    mailchimp_merge_type,
    missing_choices,
    to_mailchimp,
)
from kommo_sync.fieldvalues.normalise import normalise
from kommo_sync.fieldvalues.shapes import SHAPES, KommoField, builtin_type, builtin_values
from kommo_sync.fieldvalues.values import (
    CLEARED,
    TRUNCATED,
    UNKNOWN_SHAPE,
    Cleared,
    Converted,
    Day,
    Flag,
    Moment,
    Number,
    Structured,
    Text,
    Texts,
    Unknown,
    Value,
)

FIELD_TYPES = tuple(SHAPES)

__all__ = [
    "CLEARED",
    "FIELD_TYPES",
    "SHAPES",
    "TRUNCATED",
    "UNKNOWN_SHAPE",
    "Cleared",
    "Converted",
    "Day",
    "Flag",
    "KommoField",
    "MergeFieldSpec",
    "Moment",
    "Number",
    "Structured",
    "Text",
    "Texts",
    "Unknown",
    "Value",
    "builtin_type",
    "builtin_values",
    "mailchimp_can_hold",
    "mailchimp_merge_type",
    "missing_choices",
    "normalise",
    "to_klaviyo",
    "to_mailchimp",
]
