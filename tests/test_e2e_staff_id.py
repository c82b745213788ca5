"""/id: anyone learns their Telegram user id, which the practice file needs for a specialist or an admin."""

from __future__ import annotations

from tests.fixtures.bot import ANNA, Bot


async def test_a_specialist_already_in_the_practice_file_is_told_so(bot: Bot) -> None:
    await bot.anna.send("/id")
    assert bot.anna.last.text == (
        f"Your Telegram user id is {ANNA}.\nIt is in the practice file already: requests for you arrive in this chat."
    )


async def test_someone_new_gets_their_id_in_their_language_and_no_client_record(bot: Bot) -> None:
    newcomer = bot.user(7301, "Ewa", lang="pl")
    await newcomer.send("/id")
    assert newcomer.last.text.startswith("Twój identyfikator użytkownika Telegram to 7301.\n")
    assert "telegram_id" in newcomer.last.text
    async with bot.runtime.store.tx() as tx:
        assert await tx.client_by_telegram(7301) is None
