"""Did any DDS packet leave this host during a benchmark? A raw packet socket on every non-loopback interface counts
the UDP packets of the ROS domain's RTPS ports (and of the RTPS multicast group) going out or coming in while the
benchmark runs, next to the interfaces' own packet counters (which other programs on a shared machine move too).

Needs CAP_NET_RAW (root in these containers); without it the result says "not measured" and why.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from pathlib import Path

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
# RTPS well-known ports (DDS-RTPS 9.6.1.1): PB + DG * domain + offsets below PG * participants; one domain's
# ports all lie in [PB + DG * domain, PB + DG * (domain + 1)).
PORT_BASE, DOMAIN_GAIN = 7400, 250
RTPS_MULTICAST = "239.255.0.1"


def domain_ports(domain: int) -> range:
    """The UDP ports RTPS uses for `domain`."""
    start = PORT_BASE + DOMAIN_GAIN * domain
    return range(start, start + DOMAIN_GAIN)


def outside_interfaces() -> list[str]:
    """Network interfaces other than loopback that are up."""
    names = []
    for path in sorted(Path("/sys/class/net").iterdir()):
        if path.name != "lo" and (path / "operstate").read_text().strip() in ("up", "unknown"):
            names.append(path.name)
    return names


def packet_counters(names: list[str]) -> dict[str, dict[str, int]]:
    """tx_packets / rx_packets of each interface, from sysfs."""
    stats = {}
    for name in names:
        folder = Path("/sys/class/net") / name / "statistics"
        stats[name] = {key: int((folder / key).read_text()) for key in ("tx_packets", "rx_packets")}
    return stats


def is_dds_packet(frame: bytes, ports: range) -> bool:
    """An Ethernet frame carrying IPv4 UDP to or from `ports`, or to the RTPS multicast group."""
    if len(frame) < 42 or struct.unpack("!H", frame[12:14])[0] != ETH_P_IP:
        return False
    ip = frame[14:]
    if ip[9] != socket.IPPROTO_UDP:
        return False
    if socket.inet_ntoa(ip[16:20]) == RTPS_MULTICAST:
        return True
    header = (ip[0] & 0x0F) * 4
    source, destination = struct.unpack("!HH", ip[header : header + 4])
    return source in ports or destination in ports


class HostTrafficWatch:
    """Counts this domain's DDS packets on the non-loopback interfaces from start() to stop()."""

    def __init__(self, domain: int | None = None):
        self.domain = int(os.environ.get("ROS_DOMAIN_ID", "0")) if domain is None else domain
        self.interfaces = outside_interfaces()
        self.dds_packets = 0
        self.frames_seen = 0  # every frame on those interfaces: shows the socket saw traffic at all
        self.error: str | None = None
        self._sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._before: dict[str, dict[str, int]] = {}

    def start(self) -> HostTrafficWatch:
        self._before = packet_counters(self.interfaces)
        try:
            for name in self.interfaces:
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
                sock.bind((name, 0))
                sock.settimeout(0.2)
                self._sockets.append(sock)
        except (PermissionError, OSError) as error:
            self.error = f"no raw packet socket ({error}); DDS packets off the host not counted"
            return self
        ports = domain_ports(self.domain)
        for sock in self._sockets:
            thread = threading.Thread(target=self._count, args=(sock, ports), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _count(self, sock: socket.socket, ports: range) -> None:
        while not self._stop.is_set():
            try:
                frame = sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.frames_seen += 1
            if is_dds_packet(frame, ports):
                self.dds_packets += 1

    def stop(self) -> dict:
        """The counts since start(), as JSON-ready values."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        for sock in self._sockets:
            sock.close()
        after = packet_counters(self.interfaces)
        return {
            "interfaces": self.interfaces,
            "ros_domain_id": self.domain,
            "dds_packets_off_host": None if self.error else self.dds_packets,
            "frames_seen_on_interfaces": None if self.error else self.frames_seen,
            "error": self.error,
            "interface_packets_during_run (all programs on the machine)": {
                name: {key: after[name][key] - self._before[name][key] for key in after[name]} for name in after
            },
        }
