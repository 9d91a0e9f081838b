"""Batched UDP reads (media.udpread): a socket's waiting datagrams are read in one loop
turn, not one per turn; closing still removes the reader; a protocol that closes its
transport mid-batch gets nothing more. Real sockets on loopback."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from media.udpread import BATCH, read_in_batches


class Counting(asyncio.DatagramProtocol):
    def __init__(self, close_after: int | None = None) -> None:
        self.got: list[bytes] = []
        self.close_after = close_after
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.append(data)
        if self.close_after is not None and len(self.got) >= self.close_after:
            assert self.transport is not None
            self.transport.close()


async def endpoint(protocol: Counting) -> tuple[asyncio.DatagramTransport, tuple[str, int]]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: protocol,
                                                       local_addr=("127.0.0.1", 0))
    await asyncio.sleep(0)  # the transport registers its own reader on the next turn
    return transport, transport.get_extra_info("sockname")


def send(to: tuple[str, int], n: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for i in range(n):
            out.sendto(i.to_bytes(4, "big") * 50, to)


@pytest.mark.parametrize("batched", [True, False])
async def test_waiting_datagrams_are_read_in_one_turn(batched: bool) -> None:
    protocol = Counting()
    transport, addr = await endpoint(protocol)
    try:
        if batched:
            assert read_in_batches(transport)
        send(addr, 150)  # loopback: all in the socket's queue when send() returns
        turns = 4  # the first may only poll
        for _ in range(turns):
            await asyncio.sleep(0)
        if batched:
            assert len(protocol.got) == 150  # 64 + 64 + 22 in three turns
            assert [int.from_bytes(d[:4], "big") for d in protocol.got] == list(range(150))
        else:  # asyncio's own reader: one datagram per turn
            assert len(protocol.got) <= turns + 1
    finally:
        transport.close()


async def test_closing_removes_the_reader_and_stops_the_batch() -> None:
    loop: Any = asyncio.get_running_loop()
    protocol = Counting(close_after=5)
    transport, addr = await endpoint(protocol)
    fd = transport.get_extra_info("socket").fileno()
    assert read_in_batches(transport)
    send(addr, BATCH)
    for _ in range(4):
        await asyncio.sleep(0)
    assert len(protocol.got) == 5  # closed by the protocol after the fifth: no more read
    with pytest.raises(KeyError):
        loop._selector.get_key(fd)  # no reader left behind for the closed socket
    assert not read_in_batches(transport)  # a closed transport is left alone
