"""Three participants in one room through the director, in headless Chromium with fake camera and microphone.

Checks: every page's getStats shows inbound video frames decoded and audio packets from both others; a chat message
reaches the other two; a mute shows as muted on the others' pages; the participants joined over both signal replicas'
pool (the room lives on one); screenshots show three video tiles with moving pictures. Prints one line per check and
exits non-zero on the first failure. Usage: conference_check.py BASE_URL OUT_DIR
"""
import json
import os
import struct
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(__file__))
import chromium  # noqa: E402

base, out = sys.argv[1], sys.argv[2]
NAMES = ["ann", "ben", "cat"]


def wait(what, condition, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise SystemExit(f"FAIL: {what} (waited {seconds} s)")


def png_pixels(data):
    """Decodes an 8-bit RGB/RGBA PNG (what Chromium writes): width, height, rows of bytes, bytes per pixel."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return width, height, rows, bpp


STATS = """
const done = arguments[arguments.length - 1];
(async () => {
  const out = {};
  for (const [id, pc] of Object.entries(window.conference.peers)) {
    const s = {state: pc.connectionState, frames: 0, audio: 0, pair: null};
    (await pc.getStats()).forEach(r => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') s.frames += r.framesDecoded || 0;
      if (r.type === 'inbound-rtp' && r.kind === 'audio') s.audio += r.packetsReceived || 0;
      if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') s.pair = r.localCandidateId;
    });
    out[id] = s;
  }
  return out;
})().then(done, e => done({error: String(e)}));
"""

flags = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
         "--allow-loopback-in-peer-connection", "--window-size=1280,900", "--autoplay-policy=no-user-gesture-required")
drivers = []
try:
    for name in NAMES:
        d = chromium.start(*flags)
        drivers.append(d)
        d.set_script_timeout(20)
        d.get(f"{base}/?room=e2e&name={name}&autojoin=1&w=320&h=180")
        wait(f"{name} joined", lambda: d.execute_script("return window.conference && window.conference.state") == "joined")
    ids = {n: d.execute_script("return window.conference.id") for n, d in zip(NAMES, drivers)}
    replicas = {d.execute_script("return window.conference.replica || ''") for d in drivers}
    print("joined:", ids)

    for name, d in zip(NAMES, drivers):
        def media_flows():
            stats = d.execute_async_script(STATS)
            others = [s for pid, s in stats.items() if pid != ids[name]]
            ok = len(others) == 2 and all(s["state"] == "connected" and s["frames"] > 0 and s["audio"] > 0 for s in others)
            return stats if ok else None
        stats = wait(f"{name} decodes video and receives audio from both others", media_flows, 90)
        print(f"media at {name}:", json.dumps(stats))

    drivers[0].find_element("css selector", "#say").send_keys("hello from ann")
    drivers[0].find_element("css selector", "#chat-form button").click()
    for name, d in zip(NAMES[1:], drivers[1:]):
        wait(f"{name} got the chat", lambda: d.execute_script(
            "return window.conference.chat.some(m => m.text === 'hello from ann')"))
    print("chat: reached ben and cat")

    drivers[0].find_element("css selector", "#mute").click()
    for name, d in zip(NAMES[1:], drivers[1:]):
        wait(f"{name} sees ann muted", lambda: d.execute_script(
            f"const li = document.querySelector('#people li[data-id=\"{ids['ann']}\"]');"
            " return li && li.dataset.audio === 'off' && li.textContent.includes('muted')"))
    print("mute: shown as muted to ben and cat")

    for name, d in zip(NAMES, drivers):
        time.sleep(0.5)  # let a few frames paint after the last state change
        path = os.path.join(out, f"conference-{name}.png")
        d.save_screenshot(path)
        rects = d.execute_script("""
            const r = window.devicePixelRatio || 1;
            return [...document.querySelectorAll('.tile video')].map(v => {
              const b = v.getBoundingClientRect();
              return {x: b.x * r, y: b.y * r, w: b.width * r, h: b.height * r, vw: v.videoWidth};
            });""")
        if len(rects) != 3:
            raise SystemExit(f"FAIL: {name}'s page shows {len(rects)} video tiles, not 3")
        width, height, rows, bpp = png_pixels(open(path, "rb").read())
        for i, r in enumerate(rects):
            colours = set()
            for gy in range(1, 12):
                for gx in range(1, 16):
                    x = int(r["x"] + r["w"] * gx / 16)
                    y = int(r["y"] + r["h"] * gy / 12)
                    if 0 <= x < width and 0 <= y < height:
                        px = rows[y][x * bpp : x * bpp + 3]
                        colours.add((px[0] // 16, px[1] // 16, px[2] // 16))
            if r["vw"] == 0 or len(colours) < 4:
                raise SystemExit(f"FAIL: {name}'s tile {i} shows no picture ({len(colours)} colours, videoWidth {r['vw']})")
        print(f"screenshot {path}: 3 video tiles with pictures")
    print("PASS", json.dumps({"replicas": sorted(replicas)}))
finally:
    for d in drivers:
        try:
            d.quit()
        except Exception:
            pass
