"""The WeChat official account endpoint, driven the way WeChat's servers drive it: signed
query strings, XML in plain and safe mode (built and encrypted with wechatpy, an
independent implementation of WeChat's protocol), retries of the same message."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from services.channels.models import wechat_messages
from tests.unit.channels.conftest import Platform, eventually

TOKEN = "hotline12345"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APP_ID = "wx1234567890abcdef"
OFFICIAL = "gh_3f1a2b4c5d6e"
FOLLOWER = "oX7k2s9dLq3mN0pR4tV6wY8zA1bC"


def wechat_signature(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature  # type: ignore[no-any-return]


def text_xml(
    content: str, msg_id: str, *, sender: str = FOLLOWER, created: int = 1772413200
) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{OFFICIAL}]]></ToUserName>"
        f"<FromUserName><![CDATA[{sender}]]></FromUserName><CreateTime>{created}</CreateTime>"
        f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>"
        f"<MsgId>{msg_id}</MsgId></xml>"
    )


def event_xml(event: str, *, created: int = 1772413100) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{OFFICIAL}]]></ToUserName>"
        f"<FromUserName><![CDATA[{FOLLOWER}]]></FromUserName><CreateTime>{created}</CreateTime>"
        f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event></xml>"
    )


class WeChatServer:
    """Posts to the account's server URL as WeChat does."""

    def __init__(self, platform: Platform, account: dict[str, Any], *, safe: bool = False):
        self.platform, self.path, self.safe = platform, account["wechat_server_path"], safe
        self.crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
        self.nonce_seq = 0

    async def post(self, xml: str) -> httpx.Response:
        self.nonce_seq += 1
        timestamp, nonce = "1772413200", f"n{self.nonce_seq}"
        query = {
            "signature": wechat_signature(TOKEN, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "openid": FOLLOWER,
        }
        body = xml
        if self.safe:
            wrapped = self.crypto.encrypt_message(xml, nonce, timestamp)
            encrypted = wrapped.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
            body = (
                f"<xml><ToUserName><![CDATA[{OFFICIAL}]]></ToUserName>"
                f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
            )
            query.update(
                encrypt_type="aes",
                msg_signature=wechat_signature(TOKEN, timestamp, nonce, encrypted),
            )
        return await self.platform.http.post(self.path, params=query, content=body.encode())

    def reply(self, response: httpx.Response) -> str:
        """The text WeChat would show the follower."""
        assert response.status_code == 200, response.text
        xml = response.text
        if self.safe:
            from services.channels.wechat import parse_xml

            fields = parse_xml(xml)
            xml = self.crypto.decrypt_message(
                xml, fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"]
            )
        message = parse_message(xml)
        assert message.target == FOLLOWER and message.source == OFFICIAL
        return message.content  # type: ignore[no-any-return]


async def official_account(platform: Platform, *, safe: bool = False) -> dict[str, Any]:
    wechat: dict[str, Any] = {"app_id": APP_ID, "token": TOKEN}
    if safe:
        wechat["encoding_aes_key"] = AES_KEY
    return await platform.create_account(
        name="天津12345 公众号", scope="wechat", default_district="120103", wechat=wechat
    )


async def test_wechat_verifies_the_server_url(platform: Platform) -> None:
    account = await official_account(platform)
    query = {
        "signature": wechat_signature(TOKEN, "1772413200", "372910"),
        "timestamp": "1772413200",
        "nonce": "372910",
        "echostr": "8263017356412",
    }
    r = await platform.http.get(account["wechat_server_path"], params=query)
    assert r.status_code == 200 and r.text == "8263017356412"
    r = await platform.http.get(
        account["wechat_server_path"], params={**query, "signature": "0" * 40}
    )
    assert r.status_code == 403


@pytest.mark.parametrize("safe", [False, True], ids=["plain", "safe"])
async def test_a_followers_text_becomes_a_wechat_ticket_once(
    platform: Platform, safe: bool
) -> None:
    wechat = WeChatServer(platform, await official_account(platform, safe=safe), safe=safe)
    message = text_xml("友谊路某小区从早上开始停水，电话13920001234", "24368971245")
    first = wechat.reply(await wechat.post(message))
    [registered] = await platform.emitted("ticket.registered")
    ticket_id = registered.ticket_id
    assert registered.payload["channel"] == "wechat_official"
    assert registered.payload["district"] == "120103"
    assert f"工单号：{ticket_id}" in first
    assert f"/track?ticket_id={ticket_id}" in first
    # WeChat got no answer in time and sends the same message again: nothing new
    again = wechat.reply(await wechat.post(message))
    assert again == first
    assert len(await platform.emitted("ticket.registered")) == 1


async def test_a_message_not_signed_by_wechat_is_refused(platform: Platform) -> None:
    account = await official_account(platform)
    r = await platform.http.post(
        account["wechat_server_path"],
        params={"signature": "0" * 40, "timestamp": "1", "nonce": "2"},
        content=text_xml("停水", "1").encode(),
    )
    assert r.status_code == 403
    assert await platform.rows(wechat_messages) == []


async def test_a_further_message_follows_up_the_open_ticket(platform: Platform) -> None:
    wechat = WeChatServer(platform, await official_account(platform))
    wechat.reply(await wechat.post(text_xml("小区停水了", "1001")))
    [registered] = await platform.emitted("ticket.registered")
    answer = wechat.reply(await wechat.post(text_xml("补充：三号楼也停水了", "1002")))
    assert f"已补充到您的工单 {registered.ticket_id}" in answer
    [follow_up] = await platform.emitted("channel.follow_up_received")
    assert follow_up.ticket_id == registered.ticket_id
    assert follow_up.payload["content"] == "补充：三号楼也停水了"
    # 新诉求 starts another ticket
    wechat.reply(await wechat.post(text_xml("新诉求：路灯不亮", "1003")))
    assert len(await platform.emitted("ticket.registered")) == 2
    listing = wechat.reply(await wechat.post(text_xml("查询", "1004")))
    assert registered.ticket_id in listing


async def test_a_new_follower_is_welcomed(platform: Platform) -> None:
    wechat = WeChatServer(platform, await official_account(platform, safe=True), safe=True)
    assert "欢迎关注" in wechat.reply(await wechat.post(event_xml("subscribe")))


class Unreachable(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("intake is down", request=request)


async def test_a_message_intake_cannot_take_now_is_registered_later(platform: Platform) -> None:
    wechat = WeChatServer(platform, await official_account(platform))
    ctx = platform.ctx("channels")
    transports = ctx.extras["transports"]
    ctx.extras["transports"] = {**transports, "intake": Unreachable()}
    answer = wechat.reply(await wechat.post(text_xml("小区停水了", "2001")))
    assert "稍后" in answer  # the follower is told it goes on
    assert await platform.emitted("ticket.registered") == []
    # intake is back; the retry is due after the back-off
    ctx.extras["transports"] = transports
    platform.advance(minutes=2)
    [registered] = await eventually(
        lambda: platform.emitted("ticket.registered"), "the retried registration"
    )
    listing = wechat.reply(await wechat.post(text_xml("查询", "2002")))
    assert registered.ticket_id in listing
