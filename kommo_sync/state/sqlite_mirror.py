"""The state's cursors, Kommo mirror and queue of contacts still to push."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from kommo_sync.model import Company, Contact, Lead
from kommo_sync.state.rows import (
    LEAD_FIELDS,
    CompanyRow,
    company_from_json,
    contact_from_json,
    lead_from_json,
)
from kommo_sync.state.sqlite_base import OwnedConnection


class MirrorTables(OwnedConnection):
    """Cursors, the mirror (contacts, leads, their links, company names) and the dirty queue."""

    # cursors -----------------------------------------------------------------------------
    def cursor(self, name: str) -> int | None:
        row = self.db.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_cursor(self, name: str, value: int) -> None:
        self.db.execute(
            "INSERT INTO cursors VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def cursors(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT name, value FROM cursors ORDER BY name"))

    # mirror ------------------------------------------------------------------------------
    def upsert_contacts(self, rows: Iterable[tuple[int, int, str | None, int | None, str]]) -> None:
        """Write contacts given as `contact_to_row` rows (encoded once, by the caller's diff)."""
        self.db.executemany(
            "INSERT INTO contacts VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "updated_at = excluded.updated_at, email = excluded.email, "
            "company_id = excluded.company_id, "
            "data = excluded.data",
            rows,
        )

    def known_leads(self, ids: Iterable[int]) -> dict[int, Lead]:
        return {lead_id: lead_from_json(data) for lead_id, data in self.lead_rows(ids).items()}

    def lead_rows(self, ids: Iterable[int]) -> dict[int, str]:
        """The mirror's encoded leads, to diff against a page without decoding them."""
        return dict(self._select_in("SELECT id, data FROM leads WHERE id IN ({})", ids))

    def contact_rows(self, ids: Iterable[int]) -> dict[int, str]:
        return dict(self._select_in("SELECT id, data FROM contacts WHERE id IN ({})", ids))

    def upsert_leads(self, leads: list[Lead], rows: Iterable[tuple[int, int, str]]) -> None:
        """Write leads given with their `lead_to_row` rows (encoded once, by the caller's diff)."""
        self.db.executemany(
            "INSERT INTO leads VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "updated_at = excluded.updated_at, data = excluded.data",
            rows,
        )
        ids = [lead.id for lead in leads]
        self._execute_in("DELETE FROM lead_contacts WHERE lead_id IN ({})", ids)
        self.db.executemany(
            "INSERT INTO lead_contacts VALUES (?, ?) ON CONFLICT DO NOTHING",
            [(cid, lead.id) for lead in leads for cid in lead.contact_ids],
        )

    def contacts(self, ids: Iterable[int]) -> dict[int, Contact]:
        return {
            row[0]: contact_from_json(row[1])
            for row in self._select_in("SELECT id, data FROM contacts WHERE id IN ({})", ids)
        }

    def contact_ids_by_email(self, emails: Iterable[str]) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for email, cid in self._select_in(
            "SELECT email, id FROM contacts WHERE email IN ({}) ORDER BY id", emails
        ):
            found.setdefault(email, []).append(cid)
        return found

    def leads_of(self, contact_ids: Iterable[int]) -> dict[int, list[Lead]]:
        by_contact: dict[int, list[Lead]] = {}
        for cid, data in self._select_in(
            "SELECT lc.contact_id, l.data FROM lead_contacts lc JOIN leads l ON l.id = lc.lead_id "
            "WHERE lc.contact_id IN ({})",
            contact_ids,
        ):
            by_contact.setdefault(cid, []).append(lead_from_json(data))
        return by_contact

    def company_names(self, ids: Iterable[int]) -> dict[int, str]:
        return dict(self._select_in("SELECT id, name FROM companies WHERE id IN ({})", ids))

    def company_rows(self, ids: Iterable[int]) -> dict[int, str]:
        """The mirror's encoded companies (none for a row kept from before they were whole)."""
        rows = self._select_in("SELECT id, data FROM companies WHERE id IN ({})", ids)
        return {cid: data for cid, data in rows if data is not None}

    def companies(self, ids: Iterable[int]) -> dict[int, Company]:
        """Companies by id; a row from before companies were mirrored whole has its name only."""
        return {
            cid: company_from_json(data) if data is not None else Company(cid, 0, name)
            for cid, name, data in self._select_in(
                "SELECT id, name, data FROM companies WHERE id IN ({})", ids
            )
        }

    def upsert_companies(self, rows: Iterable[CompanyRow]) -> None:
        """Write companies given as `company_to_row` rows."""
        self.db.executemany(
            "INSERT INTO companies (id, updated_at, name, data) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET updated_at = excluded.updated_at, "
            "name = excluded.name, data = excluded.data",
            rows,
        )

    def contacts_of_companies(self, ids: Iterable[int]) -> list[int]:
        """The mirrored contacts linked to these companies (a scan: rare, once a run)."""
        found = self._select_in("SELECT id FROM contacts WHERE company_id IN ({})", ids)
        return sorted(row[0] for row in found)

    # the queue of contacts whose outcome is not yet recorded ----------------------------------
    def mark_dirty(self, contact_ids: Iterable[int]) -> None:
        """Queue contacts; each mark gets a new sequence number, so a contact marked again while
        its batch is being pushed stays queued when that batch is cleared."""
        self._seq += 1
        self.db.executemany(
            "INSERT INTO dirty VALUES (?, ?) "
            "ON CONFLICT(contact_id) DO UPDATE SET seq = excluded.seq",
            ((cid, self._seq) for cid in contact_ids),
        )

    def dirty_seq(self) -> int:
        self.check_owner()
        return self._seq

    def ready_batches(self, size: int, after: int = -1) -> Iterator[list[int]]:
        """Queued contacts already in the mirror, by id, in batches; re-read between batches."""
        last = after
        while True:
            batch = [
                row[0]
                for row in self.db.execute(
                    "SELECT d.contact_id FROM dirty d JOIN contacts c ON c.id = d.contact_id "
                    "WHERE d.contact_id > ? ORDER BY d.contact_id LIMIT ?",
                    (last, size),
                )
            ]
            if not batch:
                return
            yield batch
            last = batch[-1]

    def mark_all_dirty(self) -> int:
        return self.db.execute(
            "INSERT INTO dirty SELECT id, ? FROM contacts WHERE true ON CONFLICT DO NOTHING",
            (self._seq,),
        ).rowcount

    def forget_pushed(self, destination: str) -> None:
        """Everything known about a destination's old target (records, rejections, tag ids…)."""
        for table in ("pushed", "rejections", "destination_meta"):
            self.db.execute(f"DELETE FROM {table} WHERE destination = ?", (destination,))

    def dirty_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM dirty").fetchone()[0]

    def dirty_missing_from_mirror(self) -> list[int]:
        return [
            row[0]
            for row in self.db.execute(
                "SELECT d.contact_id FROM dirty d LEFT JOIN contacts c ON c.id = d.contact_id "
                "WHERE c.id IS NULL"
            )
        ]

    def clear_dirty(self, contact_ids: Iterable[int], up_to_seq: int) -> None:
        self._execute_in(
            "DELETE FROM dirty WHERE seq <= ? AND contact_id IN ({})",
            contact_ids,
            prefix=(up_to_seq,),
        )

    def requeue_leads_of_pipelines(self, pipeline_ids: Iterable[int]) -> int:
        """Queue the contacts of every mirrored lead in these pipelines (their catalog changed)."""
        position = LEAD_FIELDS.index("pipeline_id")
        ids = list(pipeline_ids)
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        return self.db.execute(
            f"INSERT INTO dirty SELECT DISTINCT lc.contact_id, ? FROM lead_contacts lc "
            f"JOIN leads l ON l.id = lc.lead_id "
            f"WHERE {self.dialect.json_int('l.data', position)} IN ({marks}) "
            f"ON CONFLICT DO NOTHING",
            (self._seq, *ids),
        ).rowcount
