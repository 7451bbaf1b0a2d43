#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs into fuzz/corpus/TARGET/ (run from the repository root). Inputs that
libFuzzer finds crashing go into the same folders by hand, named crash-*, as regression inputs."""
import os, struct, glob, random

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

def put(target, name, data):
    folder = os.path.join(root, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

# HTTP/1 request heads: plain, with Connection, and the hostile ones the tests know.
requests = {
    "plain": "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "connection": "GET /x?y=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\nUser-Agent: curl\r\n\r\n",
    "xff": "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\nConnection: X-Forwarded-For\r\n\r\n",
    "head": "HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n",
    "post": "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    "chunked": "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "bare-lf": "GET / HTTP/1.1\nHost: a\n\n",
    "two-hosts": "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "absolute": "GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n",
    "http10": "GET / HTTP/1.0\r\n\r\n",
    "upgrade": "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    "partial": "GET / HTTP/1.1\r\nHost: a\r\nX-Long: aaaaaaaa",
}
for name, text in requests.items():
    put("http-request", name, text)

# Responses, after a first byte that chooses the piece size (and, with its top bit, a HEAD request).
responses = {
    "length": "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    "chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nTrailer: t\r\n\r\n",
    "until-close": "HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nbody until the close",
    "not-modified": "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
    "early-hints": "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    "cl-and-te": "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "split-header": "HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: evil=1\r\nContent-Length: 0\r\n\r\n",
    "absurd-chunk": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n",
    "hop-by-hop": "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok",
}
for index, (name, text) in enumerate(responses.items()):
    put("http-response", name, bytes([index * 7 % 61]) + text.encode())
    put("http-response", name + "-head", bytes([0x80 | 3]) + text.encode())

# Exchange scripts: event codes and times (see FuzzTargets.exchange).
rng = random.Random(16)
put("exchange", "keep-alive-get", bytes([1, 2 | 0x30, 0, 4, 0, 1, 5, 0, 8, 0, 9, 0, 3, 10, 0x10, 0]))
put("exchange", "retry", bytes([1, 2 | 0x30, 0, 4, 0, 1, 11, 0, 0, 4, 0, 2, 5, 0, 9, 0, 3, 10, 0x10, 0]))
put("exchange", "drain", bytes([0, 0, 1, 13, 0, 2 | 0x20, 0, 4, 0, 3, 14, 0]))
put("exchange", "upgrade", bytes([0, 2 | 0x70, 0, 4, 0, 1, 5, 0, 9, 0, 1, 14, 0, 15, 0]))
for i in range(8):
    put("exchange", f"random-{i}", bytes(rng.randrange(256) for _ in range(rng.randrange(8, 64))))

# TS: the IPTV sample's first packets, whole and in odd pieces.
sample = open(os.path.join(os.path.dirname(root), "..", "Sources", "SwiftVSIPTV", "Resources", "sample.ts"), "rb").read()
put("ts", "sample-head", bytes([26]) + sample[: 188 * 200])
put("ts", "sample-odd", bytes([3]) + sample[188 * 50 : 188 * 120 + 77])

# VRRP: a valid advert in an IPv4 packet, and the message alone (UDP transport).
def checksum(data):
    if len(data) % 2: data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16: total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF
src, dst = bytes([10, 0, 0, 1]), bytes([224, 0, 0, 18])
message = bytearray([0x31, 51, 150, 1, 0, 100, 0, 0]) + bytes([10, 0, 0, 100])
pseudo = src + dst + bytes([0, 112, 0, len(message)])
struct.pack_into("!H", message, 6, checksum(pseudo + bytes(message)))
ip = bytearray([0x45, 0, 0, 20 + len(message), 0, 0, 0, 0, 255, 112, 0, 0]) + src + dst
put("vrrp", "advert", bytes(ip) + bytes(message))
put("vrrp", "message", src + dst + bytes(message))

# Configs and scenarios: the repository's own.
here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in sorted(glob.glob(os.path.join(here, "examples", "*.yaml"))):
    put("config", os.path.basename(path), open(path, "rb").read())
for path in sorted(glob.glob(os.path.join(here, "scenarios", "*.yaml"))):
    put("scenario", os.path.basename(path), open(path, "rb").read())

# A connection's first bytes: PROXY headers (v1, v2 with a TLV, LOCAL), a TLS ClientHello with a server name
# (made by Python's own TLS, into memory), the HTTP/2 preface, an HTTP/1 request.
def front_seeds():
    import ssl
    put("front", "proxy-v1", "PROXY TCP4 192.168.1.10 10.0.0.1 51000 443\r\nGET / HTTP/1.1\r\n\r\n")
    put("front", "proxy-v1-v6", "PROXY TCP6 2001:db8::7 ::1 1 65535\r\n")
    put("front", "proxy-unknown", "PROXY UNKNOWN\r\n")
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    put("front", "proxy-v2", sig + b"\x21\x11\x00\x10" + bytes([192, 168, 1, 10, 10, 0, 0, 1, 0xC7, 0x38, 1, 0xBB]) + b"\x04\x00\x01\x55")
    put("front", "proxy-v2-local", sig + b"\x20\x00\x00\x00")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname="conference.example.com")
    try:
        client.do_handshake()
    except ssl.SSLWantReadError:
        pass
    put("front", "client-hello", outgoing.read())
    put("front", "h2-preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    put("front", "http1", "GET / HTTP/1.1\r\nHost: a\r\n\r\n")

front_seeds()
