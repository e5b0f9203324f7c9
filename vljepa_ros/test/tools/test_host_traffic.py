"""benchmarks/host_traffic.py picks out a domain's RTPS packets from Ethernet frames (the benchmarks' proof that
no DDS packet left the host)."""

import socket
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

from host_traffic import domain_ports, is_dds_packet  # noqa: E402


def frame(source_ip: str, destination_ip: str, source_port: int, destination_port: int, protocol=17) -> bytes:
    """An Ethernet II frame with a minimal IPv4 header (20 bytes) and a UDP header."""
    ethernet = b"\x00" * 12 + struct.pack("!H", 0x0800)
    ip = bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, protocol, 0, 0])
    ip += socket.inet_aton(source_ip) + socket.inet_aton(destination_ip)
    return ethernet + ip + struct.pack("!HHHH", source_port, destination_port, 8, 0)


def test_domain_ports_follow_the_rtps_port_formula():
    assert domain_ports(0) == range(7400, 7650) and domain_ports(41) == range(17650, 17900)


def test_a_domains_udp_packets_and_rtps_multicast_count_nothing_else_does():
    ports = domain_ports(41)
    assert is_dds_packet(frame("192.0.2.2", "192.0.2.9", 40000, 17661), ports)
    assert is_dds_packet(frame("192.0.2.2", "192.0.2.9", 17650, 40000), ports)
    assert is_dds_packet(frame("192.0.2.2", "239.255.0.1", 40000, 7400), ports)
    assert not is_dds_packet(frame("192.0.2.2", "192.0.2.9", 40000, 7410), ports)  # domain 0, not ours
    assert not is_dds_packet(frame("192.0.2.2", "192.0.2.9", 40000, 17661, protocol=6), ports)  # TCP
    assert not is_dds_packet(b"\x00" * 12 + struct.pack("!H", 0x86DD) + b"\x00" * 60, ports)  # IPv6
    assert not is_dds_packet(b"\x00" * 20, ports)
