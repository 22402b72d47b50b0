"""`govnode client`: an agency's own command line, over the same API as everyone else.

`login` remembers the node's URL, the agency's certificate and the token in a
profile file (default `~/.config/govnode/client.json`, mode 0600; `--profile`
or `$GOVNODE_CLIENT` for another), so later commands need no flags.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import mimetypes
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from govnode.cli.agency_client import AgencyClient, Response
from govnode.cli.errors import EXIT_PROBLEM, CliError
from govnode.cli.output import print_json
from govnode.pki.files import write_private

DEFAULT_PROFILE = Path("~/.config/govnode/client.json")


def add_parser(sub: Any) -> None:
    client = sub.add_parser("client", help="send and receive letters as an agency")
    client.add_argument(
        "--profile",
        type=Path,
        default=Path(os.environ.get("GOVNODE_CLIENT") or DEFAULT_PROFILE),
        help="where the login is remembered (default ~/.config/govnode/"
        "client.json or $GOVNODE_CLIENT)",
    )
    client.add_argument("--json", action="store_true", help="print the API's JSON answers")
    actions = client.add_subparsers(dest="client_command", required=True, metavar="ACTION")

    login = actions.add_parser("login", help="log in and remember the session")
    login.add_argument("username")
    login.add_argument("--url", required=True, help="the node, e.g. https://127.0.0.1:8443")
    login.add_argument("--ca", type=Path, required=True, help="the node's CA certificate")
    login.add_argument("--cert", type=Path, required=True, help="the agency's certificate")
    login.add_argument("--key", type=Path, required=True, help="the agency's private key")
    login.add_argument(
        "--password-file", type=Path, help="read the password from this file (default: ask)"
    )
    login.set_defaults(run=_login)
    actions.add_parser("logout", help="revoke the token").set_defaults(run=_logout)

    send = actions.add_parser("send", help="send a letter")
    send.add_argument("--to", action="append", required=True, help="address (repeatable)")
    send.add_argument("--cc", action="append", default=[], help="address (repeatable)")
    send.add_argument("--subject", required=True)
    body = send.add_mutually_exclusive_group()
    body.add_argument("--body", default="")
    body.add_argument("--body-file", type=Path)
    send.add_argument(
        "--attach", type=Path, action="append", default=[], help="a file to attach (repeatable)"
    )
    send.add_argument("--priority", choices=["normal", "urgent", "immediate"], default="normal")
    send.add_argument(
        "--classification",
        default="normal",
        choices=["normal", "restricted", "confidential", "secret"],
    )
    send.add_argument("--reply-to", help="id of the letter this answers")
    send.add_argument(
        "--reply-by", help="when an answer is due: 1405/09/20 (Jalali), 2026-12-11 or a time"
    )
    send.add_argument("--idempotency-key", help="send again safely with the same key")
    send.set_defaults(run=_send)

    inbox = actions.add_parser("inbox", help="letters delivered to the agency, newest first")
    inbox.add_argument("--unread", action="store_true")
    inbox.add_argument("--limit", type=int, default=20)
    inbox.set_defaults(run=_inbox)
    outbox = actions.add_parser("outbox", help="letters the agency sent, newest first")
    outbox.add_argument("--limit", type=int, default=20)
    outbox.set_defaults(run=_outbox)

    show = actions.add_parser("show", help="one letter, with its recipients")
    show.add_argument("id")
    show.add_argument("--save-attachments", type=Path, metavar="DIR")
    show.set_defaults(run=_show)
    read = actions.add_parser("read", help="mark a received letter read")
    read.add_argument("id")
    read.set_defaults(run=_read)
    track = actions.add_parser("track", help="the tracking trail of a letter")
    track.add_argument("id")
    track.set_defaults(run=_track)
    lookup = actions.add_parser(
        "lookup",
        help="search the directory (Persian is fine); an address (presidency@center) "
        "looks up that one agency, at other nodes too",
    )
    lookup.add_argument("query", nargs="?", default="")
    lookup.add_argument("--limit", type=int, default=20)
    lookup.set_defaults(run=_lookup)


# -- plumbing ---------------------------------------------------------------


def _profile(args: argparse.Namespace) -> dict[str, Any]:
    path = args.profile.expanduser()
    try:
        profile: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CliError(f"{path}: no session; run `govnode client login` first") from None
    except (OSError, ValueError) as exc:
        raise CliError(f"{path}: unreadable profile: {exc}") from None
    return profile


def _client(args: argparse.Namespace) -> AgencyClient:
    profile = _profile(args)
    return AgencyClient(
        profile["url"],
        Path(profile["ca"]),
        Path(profile["cert"]),
        Path(profile["key"]),
        token=profile.get("token"),
    )


def _call(client: AgencyClient, method: str, path: str, **options: Any) -> Any:
    try:
        response = client.request(method, path, **options)
    except OSError as exc:
        raise CliError(f"cannot reach {client.base_url}: {exc}", EXIT_PROBLEM) from None
    return _answer(response)


def _answer(response: Response) -> Any:
    if response.status >= 400:
        try:
            error = response.json()["error"]
            where = f" ({error['field']})" if error.get("field") else ""
            message = f"{response.status} {error['code']}{where}: {error['message']}"
        except (ValueError, KeyError, TypeError):
            message = f"{response.status}: {response.body[:200]!r}"
        if response.status == 401:
            message += "; run `govnode client login` again"
        raise CliError(message, EXIT_PROBLEM)
    return response.json() if response.body else None


def _summaries(answer: dict[str, Any], *, received: bool) -> None:
    for letter in answer["letters"]:
        mark = " " if not received or letter["read_at"] else "*"
        who = letter["sender"] if received else ""
        print(
            f"{mark} {letter['number']:<16} {letter['created_at']}  {letter['id']}  "
            f"{who:<18} {letter['subject']}"
        )
    if not answer["letters"]:
        print("(none)")


# -- actions ----------------------------------------------------------------


def _login(args: argparse.Namespace) -> int:
    if args.password_file is not None:
        try:
            password = args.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CliError(
                f"--password-file: cannot read {args.password_file}: {exc.strerror}"
            ) from None
    else:
        password = getpass.getpass(f"password for {args.username}: ")
    for option in ("ca", "cert", "key"):
        path: Path = getattr(args, option)
        if not path.is_file():
            raise CliError(f"--{option}: {path} is not a file")
    client = AgencyClient(
        args.url.rstrip("/"), args.ca.absolute(), args.cert.absolute(), args.key.absolute()
    )
    try:
        answer = _answer(client.login(args.username, password))
    except OSError as exc:
        raise CliError(f"cannot reach {args.url}: {exc}", EXIT_PROBLEM) from None
    profile = {
        "url": client.base_url,
        "ca": str(client.ca),
        "cert": str(client.cert),
        "key": str(client.key),
        "token": answer["token"],
        "agency": answer["agency"],
        "user": answer["user"],
        "expires_at": answer["expires_at"],
    }
    path = args.profile.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(path, json.dumps(profile, indent=2).encode("utf-8"))
    print(f"logged in as {answer['user']} of {answer['agency']} until {answer['expires_at']}")
    return 0


def _logout(args: argparse.Namespace) -> int:
    _call(_client(args), "DELETE", "/api/v1/auth/token")
    args.profile.expanduser().unlink()
    print("logged out")
    return 0


def _attachment(path: Path) -> dict[str, str]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CliError(f"--attach: cannot read {path}: {exc.strerror}") from None
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return {
        "filename": path.name,
        "content_type": content_type,
        "data": base64.b64encode(data).decode("ascii"),
    }


def _send(args: argparse.Namespace) -> int:
    body = args.body
    if args.body_file is not None:
        try:
            body = args.body_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"--body-file: cannot read {args.body_file}: {exc}") from None
    letter: dict[str, Any] = {
        "to": args.to,
        "cc": args.cc,
        "subject": args.subject,
        "body": body,
        "priority": args.priority,
        "classification": args.classification,
        "in_reply_to": args.reply_to,
        "attachments": [_attachment(path) for path in args.attach],
    }
    if args.reply_by:
        letter["reply_by"] = args.reply_by
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    answer = _call(_client(args), "POST", "/api/v1/letters", json_body=letter, headers=headers)
    if args.json:
        print_json(answer)
        return 0
    print(f"registered {answer['number']} ({answer['created_at_jalali']}), id {answer['id']}")
    for recipient in answer["recipients"]:
        print(f"  {recipient['kind']:<3} {recipient['address']:<24} {recipient['status']}")
    return 0


def _inbox(args: argparse.Namespace) -> int:
    query = {"limit": str(args.limit)} | ({"unread": "true"} if args.unread else {})
    answer = _call(_client(args), "GET", "/api/v1/inbox", query=query)
    print_json(answer) if args.json else _summaries(answer, received=True)
    return 0


def _outbox(args: argparse.Namespace) -> int:
    answer = _call(_client(args), "GET", "/api/v1/outbox", query={"limit": str(args.limit)})
    print_json(answer) if args.json else _summaries(answer, received=False)
    return 0


def _show(args: argparse.Namespace) -> int:
    client = _client(args)
    letter = _call(client, "GET", f"/api/v1/letters/{args.id}")
    if args.json:
        print_json(letter)
    else:
        print(f"{letter['number']}  {letter['created_at_jalali']}  ({letter['status']})")
        print(f"from:    {letter['sender']}")
        print(f"to:      {', '.join(letter['to'])}")
        if letter["cc"]:
            print(f"cc:      {', '.join(letter['cc'])}")
        print(f"subject: {letter['subject']}")
        print(f"         {letter['priority']}, {letter['classification']}")
        print()
        print(letter["body"])
        for index, item in enumerate(letter["attachments"]):
            print(f"[{index}] {item['filename']} ({item['content_type']}, {item['size']} bytes)")
    if args.save_attachments is not None:
        args.save_attachments.mkdir(parents=True, exist_ok=True)
        for index, item in enumerate(letter["attachments"]):
            response = client.request("GET", f"/api/v1/letters/{args.id}/attachments/{index}")
            if response.status != 200:
                _answer(response)
            target = args.save_attachments / Path(item["filename"]).name
            target.write_bytes(response.body)
            print(f"saved {target}")
    return 0


def _read(args: argparse.Namespace) -> int:
    answer = _call(_client(args), "POST", f"/api/v1/letters/{args.id}/read")
    print_json(answer) if args.json else print(f"read at {answer['read_at']}")
    return 0


def _track(args: argparse.Namespace) -> int:
    answer = _call(_client(args), "GET", f"/api/v1/letters/{args.id}/events")
    if args.json:
        print_json(answer)
        return 0
    for event in answer["events"]:
        print(
            f"{event['at']}  {event['address']:<24} {event['status']:<10} "
            f"{event['node']:<8} {event['detail'] or ''}"
        )
    return 0


def _lookup(args: argparse.Namespace) -> int:
    if "@" in args.query:  # one agency, from the peer directories for other nodes
        one = _call(_client(args), "GET", f"/api/v1/directory/{quote(args.query.strip())}")
        answer: dict[str, Any] = {"agencies": [one], "total": 1}
    else:
        answer = _call(
            _client(args),
            "GET",
            "/api/v1/directory",
            query={"q": args.query, "limit": str(args.limit)},
        )
    if args.json:
        print_json(answer)
        return 0
    for agency in answer["agencies"]:
        print(f"{agency['address']:<28} {agency['status']:<9} {agency['name']}")
    print(f"{answer['total']} found")
    return 0
