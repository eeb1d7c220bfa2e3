"""Fixtures the unit tests of Kommo OAuth share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kommo_sync.clock import FakeClock
from kommo_sync.sandbox.kommo import KommoSandbox
from kommo_sync.sandbox.server import SandboxServer
from tests.unit.test_kommo_oauth import ENV


@pytest.fixture
def oauth_kommo(clock: FakeClock) -> Iterator[tuple[str, object]]:
    """A Kommo sandbox in OAuth mode (access tokens live an hour): its URL and token issuer."""
    sandbox = KommoSandbox(clock)
    issuer = sandbox.use_oauth(
        "integration-0001", ENV["KOMMO_CLIENT_SECRET"], ENV["KOMMO_REFRESH_TOKEN"], expires_in=3600
    )
    server = SandboxServer(sandbox).start()
    yield server.url, issuer
    server.stop()
