"""The interface language is the user's: chosen once (?lang=), remembered on the account,
so it follows them to another browser; others keep the default."""

from __future__ import annotations

import aiohttp

from tests.conftest import Running, make_staff


async def page_lang(r: Running, token: str, query: str = "") -> str:
    # A fresh client each time: no cookie carries the choice, only the account.
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{r.base_url}/staff{query}",
                            headers={"Authorization": f"Bearer {token}"}) as resp:
            body = await resp.text()
    return body.split('<html lang="', 1)[1].split('"', 1)[0]


async def test_the_language_follows_the_user(running: Running) -> None:
    r = running
    assert await page_lang(r, r.token) == "vi"  # the default
    assert await page_lang(r, r.token, "?lang=en") == "en"
    assert await page_lang(r, r.token) == "en"  # remembered on the account
    other = await make_staff(r, "thuky2", "secretary")
    assert await page_lang(r, other) == "vi"  # someone else's choice is their own
    assert await page_lang(r, r.token, "?lang=vi") == "vi"
    assert await page_lang(r, r.token) == "vi"
