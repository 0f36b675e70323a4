"""The `messenger` command: the SDK from a terminal.

    messenger --profile alice init                 create alice's keys (once)
    messenger --profile alice send bob "hi"        exit 0 once the server has stored it
    messenger --profile bob read [--watch]         print new messages, ack them
    messenger --profile alice chat bob             an interactive chat

Where to connect: `--server URL` (a cell's WebSocket URL, $MESSENGER_SERVER), or
`--directory URL` (the deployment's directory.json, $MESSENGER_DIRECTORY: the client
connects to the user's home cell, docs/protocol.md §6). The command line beats the
environment; of the environment's, the directory beats the server. A directory is
trusted only as its key signed it: `--directory-key KEY` ($MESSENGER_DIRECTORY_KEY; the
deployment's DirectoryPublicKey output, or `messenger local`'s banner), kept in the
profile from then on (`init` too takes it). Without one, a directory on this machine
(loopback) gives its own at /directory.key, read once and kept; any other is refused.

Other packages add subcommands in the `messenger.commands` entry-point group: the
local stack registers `messenger local` there, so the client never imports it.

Exit codes: 0 done, 1 refused or failed, 2 usage, 3 no connection, 4 unknown user,
5 a peer's keys changed (re-verify before anything more is sent to them), 130 Ctrl-C
(what was not stored by the server yet stays in the outbox, and the command says so).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import locale
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from importlib.metadata import entry_points
from typing import Any

from messenger_entry import EXIT_INTERRUPTED

from messenger_client.client import ClientSettings, MessengerClient
from messenger_client.connection import ConnectionState
from messenger_client.devices import link_code, qr_text
from messenger_client.directory import DIRECTORY_PUBLIC_KEY, is_directory_key
from messenger_client.errors import (
    HandshakeRefused,
    KeyChanged,
    MessengerError,
    NotConnected,
    UnknownUser,
)
from messenger_client.events import (
    ConnectionChanged,
    Event,
    EventStream,
    MessageAdded,
    MessageRejected,
    Presence,
    PresenceChanged,
)
from messenger_client.keystore import HOME_ENV, Profile
from messenger_client.store import (
    STATUS_MARKS,
    HistoryStore,
    HoldReason,
    MessageStatus,
    StoredMessage,
    held_notice,
    held_notices,
)
from messenger_protocol.limits import PRIMARY_DEVICE_ID
from messenger_protocol.names import PresenceVisibility

# Where other packages register `messenger` subcommands (pyproject.toml).
COMMAND_GROUP = "messenger.commands"
SERVER_ENV = "MESSENGER_SERVER"
DIRECTORY_ENV = "MESSENGER_DIRECTORY"
DIRECTORY_KEY_ENV = "MESSENGER_DIRECTORY_KEY"
PROFILE_ENV = "MESSENGER_PROFILE"
DEFAULT_SERVER = "ws://127.0.0.1:8080/local"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NO_CONNECTION = 3
EXIT_UNKNOWN_USER = 4
EXIT_KEY_CHANGED = 5


class CommandError(Exception):
    """A failure worth one clear line on stderr, and its exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# --- arguments ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    # Global options are accepted before or after the command (`messenger send bob hi
    # --profile alice`); SUPPRESS keeps a subcommand's unset copy from hiding the global.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        default=argparse.SUPPRESS,
        metavar="URL",
        help=f"the WebSocket URL (${SERVER_ENV}, default {DEFAULT_SERVER})",
    )
    common.add_argument(
        "--directory",
        default=argparse.SUPPRESS,
        metavar="URL",
        help=f"the directory's URL, to connect to your home cell (${DIRECTORY_ENV})",
    )
    common.add_argument(
        "--directory-key",
        default=argparse.SUPPRESS,
        metavar="KEY",
        help="the directory's public key (base64url), kept in the profile; a directory on "
        f"this machine gives its own (${DIRECTORY_KEY_ENV})",
    )
    common.add_argument(
        "--profile",
        default=argparse.SUPPRESS,
        metavar="NAME",
        help=f"whose keys and history to use (${PROFILE_ENV})",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log the connection's life on stderr",
    )

    parser = argparse.ArgumentParser(
        prog="messenger",
        parents=[common],
        description="An end-to-end encrypted 1:1 messenger. Keys and history stay on this "
        f"machine (${HOME_ENV}, or $XDG_CONFIG_HOME/messenger/<profile>).",
        epilog="messenger local --help: run the whole messenger on this machine. Exit codes: "
        "0 done, 1 refused or failed, 2 usage, 3 no connection, 4 unknown user, "
        "5 a peer's keys changed, 130 interrupted (Ctrl-C).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], help=help_text, description=help_text)

    init = command("init", "create this profile's keys (nothing is sent until you connect)")
    init.add_argument(
        "--user", metavar="USER_ID", help="the user id to register (default: the profile name)"
    )
    init.add_argument(
        "--link",
        action="store_true",
        help="make this a new device of an existing user (--user): prints a link code, "
        "as text and as a QR code, for the user's device 1 (`devices link CODE`)",
    )
    init.add_argument(
        "--device",
        metavar="DEVICE_ID",
        help="with --link: this device's id, 1-32 of a-z 0-9 _ - (default: the profile name)",
    )

    devices = command(
        "devices",
        "list your devices; on device 1, `devices link CODE` adds one, `devices remove ID` "
        "removes one",
    )
    devices.add_argument("change", metavar="link|remove", nargs="?", choices=["link", "remove"])
    devices.add_argument("target", metavar="CODE|ID", nargs="?")
    devices.add_argument("--timeout", type=float, default=15.0, help="seconds to wait (15)")

    send = command("send", "send one message; exit 0 once the server has stored it")
    send.add_argument("peer", metavar="PEER")
    send.add_argument("text", metavar="TEXT", help="the text; - reads it from stdin")
    send.add_argument("--timeout", type=float, default=15.0, help="seconds to wait (15)")

    read = command("read", "print new messages (and acknowledge them), then exit")
    read.add_argument("--watch", action="store_true", help="keep printing until Ctrl-C")
    read.add_argument(
        "--seen", action="store_true", help="also tell the senders you have seen them"
    )
    read.add_argument("--timeout", type=float, default=15.0, help="seconds to wait (15)")
    read.add_argument("--json", action="store_true", help="one JSON object a line, for scripts")

    presence = command("presence", "show whether users are online, or when last seen")
    presence.add_argument("users", metavar="USER", nargs="+")
    presence.add_argument("--watch", action="store_true", help="keep printing changes")
    presence.add_argument("--timeout", type=float, default=15.0, help="seconds to wait (15)")
    presence.add_argument("--json", action="store_true", help="one JSON object a line")

    visibility = command(
        "visibility", "show, or set, who may see your presence: everyone, contacts or nobody"
    )
    visibility.add_argument(
        "choice", metavar="WHO", nargs="?", choices=[v.value for v in PresenceVisibility]
    )
    visibility.add_argument("--timeout", type=float, default=15.0, help="seconds to wait (15)")

    history = command("history", "print the conversation with PEER (from this machine)")
    history.add_argument("peer", metavar="PEER")
    history.add_argument("--limit", type=int, default=None, help="only the latest N messages")
    history.add_argument("--json", action="store_true", help="one JSON object a line")

    fingerprint = command(
        "fingerprint", "show a safety number to compare: yours, or PEER's pinned keys"
    )
    fingerprint.add_argument("peer", metavar="PEER", nargs="?")
    fingerprint.add_argument("--timeout", type=float, default=15.0, help="seconds to wait (15)")

    trust = command("trust", "accept PEER's new keys after comparing their safety number")
    trust.add_argument("peer", metavar="PEER")
    trust.add_argument(
        "--fingerprint",
        required=True,
        metavar="NUMBER",
        help="the safety number PEER sees with `messenger fingerprint`",
    )
    trust.add_argument("--timeout", type=float, default=15.0, help="seconds to wait (15)")

    for name, help_text in (
        ("block", "block users: what they send is dropped, and they are never told"),
        ("unblock", "stop blocking users"),
    ):
        blocking = command(name, help_text)
        blocking.add_argument("users", metavar="USER", nargs="+")
        blocking.add_argument("--timeout", type=float, default=15.0, help="seconds to wait (15)")
    blocked = command("blocked", "list the users you block (as the server holds the list)")
    blocked.add_argument("--timeout", type=float, default=15.0, help="seconds to wait (15)")

    chat = command("chat", "an interactive chat with PEER")
    chat.add_argument("peer", metavar="PEER")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `messenger` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] not in COMMANDS and not args[0].startswith("-"):
        installed = installed_command(args[0])
        if installed is not None:
            return installed(args[1:])
    with contextlib.suppress(locale.Error):
        locale.setlocale(locale.LC_TIME, "")  # times as the user's locale writes them
    parser = build_parser()
    options = parser.parse_args(args)
    server, directory = getattr(options, "server", None), getattr(options, "directory", None)
    if server and directory:
        parser.error("give --server or --directory, not both")
    if not server and not directory:
        directory = os.environ.get(DIRECTORY_ENV) or None
        server = None if directory else os.environ.get(SERVER_ENV) or DEFAULT_SERVER
    options.server, options.directory = server, directory
    options.directory_key = (
        getattr(options, "directory_key", None) or os.environ.get(DIRECTORY_KEY_ENV) or None
    )
    if options.directory_key is not None and not is_directory_key(options.directory_key):
        parser.error("--directory-key: a directory key is 32 bytes in base64url")
    options.profile = getattr(options, "profile", None) or os.environ.get(PROFILE_ENV)
    if getattr(options, "verbose", False) and options.command != "chat":
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
        )
    if not options.profile:
        print(
            f"messenger: choose a profile with --profile NAME (or set {PROFILE_ENV})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        return COMMANDS[options.command](options)
    except CommandError as error:
        print(f"messenger: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(_interrupted_text(options), file=sys.stderr)
        return EXIT_INTERRUPTED


def _interrupted_text(options: argparse.Namespace) -> str:
    """What Ctrl-C left: the line the command ends with."""
    unsent = _unsent_summary(options.profile)
    if options.command == "send" and getattr(options, "queued", None) is None:
        unsent = f"; the message to {options.peer} was not sent (nothing was queued)" + unsent
    return f"messenger: interrupted{unsent}"


# After Ctrl-C a command closes its client (acks, the socket); if that has not ended
# within this long, it leaves anyway: Ctrl-C always ends a command.
INTERRUPT_GRACE_SECONDS = 5.0


def _leave_if_still_running(options: argparse.Namespace) -> None:
    """Arm the grace period: past it, say what was left and exit at once."""

    def leave() -> None:
        print(_interrupted_text(options), file=sys.stderr, flush=True)
        os._exit(EXIT_INTERRUPTED)

    timer = threading.Timer(INTERRUPT_GRACE_SECONDS, leave)
    timer.daemon = True
    timer.start()


# --- commands ------------------------------------------------------------------------------


def init_command(options: argparse.Namespace) -> int:
    if options.link and not options.user:
        raise CommandError("--link needs --user: the user id this device joins", EXIT_USAGE)
    if options.device and not options.link:
        raise CommandError("--device goes with --link", EXIT_USAGE)
    device_id = (options.device or options.profile.lower()) if options.link else PRIMARY_DEVICE_ID
    if device_id == PRIMARY_DEVICE_ID and options.link:
        raise CommandError("device 1 is the account's own device: choose --device", EXIT_USAGE)
    try:
        profile = Profile.create(options.profile, options.user, device_id=device_id)
    except (MessengerError, ValueError) as error:
        raise CommandError(str(error)) from None
    if options.directory_key is not None:
        store = HistoryStore(profile.history_path, profile.user_id)
        try:
            store.set_meta(DIRECTORY_PUBLIC_KEY, options.directory_key)
        finally:
            store.close()
    if options.link:
        code = link_code(profile.identity)
        print(
            f"created profile {options.profile!r} as device {device_id!r} of user "
            f"{profile.user_id!r} in {profile.directory}"
        )
        print(f"on {profile.user_id}'s device 1, scan this QR code or run:")
        print(f"  messenger --profile <device 1's profile> devices link {code}")
        print()
        print(qr_text(code))
        print(code)
        print()
        print(
            f"once it is linked, this profile works as {profile.user_id} "
            f"(`messenger --profile {options.profile} read`, `chat`, `devices`)"
        )
        return EXIT_OK
    print(
        f"created profile {options.profile!r} for user {profile.user_id!r} in {profile.directory}"
    )
    print(f"your safety number: {profile.identity.fingerprint()}")
    print("the user id is registered on the first connection (send, read or chat)")
    return EXIT_OK


def devices_command(options: argparse.Namespace) -> int:
    if options.change is not None and not options.target:
        what = "a link code" if options.change == "link" else "a device id"
        raise CommandError(f"devices {options.change} needs {what}", EXIT_USAGE)

    async def devices(client: MessengerClient) -> int:
        if options.change == "link":
            listing = await client.link_device(options.target)
            print(f"linked; {client.user_id} now has {len(listing.devices)} devices")
        elif options.change == "remove":
            listing = await client.remove_device(options.target)
            print(f"removed {options.target}; it can no longer connect as {client.user_id}")
        else:
            listing = await client.devices()
        for device in listing.devices:
            here = "  (this device)" if device.device_id == client.device_id else ""
            account = "  (account key)" if device.is_primary else ""
            print(f"{device.device_id}{account}{here}")
        return EXIT_OK

    return _with_client(options, devices, wait_online=True)


def send_command(options: argparse.Namespace) -> int:
    text = sys.stdin.read().rstrip("\n") if options.text == "-" else options.text
    if not text.strip():
        raise CommandError("nothing to send: the text is empty", EXIT_USAGE)

    async def send(client: MessengerClient) -> int:
        message = await client.send(options.peer, text)
        options.queued = message.message_id  # Ctrl-C from here on: it waits in the outbox
        try:
            await client.wait_sent(message.message_id, options.timeout)
        except TimeoutError:
            raise CommandError(
                f"the server did not acknowledge the message within {options.timeout:g}s; "
                "it stays queued and is sent again the next time this profile connects",
                EXIT_NO_CONNECTION,
            ) from None
        print(f"sent to {options.peer} ✓ ({message.message_id})")
        await _settle_resends(client, options.timeout)
        return EXIT_OK

    return _with_client(options, send)


def read_command(options: argparse.Namespace) -> int:
    async def read(client: MessengerClient) -> int:
        async with client.events() as events:
            await client.wait_synced(options.timeout)
            shown = 0
            show = functools.partial(_print_incoming, as_json=options.json)
            for event in events.drain():
                if not isinstance(event, MessageRejected):  # summed up below
                    shown += show(event)
            shown += _print_held(client)
            if not shown and not options.watch and sys.stdout.isatty():
                print("no new messages")
            if options.watch:
                await _until_interrupted(_keep_printing(events, show))
            if options.seen:
                for conversation in client.conversations():
                    if conversation.unread:
                        await client.mark_seen(conversation.peer)
        await _settle_resends(client, options.timeout)
        return EXIT_OK

    return _with_client(options, read)


async def _settle_resends(client: MessengerClient, timeout: float) -> None:
    """A one-shot command waits, up to `timeout`, for the messages its connection sent
    again after a failover and for its `seen` marks' answers (docs/protocol.md §7), and
    says on stderr what it resent and what it leaves for the next run."""
    report = await client.wait_resends(timeout)
    if report.resent:
        print(
            f"sent {report.resent} messages again after a failover:"
            f" {report.resent - report.left} answered",
            file=sys.stderr,
        )
    if report.left or report.seen_marks_left:
        print(
            f"{report.left} messages sent again and {report.seen_marks_left} seen marks not"
            f" answered within {timeout:g}s: left for the next run",
            file=sys.stderr,
        )
    if report.kept:
        print(
            f"{report.kept} messages refused UNKNOWN_RECIPIENT after the recipient's cell"
            " failed over: kept, and tried again by the next runs for up to a day",
            file=sys.stderr,
        )


async def _keep_printing(events: EventStream, show: Callable[[Event], object]) -> None:
    async for event in events:
        show(event)


def _print_incoming(event: Event, as_json: bool = False) -> int:
    """Print what a reader should see of `event`; the number of messages shown (0 or 1)."""
    if isinstance(event, MessageAdded) and event.message.status != MessageStatus.PENDING:
        # Ours only when another of our devices sent it (§8): "me → peer".
        message = event.message
        who = f"{message.sender} → {message.peer}" if message.outgoing else message.sender
        if as_json:
            print(_message_json(message), flush=True)
        else:
            print(f"{_time(message.sent_at)}  {who}: {message.text}", flush=True)
        return 1
    if isinstance(event, ConnectionChanged) and event.status.state == ConnectionState.OFFLINE:
        print(
            f"messenger: offline ({event.status.error}); reconnecting", file=sys.stderr, flush=True
        )
    elif isinstance(event, ConnectionChanged) and event.status.state == ConnectionState.REPLACED:
        print(
            f"messenger: opened elsewhere ({event.status.error}); not reconnecting",
            file=sys.stderr,
            flush=True,
        )
    elif isinstance(event, ConnectionChanged) and event.status.state == ConnectionState.REMOVED:
        print(f"messenger: {event.status.error}; not reconnecting", file=sys.stderr, flush=True)
    elif isinstance(event, MessageRejected):
        rejection = event.rejection
        because = rejection.held_because or HoldReason.UNREADABLE
        print(
            f"messenger: {held_notice(rejection.sender, 1, because)}", file=sys.stderr, flush=True
        )
        print(f"  why: {rejection.reason}", file=sys.stderr, flush=True)
    return 0


def _print_held(client: MessengerClient, sender: str | None = None) -> int:
    """Say, per sender and reason, how many messages are held (`sender`'s only, if given);
    how many are."""
    held = client.held(sender)
    for notice in held_notices(held):
        print(f"messenger: {notice}", file=sys.stderr, flush=True)
    return len(held)


def presence_command(options: argparse.Namespace) -> int:
    async def presence(client: MessengerClient) -> int:
        async with client.events() as events:
            line = _presence_json if options.json else _presence_line
            for user in await client.get_presence(options.users, subscribe=options.watch):
                print(line(user), flush=True)
            if options.watch:
                watched = set(options.users)

                def show(event: Event) -> None:
                    if isinstance(event, PresenceChanged) and event.presence.user_id in watched:
                        print(line(event.presence), flush=True)

                await _until_interrupted(_keep_printing(events, show))
        return EXIT_OK

    return _with_client(options, presence, wait_online=True)


def block_command(options: argparse.Namespace) -> int:
    return _edit_blocked(options, blocking=True)


def unblock_command(options: argparse.Namespace) -> int:
    return _edit_blocked(options, blocking=False)


def _edit_blocked(options: argparse.Namespace, *, blocking: bool) -> int:
    """Block (or unblock) the users named (docs/protocol.md §2 setBlocked)."""

    async def edit(client: MessengerClient) -> int:
        if blocking:
            count = await client.set_blocked(add=options.users)
        else:
            count = await client.set_blocked(remove=options.users)
        done = "blocked" if blocking else "unblocked"
        print(f"{done} {', '.join(options.users)} ({_users(count)} blocked in all)")
        return EXIT_OK

    return _with_client(options, edit, wait_online=True)


def blocked_command(options: argparse.Namespace) -> int:
    async def blocked(client: MessengerClient) -> int:
        settings = await client.get_settings()
        if not settings.blocked and sys.stdout.isatty():
            print("you block no one", file=sys.stderr)
        for user_id in settings.blocked:
            print(user_id)
        return EXIT_OK

    return _with_client(options, blocked, wait_online=True)


def _users(count: int) -> str:
    return f"{count} user" if count == 1 else f"{count} users"


def visibility_command(options: argparse.Namespace) -> int:
    async def visibility(client: MessengerClient) -> int:
        if options.choice is not None:
            await client.set_presence_visibility(PresenceVisibility(options.choice))
        print(_visibility_text(await _read_visibility(client)))
        return EXIT_OK

    return _with_client(options, visibility, wait_online=True)


async def _read_visibility(client: MessengerClient) -> tuple[str, list[str] | None]:
    """Who may see our presence, as the server holds it (getSettings, docs/protocol.md §2):
    the same on every device of the user."""
    settings = await client.get_settings()
    return settings.visibility.value, list(settings.contacts)


def _visibility_text(setting: tuple[str, list[str] | None]) -> str:
    visibility, contacts = setting
    if visibility == PresenceVisibility.EVERYONE:
        return "your presence is shown to everyone"
    if visibility == PresenceVisibility.NOBODY:
        return "your presence is shown to nobody"
    names = ", ".join(contacts or []) or "no one yet"
    return (
        f"your presence is shown to your contacts only: the people you wrote to ({names});"
        " `messenger visibility everyone` shows it to all"
    )


def history_command(options: argparse.Namespace) -> int:
    profile = _load_profile(options)
    store = HistoryStore(profile.history_path, profile.user_id)
    try:
        for message in store.history(options.peer, options.limit):
            print(_message_json(message) if options.json else _history_line(message))
    finally:
        store.close()
    return EXIT_OK


def fingerprint_command(options: argparse.Namespace) -> int:
    profile = _load_profile(options)
    if options.peer is None and profile.identity.is_primary:
        print(f"{profile.user_id}  {profile.identity.fingerprint()}  (yours)")
        return EXIT_OK
    if options.peer is None:
        # A linked device shows the account key's number (§8: linking is no key change).
        account = profile.pins.get(profile.user_id)
        if account is None:
            raise CommandError("connect once (e.g. `read`) to learn your account key", EXIT_FAILED)
        print(f"{profile.user_id}  {account.fingerprint()}  (yours: the account key)")
        return EXIT_OK

    async def check(client: MessengerClient) -> int:
        try:
            await client.wait_online(options.timeout)
            keys = await client.peer_keys(options.peer)
        except NotConnected as error:
            pinned = profile.pins.get(options.peer)
            if pinned is None:
                raise
            print(
                f"{options.peer}  {pinned.fingerprint()}  (pinned; not checked with the "
                f"server: {error})"
            )
            return EXIT_OK
        print(f"{options.peer}  {keys.fingerprint()}")
        print(f"compare it with what {options.peer} sees with `messenger fingerprint`")
        return EXIT_OK

    return _with_client(options, check, wait_online=False)


def trust_command(options: argparse.Namespace) -> int:
    async def trust(client: MessengerClient) -> int:
        async with client.events() as events:
            try:
                keys = await client.trust(options.peer, options.fingerprint)
            except ValueError as error:
                raise CommandError(str(error), EXIT_KEY_CHANGED) from None
            print(f"trusted the keys of {options.peer}: {keys.fingerprint()}")
            opened = [e for e in events.drain() if isinstance(e, MessageAdded)]
        if opened:
            print(f"{len(opened)} held message(s) from {options.peer}, now verified:")
            for event in opened:
                print(_history_line(event.message))
        # What the trusted keys did not open either is said to be unreadable.
        _print_held(client, options.peer)
        return EXIT_OK

    return _with_client(options, trust, wait_online=True)


def chat_command(options: argparse.Namespace) -> int:
    from messenger_client.chat import run_chat

    profile = _load_profile(options)

    async def chat() -> int:
        return await run_chat(_new_client(options, profile), options.peer)

    return asyncio.run(chat())


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "init": init_command,
    "send": send_command,
    "read": read_command,
    "presence": presence_command,
    "history": history_command,
    "fingerprint": fingerprint_command,
    "trust": trust_command,
    "block": block_command,
    "unblock": unblock_command,
    "blocked": blocked_command,
    "chat": chat_command,
    "visibility": visibility_command,
    "devices": devices_command,
}


# --- helpers ------------------------------------------------------------------------------


def _unsent_summary(profile_name: str) -> str:
    """What Ctrl-C left unsent: the profile's messages the server has not stored yet."""
    try:
        profile = Profile.load(profile_name)
        store = HistoryStore(profile.history_path, profile.user_id)
    except (MessengerError, ValueError, OSError):
        return ""
    try:
        pending = store.pending_count()
    finally:
        store.close()
    if not pending:
        return ""
    messages = "1 message" if pending == 1 else f"{pending} messages"
    return (
        f"; {messages} not stored by the server yet (not sent): kept in the outbox, they go"
        " with this profile's next connection"
    )


def installed_command(name: str) -> Callable[[list[str]], int] | None:
    """The `main(argv)` another package registered as `messenger NAME`, if any."""
    for entry_point in entry_points(group=COMMAND_GROUP, name=name):
        command: Callable[[list[str]], int] = entry_point.load()
        return command
    return None


def _load_profile(options: argparse.Namespace) -> Profile:
    try:
        return Profile.load(options.profile)
    except (MessengerError, ValueError) as error:
        raise CommandError(str(error)) from None


def _new_client(options: argparse.Namespace, profile: Profile) -> MessengerClient:
    """The profile's client on the server, or on its home cell from the directory.

    A one-shot command fetches a newer directory a `dv` names at once (docs/protocol.md
    §6 "unless it needs it at once"): it must know before it exits whether a failover
    moved what it sent; `chat` waits the usual random spread."""
    settings = ClientSettings()
    if options.command != "chat":
        settings = dataclasses.replace(settings, directory_jitter=0.0)
    return MessengerClient(
        options.server,
        profile,
        directory_url=options.directory,
        directory_key=options.directory_key,
        settings=settings,
    )


def _where(options: argparse.Namespace) -> str:
    return options.server or f"the directory {options.directory}"


def _with_client(
    options: argparse.Namespace,
    work: Callable[[MessengerClient], Awaitable[int]],
    wait_online: bool = True,
) -> int:
    """Run `work` with a started client, mapping the SDK's errors to exit codes."""
    profile = _load_profile(options)
    interrupted = threading.Event()

    async def run() -> int:
        main = asyncio.current_task()
        assert main is not None

        def on_interrupt() -> None:
            # As asyncio.run does (cancel the command), and whatever swallows the cancel
            # (Python 3.11's wait_for can), the grace period still ends the command.
            if not interrupted.is_set():
                interrupted.set()
                _leave_if_still_running(options)
                main.cancel()

        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, on_interrupt)
        async with _new_client(options, profile) as client:
            if wait_online:
                await client.wait_online(getattr(options, "timeout", 15.0))
            return await work(client)

    try:
        return asyncio.run(run())
    except asyncio.CancelledError:
        if interrupted.is_set():
            raise KeyboardInterrupt from None
        raise
    except HandshakeRefused as error:
        raise CommandError(f"{_where(options)}: {error}", EXIT_NO_CONNECTION) from None
    except NotConnected as error:
        raise CommandError(str(error), EXIT_NO_CONNECTION) from None
    except UnknownUser as error:
        raise CommandError(
            f"{error.user_id!r} is not a user on {_where(options)}", EXIT_UNKNOWN_USER
        ) from None
    except KeyChanged as error:
        raise CommandError(f"WARNING: {error}", EXIT_KEY_CHANGED) from None
    except (MessengerError, ValueError) as error:
        raise CommandError(str(error)) from None


