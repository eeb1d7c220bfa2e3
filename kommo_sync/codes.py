"""The codes a config may name: ISO 3166 regions (those phonenumbers can parse for) and ISO 4217
currencies, and the code a user most likely meant when they wrote a name or a near miss."""

from __future__ import annotations

import difflib
from functools import cache

import phonenumbers

REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)

# ISO 4217 (2024), current currencies only: no funds, metals or test codes
CURRENCIES = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHF",
        "CLP",
        "CNY",
        "COP",
        "CRC",
        "CUC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SLL",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "UYU",
        "UZS",
        "VED",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XCG",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWG",
        "ZWL",
    ]
)


@cache
def _region_names() -> dict[str, str]:
    """Every region's name in every language phonenumbers carries, lower-cased → region code
    (imported here: the geocoder's data costs most of a second, and only a wrong region needs
    it)."""
    from phonenumbers.geocoder import LOCALE_DATA  # type: ignore[attr-defined]

    names: dict[str, str] = {}
    for code, by_language in LOCALE_DATA.items():
        if code in REGIONS:
            for name in by_language.values():
                if not name.startswith("*"):
                    names.setdefault(name.lower(), code)
    return names


def region_meant(text: str) -> str | None:
    """The region code for a country name ('Germany', 'Deutschland') or a near miss of one."""
    names = _region_names()
    close = difflib.get_close_matches(text.strip().lower(), names, n=1, cutoff=0.8)
    return names[close[0]] if close else None


def currency_meant(text: str) -> str | None:
    """The currency code closest to `text` ('euro' → EUR), if one is close."""
    close = difflib.get_close_matches(text.strip().upper(), CURRENCIES, n=1, cutoff=0.8)
    return close[0] if close else None
