#!/usr/bin/python3
"""wsprobe.py URL -- talk to a ttyd terminal like a browser does and run one command through it.

ttyd protocol: websocket subprotocol "tty"; first message JSON {"AuthToken", "columns", "rows"};
client input frames are b"0" + bytes; server output frames start with b"0".
Prints ws_prompt_s=..., ws_command_s=... and the command's output line; exit 0 on success.
"""
import asyncio
import json
import sys
import time

import websockets

COMMAND = "echo RIG-$((6*7)) $(id -un)@$(hostname)"


async def probe(url: str, timeout: float) -> int:
    t0 = time.monotonic()
    async with websockets.connect(url, subprotocols=["tty"], open_timeout=10) as ws:
        await ws.send(json.dumps({"AuthToken": "", "columns": 100, "rows": 30}))
        screen, sent = "", False
        while time.monotonic() - t0 < timeout:
            try:
                msg = await asyncio.wait_for(ws.recv(), timeout=2)
            except asyncio.TimeoutError:
                continue
            if isinstance(msg, str):
                msg = msg.encode()
            if msg[:1] == b"0":
                screen += msg[1:].decode(errors="replace")
            if not sent and "$ " in screen:
                print(f"ws_prompt_s={time.monotonic() - t0:.2f}")
                await ws.send(b"0" + COMMAND.encode() + b"\r")
                sent = True
            if sent:
                after = screen.split(COMMAND)[-1]
                lines = [line for line in after.splitlines() if "RIG-42" in line]
                if lines:
                    print(f"ws_command_s={time.monotonic() - t0:.2f} output={lines[0].strip()}")
                    return 0
    print(f"ws probe FAILED after {timeout:.0f} s; screen ends with: {screen[-300:]!r}")
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(probe(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 60)))
