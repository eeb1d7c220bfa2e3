"""A local Kommo for tests, demos and benchmarks; `KommoSandbox` is the app to serve."""

from kommo_sync.sandbox.kommo.base import OneIp, longest_429_streak
from kommo_sync.sandbox.kommo.rules import LOST, WON
from kommo_sync.sandbox.kommo.sandbox import KommoSandbox

__all__ = ["LOST", "WON", "KommoSandbox", "OneIp", "longest_429_streak"]
