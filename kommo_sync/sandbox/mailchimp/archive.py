"""The batch results archive (tar.gz of JSON files) and the storage errors of its URL."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

from kommo_sync.sandbox.mailchimp.records import Batch
from kommo_sync.sandbox.mailchimp.rules import RESULTS_PER_ARCHIVE_FILE
from kommo_sync.sandbox.server import Response


def build_archive(batch: Batch) -> bytes:
    """tar.gz: a directory entry, then JSON files each holding an array of results."""
    results = batch.results or []
    buffer = io.BytesIO()
    mtime = int(batch.finishes_at)
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        folder = tarfile.TarInfo(batch.id)
        folder.type, folder.mtime, folder.mode = tarfile.DIRTYPE, mtime, 0o755
        archive.addfile(folder)
        for number, start in enumerate(range(0, len(results), RESULTS_PER_ARCHIVE_FILE)):
            data = json.dumps(results[start : start + RESULTS_PER_ARCHIVE_FILE]).encode("utf-8")
            entry = tarfile.TarInfo(
                f"{batch.id}/{hashlib.md5(data).hexdigest()[:10]}-{number}.json"
            )
            entry.size, entry.mtime = len(data), mtime
            archive.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


def storage_error(status: int, code: str, message: str) -> Response:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{message}</Message></Error>"
    )
    return Response(status, content_type="application/xml", raw=body.encode("utf-8"))
