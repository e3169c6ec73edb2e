"""The zygote protocol: every message crosses the socket as one line and comes back equal."""

from __future__ import annotations

import pytest

from worker.protocol import Exited, Package, Ready, Run, Started, decode, encode

MESSAGES = [
    Run({"id": "0b6c5e1a", "parameters": {"package": "p"}}, Package("p", {"revision": "3f9a"})),
    Run({"id": "0b6c5e1a"}),
    Ready(41),
    Started("0b6c5e1a", 42),
    Exited(42, -9, 0.125),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_a_message_round_trips_as_one_line(message: object):
    line = encode(message)  # type: ignore[arg-type]
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode(line) == message


def test_the_op_names_the_message():
    assert encode(Exited(7, 0)).startswith(b'{"op": "exited"')
    with pytest.raises(ValueError, match="not a zygote message"):
        decode(b'{"op": "preload", "package": {}}\n')
