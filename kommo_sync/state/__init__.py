"""The state: one interface (store.StateStore), the SQLite file behind it by default, or an
account's schema in PostgreSQL (`open_state` and `run_lock` choose)."""

from kommo_sync.state.files import check_state_file
from kommo_sync.state.location import (
    StateLocation,
    open_state,
    pg_location,
    run_lock,
    state_location,
)
from kommo_sync.state.lock import FileLock, LockHolder
from kommo_sync.state.migrations import MIGRATIONS, SCHEMA_VERSION
from kommo_sync.state.rows import (
    CONTACT_FIELDS,
    LEAD_FIELDS,
    CompanyRow,
    ContactRow,
    LeadRow,
    company_from_json,
    company_to_row,
    contact_from_json,
    contact_to_row,
    decode_record,
    encode_record,
    lead_from_json,
    lead_to_row,
)
from kommo_sync.state.sqlite import State
from kommo_sync.state.sqlite_base import StateThreadError
from kommo_sync.state.store import StateStore

__all__ = [
    "CONTACT_FIELDS",
    "LEAD_FIELDS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "CompanyRow",
    "ContactRow",
    "FileLock",
    "LeadRow",
    "LockHolder",
    "State",
    "StateStore",
    "StateThreadError",
    "check_state_file",
    "company_from_json",
    "company_to_row",
    "contact_from_json",
    "contact_to_row",
    "decode_record",
    "encode_record",
    "lead_from_json",
    "lead_to_row",
    "StateLocation",
    "open_state",
    "pg_location",
    "run_lock",
    "state_location",
]
