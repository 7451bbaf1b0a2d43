import NIOCore

/// The web UI: a channel grid and a player page. Every URL in them is relative, so they work unchanged behind a
/// director or under a path prefix. Playback is the browser's native HLS (`<video src=…m3u8>`); where the browser
/// has none, the page says so and offers the M3U for a player such as VLC.
struct WebPages: Sendable {
    let index: ByteBuffer
    let watch: ByteBuffer

    init() {
        self.index = ByteBuffer(string: Self.indexHTML)
        self.watch = ByteBuffer(string: Self.watchHTML)
    }

    static let style = """
        <style>
        body{font-family:system-ui,sans-serif;margin:0;background:#111;color:#eee}
        header{padding:12px 20px;background:#1d1d1d;display:flex;gap:16px;align-items:baseline}
        header h1{font-size:20px;margin:0} header a{color:#9cf}
        main{padding:20px} .grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:14px}
        .card{background:#222;border-radius:8px;padding:14px;color:#eee;text-decoration:none;display:block}
        .card:hover{background:#2c2c2c} .card b{font-size:17px} .muted{color:#999;font-size:13px}
        .live{color:#6d6}.down{color:#d66} video{width:100%;max-width:1100px;background:#000;display:block}
        #msg{padding:12px;background:#402;border-radius:6px;margin:12px 0;display:none}
        code{background:#333;padding:2px 5px;border-radius:4px}
        </style>
        """

    static let indexHTML = """
        <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
        <link rel="icon" href="data:,"><title>SwiftVS IPTV</title>\(style)</head><body>
        <header><h1>SwiftVS IPTV</h1><a href="channels.m3u">channels.m3u</a><a href="api/channels">api/channels</a></header>
        <main><h2>Live</h2><div class="grid" id="channels"><p class="muted">loading…</p></div>
        <h2 id="vodtitle" style="display:none">On demand</h2><div class="grid" id="vod"></div></main>
        <script>
        const esc = s => String(s).replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
        async function load() {
          try {
            const list = await (await fetch('api/channels', {cache: 'no-store'})).json();
            document.getElementById('channels').innerHTML = list.map(c =>
              `<a class="card" href="watch.html?ch=${encodeURIComponent(c.id)}"><b>${esc(c.name)}</b><br>
               <span class="muted">${esc(c.group || '')}</span><br>
               <span class="${c.live ? 'live' : 'down'}">${c.live ? '● live' : '○ off air'}</span>
               <span class="muted"> · ${c.viewers} viewers · ${(c.ingestBitrate / 1e6).toFixed(2)} Mb/s</span></a>`).join('')
              || '<p class="muted">no channels configured</p>';
            const vod = await (await fetch('api/vod', {cache: 'no-store'})).json();
            document.getElementById('vodtitle').style.display = vod.length ? '' : 'none';
            document.getElementById('vod').innerHTML = vod.map(v =>
              `<a class="card" href="watch.html?src=${encodeURIComponent(v.url)}&title=${encodeURIComponent(v.name)}"><b>${esc(v.name)}</b><br>
               <span class="muted">${esc(v.kind)}</span></a>`).join('');
          } catch (e) { document.getElementById('channels').textContent = 'cannot load the channel list: ' + e; }
        }
        load(); setInterval(load, 5000);
        </script></body></html>
        """

    static let watchHTML = """
        <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
        <link rel="icon" href="data:,"><title>SwiftVS player</title>\(style)</head><body>
        <header><h1 id="title">Player</h1><a href="./">all channels</a></header>
        <main><div id="msg"></div>
        <video id="player" controls autoplay muted playsinline></video>
        <p class="muted">Stream: <code id="url"></code> · <span id="state">starting…</span></p></main>
        <script>
        const q = new URLSearchParams(location.search);
        const ch = q.get('ch');
        const src = ch ? `live/${encodeURIComponent(ch)}/index.m3u8` : q.get('src');
        const video = document.getElementById('player');
        const msg = text => { const m = document.getElementById('msg'); m.innerHTML = text; m.style.display = 'block'; };
        document.getElementById('title').textContent = ch || q.get('title') || 'Player';
        if (!src) {
          msg('Nothing to play: open this page as <code>watch.html?ch=CHANNEL</code>.');
        } else {
          document.getElementById('url').textContent = new URL(src, location.href).href;
          const hls = /\\.m3u8($|\\?)/.test(src);
          if (hls && !video.canPlayType('application/vnd.apple.mpegurl')) {
            msg('This browser cannot play HLS by itself (Safari, Edge and Chrome 142 or later can). ' +
                'Open the stream URL below, or <a href="channels.m3u">channels.m3u</a>, in a player such as VLC.');
          } else {
            video.src = src;
            video.play().catch(() => {});
          }
        }
        video.addEventListener('error', () => msg('Playback failed: ' + (video.error ? video.error.message || video.error.code : 'unknown error')));
        setInterval(() => {
          document.getElementById('state').textContent =
            `${video.paused ? 'paused' : 'playing'} · ${video.currentTime.toFixed(1)} s · ready state ${video.readyState}`;
        }, 500);
        </script></body></html>
        """
}
