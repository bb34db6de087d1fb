"""The check every model call passes: which key (if any), its tags, its models, its limits.

``GATEWAY_KEYS=required``: a call needs a gateway key. ``optional`` (the default): a call
without one passes unattributed, and a bearer token that is not a gateway key (not ``pr-...``:
the SDKs always send some key) counts as none; a gateway key that is unknown, revoked or past
its rotation grace is refused in both modes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from app.config import ModelPrice
from app.errors import Forbidden, GatewayError, InvalidRequest, TooManyRequests, Unauthorized
from app.models import now_ms
from app.services.audit.connection import Transactions
from app.services.keys import tags as tag_rules
from app.services.keys.limits import LimitStatements, Reservation, period_start
from app.services.keys.secrets import looks_like_key
from app.services.keys.store import model_allowed
from app.services.keys.verify import KeyInfo, KeysUnavailable, KeyVerifier

log = logging.getLogger(__name__)


class Counters:
    """Short transactions on the keys' counters, each on a pooled connection, bounded like audit writes."""

    def __init__(self, engine: Engine, *, wait_s: float) -> None:
        self.engine, self.wait_s = engine, wait_s
        self.sqlite = engine.dialect.name == "sqlite"
        self._warned = 0.0

    def run(self, work: Callable[[Any], None]) -> None:
        transactions = Transactions(self.engine, wait_s=self.wait_s)
        try:
            transactions.run(work)
        finally:
            transactions.release()

    def unreachable(self, error: BaseException) -> None:
        if time.monotonic() - self._warned > 10:
            self._warned = time.monotonic()
            log.warning("gateway key limits unchecked: the counters cannot be reached (%s)", type(error).__name__)

GATEWAY_KEY_MODES = ("optional", "required")


class ModelNotAllowed(Forbidden):
    code = "model_not_allowed"


@dataclass(slots=True, kw_only=True)
class Access:
    """Who makes a call, with which tags, or why it is refused."""

    key: KeyInfo | None = None
    tags: dict[str, str] | None = None
    refusal: GatewayError | None = None


@dataclass(slots=True, kw_only=True)
class KeyUse:
    """A keyed call's part in its key's counters: admitted before it is recorded, settled with its ending."""

    key: KeyInfo
    limits: LimitStatements
    reserve: float
    tokens: int
    reservation: Reservation | None = None
    # SQLite: admitted inside the audit transaction that records the request (one writer at a time
    # anyway, so no lock is held longer), instead of in a write transaction of its own.
    with_request: bool = False

    def admit(self, counters: Counters) -> None:
        """Count the call against its key's budget and rate (one statement); TooManyRequests when over.

        The statement commits on its own, so the counter row is locked for microseconds, not for
        a whole audit batch. A database that cannot answer leaves the limits unchecked (logged):
        the key was verified, and its spend is still counted when the call's record is written.
        """
        if not self.key.limited:
            self.unchecked()
            return
        result: list[Reservation | TooManyRequests] = []
        try:
            counters.run(lambda cursor: result.append(self.limits.admit(
                cursor, key=self.key, now_ms=now_ms(), reserve=self.reserve, tokens=self.tokens)))
        except Exception as exc:  # noqa: BLE001 - the database's trouble, not the caller's
            counters.unreachable(exc)
            self.unchecked()
            return
        if isinstance(result[0], TooManyRequests):
            raise result[0]
        self.reservation = result[0]

    def admit_with_request(self, cursor: Any) -> None:
        """Admission in the transaction recording the request (SQLite); TooManyRequests when over."""
        if not self.key.limited:
            self.unchecked()
            return
        result = self.limits.admit(cursor, key=self.key, now_ms=now_ms(), reserve=self.reserve, tokens=self.tokens)
        if isinstance(result, TooManyRequests):
            raise result
        self.reservation = result

    def unchecked(self) -> None:
        """The database could not be asked (the call goes on from the journal): count its spend only."""
        now = now_ms()
        self.reservation = Reservation(key_id=self.key.id, period_start=_period(self.key, now),
                                       minute_start=now - now % 60_000, reserved=0.0, tokens=0)


def _period(key: KeyInfo, now: int) -> int:
    return period_start(now, key.budget_period)


def call_cost(prices: Mapping[str, ModelPrice], *, provider: str, model: str,
              prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
    """What the call cost by MODEL_PRICES (USD per million tokens), as the usage stats count it."""
    price = prices.get(f"{provider}/{model}") or prices.get(model)
    if price is None:
        return None
    return ((prompt_tokens or 0) * price.prompt + (completion_tokens or 0) * price.completion) / 1_000_000


@dataclass(slots=True, kw_only=True)
class KeyGate:
    verifier: KeyVerifier
    limits: LimitStatements
    counters: Counters
    mode: str = "optional"
    prices: Mapping[str, ModelPrice] = field(default_factory=dict)
    _average: dict[int, float] = field(default_factory=dict)  # a key's last settled cost, in this process

    def identify(self, *, authorization: str | None, tag_headers: Mapping[str, str]) -> Access:
        """The key a call comes with and its tags; ``refusal`` says why it may not be made."""
        access = Access()
        bearer = _bearer(authorization)
        if bearer is not None and looks_like_key(bearer):
            try:
                info = self.verifier.lookup(bearer)
            except KeysUnavailable:
                access.refusal = Unauthorized(
                    "The gateway key cannot be verified right now (the gateway's database is unreachable).")
                return access
            if info is None or not info.usable(now_ms()):
                access.refusal = Unauthorized("Invalid gateway key: unknown, revoked or past its rotation grace.")
                return access
            access.key = info
        elif self.mode == "required":
            access.refusal = Unauthorized("This gateway needs a gateway key: Authorization: Bearer pr-...")
        try:
            access.tags = tag_rules.merge(access.key.tags if access.key else None, tag_headers)
        except InvalidRequest as exc:
            access.refusal = access.refusal or exc
        return access

    def check_model(self, access: Access, *names: str | None) -> None:
        if access.refusal is None and access.key is not None and not model_allowed(access.key.models, *names):
            access.refusal = ModelNotAllowed(
                f"Gateway key {access.key.prefix}... may not use model {names[0]!r}.", param="model")

    def use(self, key: KeyInfo, *, provider: str, model: str, prompt_tokens: int, max_tokens: Any) -> KeyUse:
        """How much a call reserves: its prompt's estimated cost plus its max_tokens, at least the key's last."""
        completion = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 0
        estimate = call_cost(self.prices, provider=provider, model=model,
                             prompt_tokens=prompt_tokens, completion_tokens=completion) or 0.0
        reserve = max(estimate, self._average.get(key.id, 0.0))
        use = KeyUse(key=key, limits=self.limits, reserve=reserve, tokens=prompt_tokens + completion,
                     with_request=self.counters.sqlite)
        if not use.with_request:
            use.admit(self.counters)
        return use

    def spent(self, key_id: int, cost: float) -> None:
        self._average[key_id] = cost


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
