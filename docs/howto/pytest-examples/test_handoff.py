from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from localport.pytest_plugin import ReservationFactory


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()
    await writer.wait_closed()


def test_the_echo_server_echoes(localport_reservation_factory: ReservationFactory) -> None:
    reservation = localport_reservation_factory()

    async def scenario() -> bytes:
        # The server gets a socket that is already bound and listening: no gap at all.
        async with await asyncio.start_server(echo, sock=reservation.listen()):
            reader, writer = await asyncio.open_connection(*reservation.address)
            writer.write(b"ping\n")
            answer = await reader.readline()
            writer.close()
            await writer.wait_closed()
            return answer

    assert asyncio.run(scenario()) == b"ping\n"
