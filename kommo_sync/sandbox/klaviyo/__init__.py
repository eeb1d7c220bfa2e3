"""A local Klaviyo for tests, demos and benchmarks; `KlaviyoSandbox` is the app to serve."""

from kommo_sync.sandbox.klaviyo.sandbox import KlaviyoSandbox

__all__ = ["KlaviyoSandbox"]
