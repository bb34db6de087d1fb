"""SQLAlchemy models; importing this package registers every table on ``Base.metadata``."""

from app.models.base import Base, JSONText, now_ms
from app.models.history import RESPONSE_STATUSES, Attempt, ChatSession, Request, Response
from app.models.providers import ProviderRow
from app.models.settings import Setting

__all__ = [
    "RESPONSE_STATUSES",
    "Attempt",
    "Base",
    "ChatSession",
    "JSONText",
    "ProviderRow",
    "Request",
    "Response",
    "Setting",
    "now_ms",
]
