"""SQLAlchemy models; importing this package registers every table on ``Base.metadata``."""

from app.models.base import Base, JSONText, now_ms
from app.models.history import RESPONSE_STATUSES, Attempt, AuditWorker, ChatSession, Request, Response
from app.models.keys import GatewayKey, GatewayKeyCounter
from app.models.providers import ProviderRow
from app.models.search import SearchDoc
from app.models.settings import Setting
from app.models.usage import (
    UsageRollup,
    UsageRollupDay,
    UsageRollupDayLatency,
    UsageRollupHour,
    UsageRollupHourCell,
    UsageRollupHourLatency,
    UsageRollupLatency,
)

__all__ = [
    "RESPONSE_STATUSES",
    "Attempt",
    "AuditWorker",
    "Base",
    "ChatSession",
    "GatewayKey",
    "GatewayKeyCounter",
    "JSONText",
    "ProviderRow",
    "Request",
    "Response",
    "SearchDoc",
    "Setting",
    "UsageRollup",
    "UsageRollupDay",
    "UsageRollupDayLatency",
    "UsageRollupHour",
    "UsageRollupHourCell",
    "UsageRollupHourLatency",
    "UsageRollupLatency",
    "now_ms",
]
