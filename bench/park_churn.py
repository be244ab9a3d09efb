"""Keeps C keep-alive connections to ADDR busy with one request every GAP milliseconds each
(HTTP/1.1, GET /fixed), for DURATION seconds, and prints how many responses it got.

Usage: park_churn.py HOST:PORT C GAP_MS DURATION_S. Loopback only.

With a gap shorter than the time after which the gateway parks an idle connection, every
request finds its connection's protocol state in place; with a longer gap, every request
takes its connection out of the parking lot first. Comparing the two prices a park and a
resume.
"""
import asyncio
import random
import sys
import time

host, port = sys.argv[1].rsplit(":", 1)
assert host.startswith("127.") or host == "localhost", "loopback only"
conns, gap, duration = int(sys.argv[2]), int(sys.argv[3]) / 1000, float(sys.argv[4])
request = f"GET /fixed HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


async def one(deadline):
    reader, writer = await asyncio.open_connection(host, int(port))
    served = 0
    # Spread the connections over the gap.
    await asyncio.sleep(random.random() * gap)
    while time.monotonic() < deadline:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        await reader.readexactly(length)
        served += 1
        await asyncio.sleep(gap)
    writer.close()
    return served


async def main():
    deadline = time.monotonic() + duration
    print(sum(await asyncio.gather(*(one(deadline) for _ in range(conns)))))


asyncio.run(main())
