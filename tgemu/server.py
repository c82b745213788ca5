"""The strict Bot API server: one bot token, private chats, long polling or a webhook URL."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import re
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from aiohttp import web

from tgemu.control import Control
from tgemu.errors import (
    BLOCKED,
    CALLBACK_ANSWER_LIMIT,
    CANT_INITIATE,
    CAPTION_LIMIT,
    NOT_MODIFIED,
    QUERY_TOO_OLD,
    TEXT_LIMIT,
    ApiError,
    bad_request,
)
from tgemu.params import Markup, Params, formatted, inline_only, markup_of
from tgemu.state import CallbackAnswer, Chat, ChatMessage, Query, StoredFile
from tgemu.users import TelegramUser
from tgemu.webhook import WebhookRelay

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")


# Telegram's default for setWebhook's max_connections: at most this many webhook posts are under way at once.
WEBHOOK_CONNECTIONS = 40

# Called with "sent", "edited", "deleted" (the message itself) or "answered" (the message whose button was tapped).
MessageListener = Callable[[str, ChatMessage], None]


class BotApiEmulator:
    """A strict, in-process Telegram Bot API server for one bot token."""

    _serving: ClassVar[list[BotApiEmulator]] = []

    def __init__(
        self,
        token: str = "123456:TEST",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] = time.time,
        global_per_second: float | None = 30.0,
        chat_burst: int = 20,
        chat_per_second: float | None = 1.0,
        callback_timeout: float = 15.0,
        quiet: float = 0.05,
        action_timeout: float = 10.0,
        bot_username: str = "bookingbot_test_bot",
        bot_name: str = "Booking Bot",
        latency: float = 0.0,
    ) -> None:
        self.token = token
        # Seconds each Bot API answer is held back, as the network to Telegram's servers would: a bot whose
        # calls wait on each other shows it here, where a loopback round trip of a tenth of a millisecond hides it.
        self.latency = latency
        self.host = host
        self.port = port
        self.clock = clock
        self.global_per_second = global_per_second
        self.chat_burst = chat_burst
        self.chat_per_second = chat_per_second
        self.callback_timeout = callback_timeout
        self.quiet = quiet
        self.action_timeout = action_timeout
        self.bot = {
            "id": int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 1,
            "is_bot": True,
            "first_name": bot_name,
            "username": bot_username,
        }
        self.requests: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.webhook_url = ""
        self.webhook_secret = ""
        self.webhook_connections = WEBHOOK_CONNECTIONS  # setWebhook's max_connections: posts under way at once
        self.relay = WebhookRelay(self)
        self.listeners: list[MessageListener] = []
        self.control = Control(self)
        self._skew = 0.0
        self._chats: dict[int, Chat] = {}
        self._users: dict[int, TelegramUser] = {}
        self._files: dict[str, StoredFile] = {}
        self._queries: dict[str, Query] = {}
        self._updates: deque[tuple[int, dict[str, Any]]] = deque()
        self._last_update_id = 0
        self._fetched_upto = 0
        self._allowed_updates: list[str] = []
        self._sends: deque[float] = deque()
        self._poll_generation = 0
        self._in_flight = 0
        self._last_activity = 0.0
        self._wakeup = asyncio.Event()
        self._changed = asyncio.Event()
        self._closing = False
        self._queues: list[asyncio.Queue[Any]] = []
        self._floods: dict[int, tuple[int, float | None]] = {}  # chat -> (retry_after, until or None)
        self.flooded: Counter[int] = Counter()  # chat -> calls answered 429 by flood()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._methods: dict[str, tuple[str, Callable[[Params], Awaitable[Any]]]] = {
            name.lower(): (name, handler)
            for name, handler in {
                "getMe": self._get_me,
                "getUpdates": self._get_updates,
                "deleteWebhook": self._delete_webhook,
                "setWebhook": self._set_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "sendMessage": self._send_message,
                "editMessageText": self._edit_message_text,
                "editMessageCaption": self._edit_message_caption,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "deleteMessage": self._delete_message,
                "answerCallbackQuery": self._answer_callback_query,
                "sendDocument": self._send_document,
                "getFile": self._get_file,
                "sendChatAction": self._send_chat_action,
                "getChat": self._get_chat,
                "close": self._true,
                "logOut": self._true,
            }.items()
        }

    # lifecycle

    @property
    def base_url(self) -> str:
        """What to pass to ApplicationBuilder().base_url(); PTB appends the token and method."""
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        """What to pass to ApplicationBuilder().base_file_url()."""
        return f"http://{self.host}:{self.port}/file/bot"

    async def start(self) -> None:
        """Listen on the configured loopback port (a free one if 0)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes(self.control.routes())
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # Cancel a long poll when PTB drops its connection, so stop() never waits on it.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]  # the port actually bound when 0 was asked for
        self._closing = False
        self._last_activity = asyncio.get_running_loop().time()
        BotApiEmulator._serving.append(self)

    async def stop(self) -> None:
        """End pending long polls and close the server."""
        self._closing = True
        self._wake()
        if self in BotApiEmulator._serving:
            BotApiEmulator._serving.remove(self)
        await self.relay.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> BotApiEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @classmethod
    def serving(cls, bot_base_url: str) -> BotApiEmulator | None:
        """The running emulator a PTB Bot with this (token-expanded) base_url talks to, if any."""
        for emulator in cls._serving:
            if bot_base_url == f"{emulator.base_url}{emulator.token}":
                return emulator
        return None

    # clock

    def now(self) -> float:
        """The emulator's clock (epoch seconds), including any advance()."""
        return self.clock() + self._skew

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward, e.g. to let callback queries expire."""
        self._skew += seconds

    # users and chats

    def user(
        self,
        user_id: int,
        first_name: str,
        language_code: str = "en",
        last_name: str | None = None,
        username: str | None = None,
    ) -> TelegramUser:
        """The scripted Telegram user with this id (created on first use)."""
        if user_id in self._users:
            return self._users[user_id]
        profile: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if last_name:
            profile["last_name"] = last_name
        if username:
            profile["username"] = username
        profile["language_code"] = language_code
        self._chats[user_id] = Chat(user=profile, tokens=float(self.chat_burst), refilled=self.now())
        self._users[user_id] = TelegramUser(self, user_id)
        return self._users[user_id]

    def chat(self, chat_id: int) -> list[ChatMessage]:
        """Every live message in a chat, both directions, in order."""
        return [m for m in self._chats[chat_id].messages if not m.deleted]

    def track(self, application: Any) -> None:
        """Count a PTB Application's update processing as busy in wait_idle."""
        queue = application.update_queue
        if queue not in self._queues:
            self._queues.append(queue)

    def untrack(self, application: Any) -> None:
        """Stop tracking an Application."""
        with contextlib.suppress(ValueError):
            self._queues.remove(application.update_queue)

    # updates

    def push_update(self, kind: str, payload: dict[str, Any]) -> int:
        """Queue an update for getUpdates, or post it to the relay's targets; its update_id, 0 if filtered out."""
        if self._allowed_updates and kind not in self._allowed_updates:
            return 0
        self._last_update_id += 1
        update = {"update_id": self._last_update_id, kind: payload}
        if self.webhook_url and self.relay.targets:
            self._fetched_upto = max(self._fetched_upto, self._last_update_id)
            self.relay.deliver(update)
        else:
            self._updates.append((self._last_update_id, update))
            self._wake()
        return self._last_update_id

    # flood control

    def flood(self, chat_id: int, retry_after: int = 1, seconds: float | None = None) -> None:
        """Answer every call for this chat with 429 and this retry_after, for `seconds` or until calm()."""
        self._floods[chat_id] = (retry_after, None if seconds is None else self.now() + seconds)

    def calm(self, chat_id: int) -> None:
        """End a flood() for this chat."""
        self._floods.pop(chat_id, None)

    def _check_chat_flood(self, params: Params) -> None:
        try:
            chat_id = int(str(params.raw("chat_id")))
        except ValueError:
            return
        flood = self._floods.get(chat_id)
        if flood is None:
            return
        retry_after, until = flood
        if until is not None and self.now() >= until:
            del self._floods[chat_id]
            return
        self.flooded[chat_id] += 1
        raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)

    def fetched(self, update_id: int) -> bool:
        """Whether the bot has received this update."""
        return update_id <= self._fetched_upto

    @property
    def pending_updates(self) -> int:
        """Updates queued but not yet delivered to the bot."""
        return sum(1 for update_id, _ in self._updates if update_id > self._fetched_upto)

    def _wake(self) -> None:
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    def _touch(self) -> None:
        self._last_activity = asyncio.get_running_loop().time()
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_idle(self, quiet: float = 0.05, timeout: float = 10.0) -> None:  # noqa: ASYNC109 (part of the test-facing API)
        """Return once every queued update was fetched and processed and the API was quiet for `quiet` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"Bot API emulator not idle after {timeout}s: {self.pending_updates} updates not "
                    f"fetched, {self._in_flight} calls in flight"
                )
            try:
                for queue in list(self._queues):
                    await asyncio.wait_for(queue.join(), remaining)
            except TimeoutError:
                continue
            since = loop.time() - self._last_activity
            if self.pending_updates == 0 and self._in_flight == 0 and since >= quiet:
                return
            await asyncio.sleep(max(min(quiet - since, remaining), 0.005))

    async def wait_changed(self, timeout: float) -> None:  # noqa: ASYNC109 (part of the test-facing API)
        """Wait until any API call changes state or timeout passes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    # HTTP

    async def _dispatch(self, request: web.Request) -> web.Response:
        path = request.path
        if path.startswith("/file/bot"):
            return self._serve_file(path.removeprefix("/file/bot"))
        match = re.fullmatch(r"/bot([^/]*)/([A-Za-z]+)", path)
        if match is None:
            return _error_response(ApiError(404, "Not Found"))
        if match.group(1) != self.token:
            return _error_response(ApiError(401, "Unauthorized"))
        entry = self._methods.get(match.group(2).lower())
        if entry is None:
            return _error_response(ApiError(404, "Not Found"))
        try:
            values = await _read_params(request)
        except ApiError as error:
            self.requests[entry[0]] += 1
            self.errors[entry[0]] += 1
            return _error_response(error)
        try:
            result = await self.call(entry[0], values)
            response = web.json_response({"ok": True, "result": result})
        except ApiError as error:
            result, response = None, _error_response(error)
        if self.latency:
            await self._hold_back(busy=entry[0] != "getUpdates" or bool(result))
        return response

    async def _hold_back(self, *, busy: bool) -> None:
        """Wait out the latency; an answer on its way still counts as the bot's work under way (wait_idle)."""
        if busy:
            self._in_flight += 1
        try:
            await asyncio.sleep(self.latency)
        finally:
            if busy:
                self._in_flight -= 1
                self._touch()

    async def call(self, method: str, values: dict[str, Any]) -> Any:
        """Run one Bot API method (any letter case) with these parameters; raises ApiError like Telegram answers."""
        entry = self._methods.get(method.lower())
        if entry is None:
            raise ApiError(404, "Not Found")
        name, handler = entry
        self.requests[name] += 1
        busy = name != "getUpdates"
        if busy:
            self._in_flight += 1
            self._touch()
        try:
            params = Params(values)
            if "chat_id" in params:
                self._check_chat_flood(params)
            return await handler(params)
        except ApiError:
            self.errors[name] += 1
            raise
        finally:
            if busy:
                self._in_flight -= 1
                self._touch()

    def begin_delivery(self) -> None:
        """A webhook post is under way: the bot is busy until it is answered."""
        self._in_flight += 1
        self._touch()

    def end_delivery(self) -> None:
        self._in_flight -= 1
        self._touch()

    def _serve_file(self, tail: str) -> web.Response:
        token, _, file_path = tail.partition("/")
        if token != self.token:
            return _error_response(ApiError(401, "Unauthorized"))
        for stored in self._files.values():
            if _file_path(stored) == file_path:
                return web.Response(body=stored.data, content_type=stored.mime_type)
        return _error_response(ApiError(404, "Not Found"))

    # methods

    async def _true(self, params: Params) -> bool:
        return True

    async def _get_me(self, params: Params) -> dict[str, Any]:
        return {
            **self.bot,
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: Params) -> list[dict[str, Any]]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to "
                "delete the webhook first",
            )
        offset = params.int("offset", 0) or 0
        limit = min(max(params.int("limit", 100) or 100, 1), 100)
        timeout = max(params.float("timeout", 0.0), 0.0)
        allowed = params.json("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(kind) for kind in allowed]
        if offset > 0:
            while self._updates and self._updates[0][0] < offset:
                self._updates.popleft()
        elif offset < 0:
            while len(self._updates) > -offset:
                self._updates.popleft()
        # Like Telegram, a newer getUpdates call ends an older one still waiting.
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            batch = [update for _, update in itertools.islice(self._updates, limit)]
            remaining = deadline - loop.time()
            if batch or remaining <= 0 or self._closing:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                )
        if batch:
            self._fetched_upto = max(self._fetched_upto, batch[-1]["update_id"])
            self._touch()
        return batch

    async def _delete_webhook(self, params: Params) -> bool:
        self.webhook_url = ""
        if params.bool("drop_pending_updates"):
            self._updates.clear()
            self._fetched_upto = self._last_update_id
        return True

    async def _set_webhook(self, params: Params) -> bool:
        url = params.str("url") or ""
        if url and not url.startswith("https://"):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook_url = url
        self.webhook_secret = params.str("secret_token") or ""
        connections = params.int("max_connections")
        if connections is not None and not 1 <= connections <= 100:
            raise bad_request("bad webhook: max_connections must be between 1 and 100")
        self.webhook_connections = connections or WEBHOOK_CONNECTIONS
        allowed = params.json("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(kind) for kind in allowed]
        if params.bool("drop_pending_updates"):
            self._updates.clear()
            self._fetched_upto = self._last_update_id
        return True

    async def _get_webhook_info(self, params: Params) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": self.pending_updates,
        }
        if self._allowed_updates:
            info["allowed_updates"] = self._allowed_updates
        return info

    def _commands_key(self, params: Params) -> tuple[str, str]:
        scope = params.json("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), params.str("language_code") or ""

    async def _set_my_commands(self, params: Params) -> bool:
        commands = params.json("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND_NAME.fullmatch(str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise bad_request("command description is empty")
        self.commands[self._commands_key(params)] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _get_my_commands(self, params: Params) -> list[dict[str, str]]:
        return self.commands.get(self._commands_key(params), [])

    async def _delete_my_commands(self, params: Params) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    def _target_chat(self, params: Params) -> Chat:
        """The private chat a send goes to, refusing chats the user never started."""
        if "chat_id" not in params:
            raise bad_request("chat_id is empty")
        try:
            chat_id = int(str(params.raw("chat_id")))
        except ValueError:
            raise bad_request("chat not found") from None
        chat = self._chats.get(chat_id)
        if chat_id <= 0:
            raise bad_request("chat not found")
        if chat is None or not chat.started:
            raise ApiError(403, CANT_INITIATE)
        if chat.blocked:
            raise ApiError(403, BLOCKED)
        return chat

    def _known_chat(self, params: Params) -> Chat:
        chat_id = params.int("chat_id")
        if chat_id is None:
            raise bad_request("chat_id is empty")
        chat = self._chats.get(chat_id)
        if chat is None:
            raise bad_request("chat not found")
        return chat

    def _check_flood(self, chat: Chat) -> None:
        now = self.now()
        while self._sends and self._sends[0] <= now - 1:
            self._sends.popleft()
        retry = 0.0
        if self.global_per_second and len(self._sends) >= self.global_per_second:
            retry = self._sends[0] + 1 - now
        if self.chat_per_second:
            chat.tokens = min(float(self.chat_burst), chat.tokens + (now - chat.refilled) * self.chat_per_second)
            chat.refilled = now
            if chat.tokens < 1:
                retry = max(retry, (1 - chat.tokens) / self.chat_per_second)
        if retry > 0:
            seconds = max(math.ceil(retry), 1)
            raise ApiError(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds)
        self._sends.append(now)
        chat.tokens -= 1

    def _deliver(self, chat: Chat, message: ChatMessage, markup: Markup) -> dict[str, Any]:
        if markup.keyboard is not None:
            message.reply_keyboard = markup.keyboard
            chat.reply_keyboard = markup.keyboard
            chat.one_time_keyboard = markup.one_time
        elif markup.remove:
            chat.reply_keyboard = None
        chat.messages.append(message)
        self._notify("sent", message)
        return self.message_api(message)

    def _notify(self, event: str, message: ChatMessage) -> None:
        for listener in list(self.listeners):
            listener(event, message)

    def _send(
        self,
        chat: Chat,
        params: Params,
        text: str,
        entities: list[dict[str, Any]],
        document: StoredFile | None = None,
    ) -> dict[str, Any]:
        """A new bot message in the chat, after the flood limit had its say."""
        markup = markup_of(params)
        self._check_flood(chat)
        message = ChatMessage(
            message_id=chat.next_id(),
            chat_id=chat.user["id"],
            from_bot=True,
            date=int(self.now()),
            text=text,
            entities=entities,
            inline_keyboard=markup.inline,
            document=document,
        )
        return self._deliver(chat, message, markup)

    async def _send_message(self, params: Params) -> dict[str, Any]:
        chat = self._target_chat(params)
        text, entities = formatted(params, "text", "entities")
        if not text:
            raise bad_request("message text is empty")
        if len(text) > TEXT_LIMIT:
            raise bad_request("message is too long")
        return self._send(chat, params, text, entities)

    async def _send_document(self, params: Params) -> dict[str, Any]:
        chat = self._target_chat(params)
        document = params.raw("document")
        if document is None or document == "":
            raise bad_request("there is no document in the request")
        if isinstance(document, str):
            stored = self._files.get(document)
            if stored is None:
                raise bad_request("wrong file identifier/HTTP URL specified")
        else:
            data = document.file.read()
            if not data:
                raise bad_request("file must be non-empty")
            number = next(self._ids)
            stored = StoredFile(
                file_id=f"BQAC{number:08d}",
                file_unique_id=f"AgAD{number:06d}",
                file_name=document.filename or "document",
                mime_type=document.content_type or "application/octet-stream",
                data=data,
            )
            self._files[stored.file_id] = stored
        caption, entities = formatted(params, "caption", "caption_entities")
        if len(caption) > CAPTION_LIMIT:
            raise bad_request("message caption is too long")
        return self._send(chat, params, caption, entities, document=stored)

    def _editable(self, params: Params) -> tuple[Chat, ChatMessage]:
        if "inline_message_id" in params:
            raise bad_request("MESSAGE_ID_INVALID")
        chat = self._known_chat(params)
        message_id = params.int("message_id")
        if message_id is None:
            raise bad_request("message identifier is not specified")
        message = chat.find(message_id)
        if message is None:
            raise bad_request("message to edit not found")
        if not message.from_bot:
            raise bad_request("message can't be edited")
        return chat, message

    def _edited(self, message: ChatMessage) -> dict[str, Any]:
        message.edit_date = int(self.now())
        self._notify("edited", message)
        return self.message_api(message)

    async def _edit_message_text(self, params: Params) -> dict[str, Any]:
        _, message = self._editable(params)
        if message.document is not None:
            raise bad_request("there is no text in the message to edit")
        text, entities = formatted(params, "text", "entities")
        if not text:
            raise bad_request("message text is empty")
        if len(text) > TEXT_LIMIT:
            raise bad_request("message is too long")
        # Like Telegram, omitting reply_markup removes the inline keyboard.
        keyboard = inline_only(params)
        if (text, entities, keyboard) == (message.text, message.entities, message.inline_keyboard):
            raise ApiError(400, NOT_MODIFIED)
        message.text, message.entities, message.inline_keyboard = text, entities, keyboard
        return self._edited(message)

    async def _edit_message_caption(self, params: Params) -> dict[str, Any]:
        _, message = self._editable(params)
        if message.document is None:
            raise bad_request("there is no caption in the message to edit")
        caption, entities = formatted(params, "caption", "caption_entities")
        if len(caption) > CAPTION_LIMIT:
            raise bad_request("message caption is too long")
        keyboard = inline_only(params)
        if (caption, entities, keyboard) == (message.text, message.entities, message.inline_keyboard):
            raise ApiError(400, NOT_MODIFIED)
        message.text, message.entities, message.inline_keyboard = caption, entities, keyboard
        return self._edited(message)

    async def _edit_message_reply_markup(self, params: Params) -> dict[str, Any]:
        _, message = self._editable(params)
        keyboard = inline_only(params)
        if keyboard == message.inline_keyboard:
            raise ApiError(400, NOT_MODIFIED)
        message.inline_keyboard = keyboard
        return self._edited(message)

    async def _delete_message(self, params: Params) -> bool:
        chat = self._known_chat(params)
        message_id = params.int("message_id")
        message = chat.find(message_id) if message_id is not None else None
        if message is None:
            raise bad_request("message to delete not found")
        message.deleted = True
        self._notify("deleted", message)
        return True

    async def _answer_callback_query(self, params: Params) -> bool:
        query = self._queries.get(params.str("callback_query_id") or "")
        if query is None or query.answered or self.now() - query.created > self.callback_timeout:
            raise ApiError(400, QUERY_TOO_OLD)
        text = params.str("text")
        if text and len(text) > CALLBACK_ANSWER_LIMIT:
            raise bad_request("MESSAGE_TOO_LONG")
        query.answered = True
        chat = self._chats[query.chat_id]
        chat.answers.append(
            CallbackAnswer(data=query.data, text=text, show_alert=params.bool("show_alert"), url=params.str("url"))
        )
        # Watchers waiting for "answered and edited" must hear of the answer too: it may come after the edit.
        message = chat.find(query.message_id)
        if message is not None:
            self._notify("answered", message)
        return True

    async def _get_file(self, params: Params) -> dict[str, Any]:
        stored = self._files.get(params.str("file_id") or "")
        if stored is None:
            raise bad_request("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": _file_path(stored),
        }

    async def _send_chat_action(self, params: Params) -> bool:
        self._target_chat(params)
        if params.str("action") not in _CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    async def _get_chat(self, params: Params) -> dict[str, Any]:
        chat = self._known_chat(params)
        return {
            **chat.api(),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": True,
                "limited_gifts": True,
                "unique_gifts": True,
                "premium_subscription": True,
                "gifts_from_channels": True,
            },
        }

    # API shapes

    def message_api(self, message: ChatMessage) -> dict[str, Any]:
        """The Message object Telegram would return or deliver for this message."""
        chat = self._chats[message.chat_id]
        body: dict[str, Any] = {
            "message_id": message.message_id,
            "from": self.bot if message.from_bot else chat.user,
            "chat": chat.api(),
            "date": message.date,
        }
        if message.edit_date is not None:
            body["edit_date"] = message.edit_date
        if message.document is not None:
            body["document"] = message.document.to_api()
            if message.text:
                body["caption"] = message.text
            if message.entities:
                body["caption_entities"] = message.entities
        elif message.contact is not None:
            body["contact"] = message.contact
        else:
            body["text"] = message.text
            if message.entities:
                body["entities"] = message.entities
        if message.inline_keyboard:
            body["reply_markup"] = {"inline_keyboard": message.inline_keyboard}
        return body


def _file_path(stored: StoredFile) -> str:
    suffix = stored.file_name.rsplit(".", 1)[-1] if "." in stored.file_name else "bin"
    return f"documents/{stored.file_unique_id}.{suffix}"


def _error_response(error: ApiError) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": error.code, "description": error.description}
    if error.retry_after is not None:
        body["parameters"] = {"retry_after": error.retry_after}
    return web.json_response(body, status=error.code)


async def _read_params(request: web.Request) -> dict[str, Any]:
    values: dict[str, Any] = dict(request.query)
    if request.method != "POST" or not request.can_read_body:
        return values
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise bad_request("can't parse JSON object") from None
        if isinstance(body, dict):
            values.update(body)
        return values
    values.update(await request.post())
    return values
