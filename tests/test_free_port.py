"""free_port() (scripts/local_lambda/ports.py): ports for the extension to bind later, chosen where no outgoing
connection can take them in the meantime (the "Address already in use" race of bind(0) ports)."""

from __future__ import annotations

import socket

from local_lambda.ports import PORT_SPAN, _ephemeral_low, free_port


def test_ports_are_below_the_ephemeral_range_distinct_and_free():
    low = _ephemeral_low()
    ports = [free_port() for _ in range(20)]
    assert len(set(ports)) == 20
    assert all(low - PORT_SPAN <= port < low for port in ports), (low, ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # still free


def test_a_taken_port_is_skipped():
    probe = free_port()
    while probe >= _ephemeral_low() - 3:  # at the end of the span the next ones wrap around to its start
        probe = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", probe + 1))
        taken.listen()
        assert free_port() == probe + 2
