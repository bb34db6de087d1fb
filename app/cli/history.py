"""``history``, ``show``, ``sessions`` and ``sessions show``: the audit trail, read like the REST API does."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy.orm import Session

from app.cli.common import (
    CliGroup,
    iso,
    json_option,
    open_gateway,
    parse_since,
    print_json,
    print_table,
    when,
)
from app.models import ChatSession, Request, now_ms
from app.providers.base import ENDPOINTS
from app.services.history.paging import COUNT_CAP, MAX_LIMIT, PageRequest
from app.services.history.records import Filters, get_request, list_requests, resolve_request_id
from app.services.history.sessions import get_session, list_sessions, session_requests
from app.services.search import query as search_query
from app.services.search import text as call_text

LIMIT = click.IntRange(1, MAX_LIMIT)
AROUND = 3  # requests shown before and after the one `show` shows


def filter_options(function):
    """The filters `history` and `export` share."""
    for option in reversed((
        click.option("--session", "session_id", help="Only this session's requests."),
        click.option("--endpoint", type=click.Choice(ENDPOINTS), help="Only calls to this OpenAI endpoint."),
        click.option("--model", help="Only this model."),
        click.option("--provider", help="Only this provider."),
        click.option("--status", type=click.Choice(["ok", "error", "incomplete", "interrupted"]),
                     help="Only this outcome."),
        click.option("--since", help="Only since then: 30m, 2h, 7d, or an ISO time (UTC)."),
        click.option("--search", help='Only calls whose messages or answer hold every word ("quotes": a phrase).'),
    )):
        function = option(function)
    return function


def make_filters(*, session_id, endpoint, model, provider, status, since, search) -> Filters:
    try:
        query = None if search is None else search_query.parse(search)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--search") from None
    return Filters(
        session_id=session_id, endpoint=endpoint, model=model, provider=provider, status=status,
        start_ms=parse_since(since, now_ms=now_ms()), search=query,
    )


@click.command("history")
@click.option("-l", "--limit", type=LIMIT, default=50, show_default=True, help="Requests to show.")
@filter_options
@json_option
def history_command(limit: int, as_json: bool, **filters: Any) -> None:
    """Show requests, newest first.

    \b
    Examples:
      provider-cli history -l 20 --status error --since 2h
      provider-cli history --model gpt-4o --provider openai --json
      provider-cli history --endpoint embeddings --since 1d
      provider-cli history --search 'invoice "due date"'
    """
    gateway = open_gateway()
    with Session(gateway.engine) as db:
        page = list_requests(db, filters=make_filters(**filters), page=PageRequest(limit=limit))
        rows = [summary(request) for request in page.items]
    if as_json:
        print_json({"total": page.total, "data": rows})
        return
    print_table(
        ("id", "time", "provider", "model", "stream", "status", "tokens", "duration"),
        ((r["id"], when(r["timestamp"]), r["provider"], r["model"], "yes" if r["stream"] else "no",
          r["status"] or "pending", _or_dash(r["total_tokens"]), _ms(r["duration_ms"])) for r in rows),
    )
    click.echo(f"{len(rows)} of {_total(page.total)} requests", err=True)


@click.command("show")
@click.argument("request_id")
@json_option
def show_command(request_id: str, as_json: bool) -> None:
    """Show one request (the id `history` prints, its UUID or a UUID prefix), its response, its conversation.

    \b
    Examples:
      provider-cli show 42
      provider-cli show 0193f6c2-7d1a --json
    """
    gateway = open_gateway()
    with Session(gateway.engine) as db:
        request = get_request(db, resolve_request_id(db, request_id))
        page = session_requests(db, request.session_id, page=PageRequest(limit=MAX_LIMIT, descending=False))
        position = next(i for i, r in enumerate(page.items) if r.id == request.id)
        around = page.items[max(0, position - AROUND): position + AROUND + 1]
        data = {
            **summary(request),
            "trace_id": request.trace_id,
            "request": request.openai_request,
            "response": None if request.response is None else {
                "response_id": request.response.response_id, "status": request.response.status,
                "status_code": request.response.status_code, "finish_reason": request.response.finish_reason,
                "prompt_tokens": request.response.prompt_tokens,
                "completion_tokens": request.response.completion_tokens, "error": request.response.error,
                "body": request.response.openai_response,
            },
            "conversation": [{**summary(r), "this": r.id == request.id, "user": last_user_text(r),
                              "assistant": reply_text(r)} for r in around],
        }
    if as_json:
        print_json(data)
        return
    click.echo(f"Request {data['request_id']} (#{data['id']}) at {when(data['timestamp'])} UTC")
    click.echo(f"  session {data['session_id']}, {data['provider']} / {data['model']}"
               f"{', streamed' if data['stream'] else ''}")
    if data["trace_id"]:
        click.echo(f"  trace {data['trace_id']}")
    for message in (data["request"] or {}).get("messages", []):
        click.echo(f"  {message.get('role', '?')}: {text_of(message.get('content'))}")
    response = data["response"]
    if response is None:
        click.echo("Response: none yet")
    else:
        click.echo(f"Response {response['status']} ({response['status_code']}, {response['finish_reason'] or '-'}),"
                   f" {_or_dash(data['total_tokens'])} tokens, {_ms(data['duration_ms'])}")
        if response["error"]:
            click.echo(f"  error: {response['error']}")
        click.echo(f"  assistant: {reply_text(request) or '-'}")
    click.echo(f"Conversation around it (session {data['session_id']}):")
    for turn in data["conversation"]:
        mark = ">" if turn["this"] else " "
        click.echo(f"{mark} {when(turn['timestamp'])} #{turn['id']} user: {turn['user'] or '-'}")
        click.echo(f"{mark} {' ' * (22 + len(str(turn['id'])))}assistant: {turn['assistant'] or '-'}")


@click.group("sessions", cls=CliGroup, invoke_without_command=True)
@click.option("-l", "--limit", type=LIMIT, default=20, show_default=True, help="Sessions to show.")
@json_option
@click.pass_context
def sessions_group(ctx: click.Context, limit: int, as_json: bool) -> None:
    """List conversations, newest first; `sessions show ID` prints one as a transcript.

    \b
    Examples:
      provider-cli sessions -l 10
      provider-cli sessions show 5f1c... --json
    """
    if ctx.invoked_subcommand is not None:
        return
    gateway = open_gateway()
    with Session(gateway.engine) as db:
        page = list_sessions(db, page=PageRequest(limit=limit))
        rows = [_session(s) for s in page.items]
    if as_json:
        print_json({"total": page.total, "data": rows})
        return
    print_table(
        ("id", "created", "last used", "messages", "first message"),
        ((s["id"], when(s["created_at"]), when(s["last_accessed"]), s["message_count"],
          _cut(s["first_user_message"], 60)) for s in rows),
    )
    click.echo(f"{len(rows)} of {_total(page.total)} sessions", err=True)


@sessions_group.command("show")
@click.argument("session_id")
@click.option("-l", "--limit", type=LIMIT, default=MAX_LIMIT, show_default=True, help="Turns to show.")
@json_option
def session_show_command(session_id: str, limit: int, as_json: bool) -> None:
    """Print session SESSION_ID as a readable transcript, oldest first."""
    gateway = open_gateway()
    with Session(gateway.engine) as db:
        detail = get_session(db, session_id)
        page = session_requests(db, session_id, page=PageRequest(limit=limit, descending=False))
        turns = [{**summary(r), "user": last_user_text(r), "assistant": reply_text(r)} for r in page.items]
        data = {**_session(detail.session), "request_count": detail.request_count, "turns": turns}
    if as_json:
        print_json(data)
        return
    click.echo(f"Session {session_id}: {detail.request_count} requests, started {when(data['created_at'])} UTC")
    for turn in turns:
        click.echo(f"\n[{when(turn['timestamp'])}] user:\n  {turn['user'] or '-'}")
        outcome = turn["status"] or "pending"
        click.echo(f"[{turn['provider']} / {turn['model']}, {outcome}, {_or_dash(turn['total_tokens'])} tokens,"
                   f" {_ms(turn['duration_ms'])}] assistant:\n  {turn['assistant'] or turn['error'] or '-'}")


def summary(request: Request) -> dict[str, Any]:
    """A request's history row: its fields and its response's outcome."""
    response = request.response
    return {
        "id": request.id, "request_id": request.request_id, "session_id": request.session_id,
        "timestamp": request.timestamp, "time": iso(request.timestamp), "provider": request.provider,
        "model": request.model, "stream": bool(request.stream),
        "status": response.status if response else None,
        "total_tokens": response.total_tokens if response else None,
        "duration_ms": response.duration_ms if response else None,
        "error": response.error if response else None,
    }


def text_of(content: Any) -> str:
    return call_text.text_of(content)


def last_user_text(request: Request) -> str | None:
    return call_text.last_user_text(request.openai_request)


def reply_text(request: Request) -> str | None:
    return call_text.reply_text(request.response.openai_response if request.response is not None else None)


def _session(session: ChatSession) -> dict[str, Any]:
    return {
        "id": session.id, "created_at": session.created_at, "last_accessed": session.last_accessed,
        "message_count": session.message_count, "first_user_message": session.first_user_message,
    }


def _cut(text: str | None, width: int) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _or_dash(value: Any) -> Any:
    return "-" if value is None else value


def _ms(value: int | None) -> str:
    return "-" if value is None else f"{value} ms"


def _total(total: int) -> str:
    """A list's total as people read it: past the cap it only says "more than"."""
    return f"more than {COUNT_CAP:,}" if total > COUNT_CAP else str(total)
