"""Schema v2: sessions, then requests page by page with their responses, then orphaned responses."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from app.services.legacy.report import ImportSummary, Progress
from app.services.legacy.rows import (
    SOURCE_V2,
    UNKNOWN_PROVIDER,
    Mapped,
    v2_request,
    v2_response,
    v2_session,
)
from app.services.legacy.source import LegacySource
from app.services.legacy.target import (
    REQUESTS,
    RESPONSES,
    SESSIONS,
    Target,
    free_id,
    minted_session_id,
    minted_uuid,
    public_id,
)

# The legacy_id of the placeholder session holding requests that named no session at all.
NO_SESSION = "(none)"


class V2Import:
    """One v2 import; remembers which target session each original session id became."""

    def __init__(
        self, *, source: LegacySource, target: Target, summary: ImportSummary, batch_size: int,
        progress: Progress,
    ) -> None:
        self.source = source
        self.target = target
        self.summary = summary
        self.batch_size = batch_size
        self.progress = progress
        self.session_ids: dict[str, str] = {}
        # responses.request_id points at requests.id (an alias of its rowid in the original).
        self.request_key = "id" if source.has("requests", "id") else "rowid"

    def run(self) -> None:
        self._sessions()
        self._requests()
        self._orphaned_responses()

    def _sessions(self) -> None:
        counts = self.summary.table("sessions")
        for page in self.source.pages("sessions", size=self.batch_size):
            mapped = [v2_session(row) for row in page]
            counts.read += len(mapped)
            with self.target.batch() as connection:
                done = self.target.existing(
                    connection, SESSIONS, source=SOURCE_V2, legacy_ids=[m.row["legacy_id"] for m in mapped]
                )
                self.session_ids.update({legacy_id: found[0] for legacy_id, found in done.items()})
                fresh = [m for m in mapped if m.row["legacy_id"] not in done]
                counts.duplicates += len(mapped) - len(fresh)
                taken = self.target.taken(connection, SESSIONS.c.id, [m.row["legacy_id"] for m in fresh])
                for m in fresh:
                    m.row["id"] = self._session_id(m.row["legacy_id"], taken=taken, problems=m.problems)
                self.target.insert(connection, SESSIONS, [m.row for m in fresh])
            for m in fresh:
                self.summary.imported("sessions", legacy_id=m.row["legacy_id"], problems=m.problems)
            self.progress.advance(len(page))

    def _requests(self) -> None:
        counts = self.summary.table("requests")
        for page in self.source.pages("requests", size=self.batch_size):
            requests = {row.get(self.request_key, row["_rowid"]): v2_request(row) for row in page}
            counts.read += len(requests)
            responses = self.source.rows_where_in("responses", column="request_id", values=list(requests))
            with self.target.batch() as connection:
                done = self.target.existing(
                    connection, REQUESTS, source=SOURCE_V2,
                    legacy_ids=[m.row["legacy_id"] for m in requests.values()], columns=("id", "session_id"),
                )
                fresh = {ref: m for ref, m in requests.items() if m.row["legacy_id"] not in done}
                counts.duplicates += len(requests) - len(fresh)
                placed = {ref: done[m.row["legacy_id"]] for ref, m in requests.items() if ref not in fresh}
                placed.update(self._insert_requests(connection, fresh))
                self._responses(connection, responses, placed=placed, requests=requests)
            for m in fresh.values():
                self.summary.imported("requests", legacy_id=m.row["legacy_id"], problems=m.problems)
            self.progress.advance(len(page) + len(responses))

    def _insert_requests(
        self, connection: Connection | None, fresh: dict[Any, Mapped]
    ) -> dict[Any, tuple[int, str]]:
        legacy_ids = [m.row["legacy_id"] for m in fresh.values()]
        taken = self.target.taken(connection, REQUESTS.c.request_id, legacy_ids)
        for m in fresh.values():
            legacy_id = m.row["legacy_id"]
            request_id = public_id(
                legacy_id, source=SOURCE_V2, table="requests", column="request_id", taken=taken,
                problems=m.problems,
            )
            session_id = self._session_for(
                connection, m.session_ref, stamp=m.row["timestamp"], problems=m.problems
            )
            m.row.update(request_id=request_id, session_id=session_id)
        ids = self.target.insert_ids(connection, REQUESTS, [m.row for m in fresh.values()])
        return {ref: (ids[m.row["legacy_id"]], m.row["session_id"]) for ref, m in fresh.items()}

    def _responses(
        self, connection: Connection | None, rows: list[dict[str, Any]], *,
        placed: dict[Any, tuple[int, str]], requests: dict[Any, Mapped],
    ) -> None:
        counts = self.summary.table("responses")
        mapped = [v2_response(row) for row in rows]
        counts.read += len(mapped)
        done = self.target.existing(
            connection, RESPONSES, source=SOURCE_V2, legacy_ids=[m.row["legacy_id"] for m in mapped]
        )
        fresh = [m for m in mapped if m.row["legacy_id"] not in done]
        counts.duplicates += len(mapped) - len(fresh)
        # Our schema holds one response per request: a second one gets a copy of its request.
        known = [placed[m.request_ref][0] for m in fresh if m.request_ref in placed]
        answered = self.target.taken(connection, RESPONSES.c.request_id, known)
        taken = self.target.taken(connection, RESPONSES.c.response_id, [m.row["legacy_id"] for m in fresh])
        for m in fresh:
            slot = placed.get(m.request_ref)
            if slot is None:
                m.problems.append(f"its request (id {m.request_ref}) is missing in the original; "
                                  "a placeholder request holds it")
                slot = self._placeholder_request(connection, m, base=None, session_id=None)
            elif slot[0] in answered:
                m.problems.append("its request has another response; a copy of the request holds this one")
                slot = self._placeholder_request(
                    connection, m, base=requests[m.request_ref], session_id=slot[1]
                )
            answered.add(slot[0])
            session_id = self.session_ids.get(m.session_ref) if m.session_ref is not None else None
            if session_id is None:
                m.problems.append(
                    f"session {m.session_ref!r} not in the original; kept in its request's session"
                )
            legacy_id = m.row["legacy_id"]
            response_id = public_id(
                legacy_id, source=SOURCE_V2, table="responses", column="response_id", taken=taken,
                problems=m.problems,
            )
            m.row.update(request_id=slot[0], session_id=session_id or slot[1], response_id=response_id)
        self.target.insert(connection, RESPONSES, [m.row for m in fresh])
        for m in fresh:
            self.summary.imported("responses", legacy_id=m.row["legacy_id"], problems=m.problems)

    def _orphaned_responses(self) -> None:
        where = f'request_id IS NULL OR request_id NOT IN (SELECT "{self.request_key}" FROM requests)'
        for page in self.source.pages("responses", size=self.batch_size, where=where):
            with self.target.batch() as connection:
                self._responses(connection, page, placed={}, requests={})
            self.progress.advance(len(page))

    def _placeholder_request(
        self, connection: Connection | None, response: Mapped, *, base: Mapped | None, session_id: str | None
    ) -> tuple[int, str]:
        """A request row to hang ``response`` on, copied from ``base`` when there is one."""
        stamp = response.row["timestamp"]
        origin = base.row["legacy_id"] if base else "missing"
        legacy_id = f"{origin}#response:{response.row['legacy_id']}"
        if base is None:
            session_id = self._session_for(connection, response.session_ref, stamp=stamp, problems=[])
            row = {"timestamp": stamp, "created_at": response.row["created_at"], "method": "", "path": "",
                   "openai_request": None, "provider_request": None, "provider": UNKNOWN_PROVIDER,
                   "model": "", "stream": False}
        else:
            row = dict(base.row)
        row.update(
            legacy_source=SOURCE_V2, legacy_id=legacy_id, session_id=session_id,
            request_id=minted_uuid(source=SOURCE_V2, table="requests", legacy_id=legacy_id),
        )
        ids = self.target.insert_ids(connection, REQUESTS, [row])
        self.summary.placeholders += 1
        return ids[legacy_id], session_id

    def _session_for(self, connection: Connection | None, ref: str | None, *, stamp: int,
                     problems: list[str]) -> str:
        """The target session of an original session id, recreating one the original lost."""
        key = NO_SESSION if ref is None else ref
        if key in self.session_ids:
            return self.session_ids[key]
        found = self.target.existing(connection, SESSIONS, source=SOURCE_V2, legacy_ids=[key])
        if key in found:
            self.session_ids[key] = found[key][0]
            return found[key][0]
        problems.append(f"session {ref} not in the original; an empty one was recreated")
        row = {
            "legacy_source": SOURCE_V2, "legacy_id": key, "chat_id": None, "parent_id": None,
            "first_user_message": None, "message_count": 0, "created_at": stamp,
            "last_accessed": stamp, "expires_at": stamp, "retained": True,
        }
        taken = self.target.taken(connection, SESSIONS.c.id, [ref])
        row["id"] = self._session_id(ref, taken=taken, problems=problems, legacy_id=key)
        self.target.insert(connection, SESSIONS, [row])
        self.summary.placeholders += 1
        return row["id"]

    def _session_id(self, preferred: str | None, *, taken: set[Any], problems: list[str],
                    legacy_id: str | None = None) -> str:
        legacy_id = legacy_id or preferred or NO_SESSION
        fallback = minted_session_id(source=SOURCE_V2, legacy_id=legacy_id)
        session_id, kept = free_id(preferred, size=128, taken=taken, fallback=fallback)
        if preferred and not kept:
            problems.append("session id too long or already in use here; a new one was minted")
        self.session_ids[legacy_id] = session_id
        return session_id
