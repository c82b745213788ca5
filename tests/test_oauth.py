"""Sign-in settings and sealed tokens."""

from __future__ import annotations

import pytest

from bot.cli import main
from providers.oauth import TokenRevoked, Tokens, TokenVault, providers_from_env, start_sign_in


def test_token_key_prints_a_usable_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token-key"]) == 0
    name, _, key = capsys.readouterr().out.strip().partition("=")
    assert name == "BOOKINGBOT_TOKEN_KEY"
    vault = TokenVault(key)
    sealed = vault.seal(Tokens("access", "refresh", 1.0))
    assert "refresh" not in sealed and vault.open(sealed) == Tokens("access", "refresh", 1.0)
    with pytest.raises(TokenRevoked):  # another key cannot read it: sign in again, never a crash
        TokenVault(TokenVault.new_key()).open(sealed)


def test_providers_come_from_the_environment_only_when_set_up() -> None:
    assert providers_from_env({}) == {}
    found = providers_from_env({"BOOKINGBOT_MICROSOFT_CLIENT_ID": "abc", "BOOKINGBOT_MICROSOFT_TENANT": "contoso"})
    assert list(found) == ["microsoft"]
    assert found["microsoft"].token_url == "https://login.microsoftonline.com/contoso/oauth2/v2.0/token"
    with pytest.raises(ValueError, match="BOOKINGBOT_TOKEN_KEY"):
        TokenVault.from_env({"BOOKINGBOT_TOKEN_KEY": "not a key"})


def test_the_sign_in_link_asks_for_offline_access_with_pkce() -> None:
    google = providers_from_env({"BOOKINGBOT_GOOGLE_CLIENT_ID": "cid"})["google"]
    link = start_sign_in(google, "http://127.0.0.1:53682/")
    assert link.url.startswith("https://accounts.google.com/o/oauth2/v2/auth?response_type=code&client_id=cid")
    assert "code_challenge_method=S256" in link.url and "access_type=offline" in link.url
    assert link.verifier not in link.url and link.state in link.url
