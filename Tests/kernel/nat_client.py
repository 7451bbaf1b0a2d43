#!/usr/bin/env python3
"""Clients for the kernel NAT tests, run inside a lab namespace (stdlib only). Every mode is bounded in count and
time and prints one JSON line.

  nat_client.py tcp HOST PORT COUNT [SECONDS]   COUNT connections, one GET each (Connection: close), in sequence:
                                                {"servers": {name: n}, "clients": [...], "failed": n, "log": [[t, name]]}
  nat_client.py hold HOST PORT COUNT SECONDS    COUNT keep-alive connections, a GET on each every 100 ms for SECONDS:
                                                {"kept": n, "moved": n, "broken": n, "first": {name: n},
                                                 "by_server": {name: {"ok": n, "moved": n, "broken": n}}}
  nat_client.py udp HOST PORT FLOWS             FLOWS sockets (flows), 3 datagrams each: {"servers": {...},
                                                "replies_from": [addresses], "lost": n}
"""
import json
import socket
import sys
import time


def get(sock):
    sock.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        body += chunk
    text = body[:length].decode()
    return text.split(":")[0], text


def tcp(host, port, count, seconds):
    servers, clients, log, failed = {}, set(), [], 0
    start = time.monotonic()
    for _ in range(count):
        if time.monotonic() - start > seconds:
            break
        try:
            with socket.create_connection((host, port), timeout=1) as sock:
                name, text = get(sock)
            servers[name] = servers.get(name, 0) + 1
            clients.add(text.split("(client ")[1].rstrip(")\n"))
            log.append([round(time.monotonic() - start, 3), name])
        except OSError:
            failed += 1
            log.append([round(time.monotonic() - start, 3), "failed"])
    print(json.dumps({"servers": servers, "clients": sorted(clients), "failed": failed, "log": log}))


def hold(host, port, count, seconds):
    conns, first = [], {}
    for _ in range(count):
        sock = socket.create_connection((host, port), timeout=2)
        name, _ = get(sock)
        first[name] = first.get(name, 0) + 1
        conns.append([sock, name, "ok"])
    print(json.dumps({"event": "open", "first": first}), flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for conn in conns:
            if conn[2] != "ok":
                continue
            try:
                name, _ = get(conn[0])
                if name != conn[1]:
                    conn[2] = "moved"
            except OSError:
                conn[2] = "broken"
        time.sleep(0.1)
    result = {s: sum(1 for c in conns if c[2] == s) for s in ("ok", "moved", "broken")}
    by_server = {}
    for conn in conns:
        entry = by_server.setdefault(conn[1], {"ok": 0, "moved": 0, "broken": 0})
        entry[conn[2]] += 1
    print(json.dumps({"kept": result["ok"], "moved": result["moved"], "broken": result["broken"], "first": first,
                      "by_server": by_server}))


def udp(host, port, flows):
    servers, sources, lost = {}, set(), 0
    for _ in range(flows):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1)
            names = set()
            for n in range(3):
                sock.sendto(b"ping %d" % n, (host, port))
                try:
                    data, source = sock.recvfrom(2048)
                    names.add(data.decode().split(":")[0])
                    sources.add("%s:%d" % source)
                except socket.timeout:
                    lost += 1
            for name in names:
                servers[name] = servers.get(name, 0) + 1
    print(json.dumps({"servers": servers, "replies_from": sorted(sources), "lost": lost}))


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "tcp":
        tcp(host, port, int(sys.argv[4]), float(sys.argv[5]) if len(sys.argv) > 5 else 60)
    elif mode == "hold":
        hold(host, port, int(sys.argv[4]), float(sys.argv[5]))
    elif mode == "udp":
        udp(host, port, int(sys.argv[4]))


if __name__ == "__main__":
    main()
