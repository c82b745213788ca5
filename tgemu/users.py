"""Scripted Telegram users: people who send messages, tap buttons and read what the bot shows."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tgemu.entities import utf16_len
from tgemu.state import CallbackAnswer, Chat, ChatMessage, Query

if TYPE_CHECKING:
    from tgemu.server import BotApiEmulator

_BOT_COMMAND = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,64}(@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_@])")


class TelegramUser:
    """A person chatting with the bot: sends messages, taps buttons and reads what the bot shows."""

    def __init__(self, emulator: BotApiEmulator, user_id: int) -> None:
        self.emulator = emulator
        self.id = user_id

    @property
    def _chat(self) -> Chat:
        return self.emulator._chats[self.id]

    @property
    def profile(self) -> dict[str, Any]:
        """The Telegram User object of this person."""
        return self._chat.user

    # reading

    @property
    def messages(self) -> list[ChatMessage]:
        """The bot's messages in this chat, in order, edits applied, deletions left out."""
        return [m for m in self._chat.messages if m.from_bot and not m.deleted]

    @property
    def last(self) -> ChatMessage:
        """The bot's most recent message here."""
        messages = self.messages
        if not messages:
            raise AssertionError(f"the bot has sent nothing to user {self.id}")
        return messages[-1]

    @property
    def documents(self) -> list[tuple[str, bytes]]:
        """Files the bot sent here, as (filename, bytes)."""
        return [(m.document.file_name, m.document.data) for m in self.messages if m.document is not None]

    @property
    def answers(self) -> list[CallbackAnswer]:
        """The bot's answers to this user's button taps, in order."""
        return list(self._chat.answers)

    @property
    def unanswered(self) -> list[str]:
        """Callback data of taps the bot never answered (the button would still be spinning)."""
        return [q.data for q in self.emulator._queries.values() if q.chat_id == self.id and not q.answered]

    @property
    def reply_keyboard(self) -> list[list[str]] | None:
        """Labels of the reply keyboard currently shown under the input field, if any."""
        rows = self._chat.reply_keyboard
        return None if rows is None else [[button["text"] for button in row] for row in rows]

    def block(self) -> None:
        """Block the bot: further sends fail with 403 like on Telegram."""
        self._chat.blocked = True

    async def wait_for(self, predicate: Callable[[TelegramUser], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109 (part of the test-facing API)
        """Wait until predicate(self) holds, e.g. for a message the bot sends later on its own."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            remaining = deadline - loop.time()
            if remaining <= 0:
                last = self.messages[-1].text if self.messages else None
                raise AssertionError(f"condition not met within {timeout}s; last bot message: {last!r}")
            await self.emulator.wait_changed(min(remaining, 0.1))

    # acting

    async def send(self, text: str, *, wait: bool = True) -> ChatMessage:
        """Send a text message; '/command payload' carries a bot_command entity like on Telegram."""
        entities = [
            {"type": "bot_command", "offset": utf16_len(text[: m.start()]), "length": utf16_len(m.group())}
            for m in _BOT_COMMAND.finditer(text)
        ]
        return await self._post(text=text, entities=entities, wait=wait, what=f"message {text!r}")

    async def share_contact(self, phone: str, *, wait: bool = True) -> ChatMessage:
        """Share the own phone number, as Telegram's request_contact button does."""
        contact: dict[str, Any] = {
            "phone_number": phone,
            "first_name": self.profile["first_name"],
            "user_id": self.id,
        }
        if self.profile.get("last_name"):
            contact["last_name"] = self.profile["last_name"]
        return await self._post(contact=contact, wait=wait, what="contact")

    async def tap(self, label: str, *, wait: bool = True) -> None:
        """Tap the inline button with this label (or unique label substring) in the latest keyboard."""
        message = self._latest_keyboard()
        if message is None:
            raise AssertionError(f"no bot message with an inline keyboard; last: {self._last_text()!r}")
        buttons = [button for row in message.inline_keyboard or [] for button in row]
        matches = [b for b in buttons if b["text"] == label] or [b for b in buttons if label in b["text"]]
        if len(matches) != 1:
            problem = "no button" if not matches else f"{len(matches)} buttons"
            raise AssertionError(
                f"{problem} labelled {label!r} in message {message.message_id} ({message.text!r}); "
                f"available: {message.buttons}"
            )
        data = matches[0].get("callback_data")
        if data is None:
            raise AssertionError(f"button {matches[0]['text']!r} has no callback_data: {matches[0]}")
        await self._callback(message, data, wait)

    async def tap_data(self, data: str, message_id: int | None = None, *, wait: bool = True) -> None:
        """Send a callback query with arbitrary (possibly forged) data from a bot message."""
        if message_id is None:
            message = self._latest_keyboard() or (self.messages[-1] if self.messages else None)
        else:
            message = self._chat.find(message_id)
        if message is None or not message.from_bot:
            raise AssertionError(f"no bot message {message_id} to tap in chat {self.id}")
        await self._callback(message, data, wait)

    async def tap_reply(self, label: str, phone: str | None = None, *, wait: bool = True) -> ChatMessage:
        """Press a reply-keyboard button: sends its text, or the contact for a request_contact button."""
        rows = self._chat.reply_keyboard
        if rows is None:
            raise AssertionError(f"no reply keyboard shown; last bot message: {self._last_text()!r}")
        buttons = [button for row in rows for button in row]
        matches = [b for b in buttons if b["text"] == label] or [b for b in buttons if label in b["text"]]
        if len(matches) != 1:
            raise AssertionError(f"no single reply button {label!r}; available: {self.reply_keyboard}")
        if matches[0].get("request_contact") and phone is None:
            raise AssertionError(f"reply button {label!r} shares the contact: pass phone=")
        if self._chat.one_time_keyboard:
            self._chat.reply_keyboard = None
        if matches[0].get("request_contact") and phone is not None:
            return await self.share_contact(phone, wait=wait)
        return await self.send(matches[0]["text"], wait=wait)

    # internals

    def _last_text(self) -> str | None:
        return self.messages[-1].text if self.messages else None

    def _latest_keyboard(self) -> ChatMessage | None:
        return next((m for m in reversed(self.messages) if m.inline_keyboard), None)

    async def _post(self, *, wait: bool, what: str, **content: Any) -> ChatMessage:
        emulator, chat = self.emulator, self._chat
        chat.started = True
        chat.blocked = False
        message = ChatMessage(
            message_id=chat.next_id(),
            chat_id=self.id,
            from_bot=False,
            date=int(emulator.now()),
            text=content.get("text", ""),
            entities=content.get("entities", []),
            contact=content.get("contact"),
        )
        chat.messages.append(message)
        update_id = emulator.push_update("message", emulator.message_api(message))
        if wait:
            await self._settle(update_id, what)
        return message

    async def _callback(self, message: ChatMessage, data: str, wait: bool) -> None:
        emulator = self.emulator
        query_id = str(next(emulator._ids) * 7919 + self.id)
        emulator._queries[query_id] = Query(self.id, message.message_id, data, emulator.now())
        payload = {
            "id": query_id,
            "from": self.profile,
            "message": emulator.message_api(message),
            "chat_instance": str(abs(hash((emulator.token, self.id))) % 10**18),
            "data": data,
        }
        update_id = emulator.push_update("callback_query", payload)
        if wait:
            await self._settle(update_id, f"tap {data!r}")

    async def _settle(self, update_id: int, what: str) -> None:
        emulator = self.emulator
        loop = asyncio.get_running_loop()
        deadline = loop.time() + emulator.action_timeout
        while update_id and not emulator.fetched(update_id):
            if loop.time() >= deadline:
                raise AssertionError(
                    f"the bot never fetched the update for {what} within {emulator.action_timeout}s: "
                    f"is an Application polling {emulator.base_url}?"
                )
            await emulator.wait_changed(0.05)
        try:
            await emulator.wait_idle(emulator.quiet, max(deadline - loop.time(), 0.01))
        except TimeoutError as error:
            raise AssertionError(f"the bot was still busy after {what}: {error}") from None