async def _until_interrupted(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` until Ctrl-C (or SIGTERM), then let the client close cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    task = loop.create_task(work)
    try:
        await stop.wait()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _time(epoch_ms: int) -> str:
    """A local time as the user's locale writes it (LC_TIME); ISO 8601 without one."""
    moment = datetime.fromtimestamp(epoch_ms / 1000)
    if locale.setlocale(locale.LC_TIME).split(".")[0] in ("C", "POSIX"):
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.strftime("%x %X")


def _presence_line(presence: Presence) -> str:
    if presence.online:
        return f"{presence.user_id}  online"
    if presence.hidden or presence.last_seen is None:
        return f"{presence.user_id}  not shown ({presence.hidden_reason()})"
    return f"{presence.user_id}  offline, last seen {_time(presence.last_seen)}"


def _message_json(message: StoredMessage) -> str:
    """One message for scripts: a JSON object on one line (times in ms since the epoch)."""
    return json.dumps(
        {
            "peer": message.peer,
            "from": message.sender,
            "messageId": message.message_id,
            "text": message.text,
            "sentAt": message.sent_at,
            "outgoing": message.outgoing,
            "status": message.status.value,
            **({"error": message.error} if message.error else {}),
        },
        ensure_ascii=False,
    )


def _presence_json(presence: Presence) -> str:
    return json.dumps(
        {
            "userId": presence.user_id,
            "online": presence.online,
            "lastSeen": presence.last_seen,
            "shown": not presence.hidden,
        }
    )


def _history_line(message: StoredMessage) -> str:
    line = f"{_time(message.sent_at)}  {message.sender}: {message.text}"
    if message.outgoing:
        line += f"  {STATUS_MARKS.get(message.status, message.status.value)}"
        if message.status == MessageStatus.FAILED and message.error:
            line += f" ({message.error})"
    return line


if __name__ == "__main__":
    sys.exit(main())
