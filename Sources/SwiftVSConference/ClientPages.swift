// The browser client, compiled into the binary: edit it here. `ClientAssets` serves it.
// swift-format-ignore-file

enum ClientPages {
    static let indexHTML = ##"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>SwiftVS conference</title>
<link rel="stylesheet" href="/assets/app.css">
<script src="/assets/app.js" defer></script>
</head>
<body>
<header><strong>SwiftVS conference</strong> <span id="room-title"></span></header>
<div id="notice" hidden></div>
<section id="join">
  <form id="join-form">
    <label>Room <input id="room" required maxlength="64" pattern="[A-Za-z0-9_-]+"></label>
    <label>Your name <input id="name" required maxlength="64"></label>
    <label>Password (if the room has one) <input id="password" type="password"></label>
    <label>Camera <select id="camera"></select></label>
    <label>Microphone <select id="mic"></select></label>
    <video id="preview" autoplay muted playsinline></video>
    <p><button type="submit">Join</button></p>
  </form>
</section>
<section id="call" hidden>
  <div>
    <div id="grid" data-count="0"></div>
    <div id="controls">
      <button id="mute">Mute</button> <button id="cam">Camera</button> <button id="share">Share screen</button>
      <button id="hand">Raise hand</button> <button id="leave">Leave</button>
      <span id="host-tools" hidden><button id="end">End for all</button></span>
    </div>
  </div>
  <aside>
    <h3>People</h3><ul id="people"></ul>
    <ul id="knocks"></ul>
    <h3>Chat</h3><ul id="chat"></ul>
    <form id="chat-form"><input id="say" maxlength="2000" placeholder="Say something"> <button>Send</button></form>
  </aside>
</section>
</body>
</html>
"""##

    static let appJS = ##"""
// SwiftVS conference client: join page, mesh WebRTC room, chat, presence, media state, lobby and host controls.
// Signaling is JSON over one WebSocket (/ws?room=R); docs/conference.md describes every message.
"use strict";
const $ = (s) => document.querySelector(s);
const params = new URLSearchParams(location.search);
const conf = (window.conference = {
  id: null, room: null, name: null, host: false, token: null, limit: 6,
  participants: {}, peers: {}, chat: [], errors: [], local: null, camera: null, ice: [], state: "idle",
  speaker: null, quality: {}, reconnects: 0,
});
let ws = null, leaving = false, retry = 0, pingTimer = null, statsTimer = null;
const size = { width: +(params.get("w") || 640), height: +(params.get("h") || 360) };

function show(id) { for (const s of document.querySelectorAll("section")) s.hidden = s.id !== id; }
function notice(text) { $("#notice").textContent = text; $("#notice").hidden = !text; }
function send(msg) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(msg)); }

async function preview() {
  const video = $("#camera").value, audio = $("#mic").value;
  if (conf.local) conf.local.getTracks().forEach((t) => t.stop());
  conf.local = await navigator.mediaDevices.getUserMedia({
    video: { ...size, ...(video ? { deviceId: { exact: video } } : {}) },
    audio: audio ? { deviceId: { exact: audio } } : true,
  });
  conf.camera = conf.local.getVideoTracks()[0] || null;
  $("#preview").srcObject = conf.local;
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [kind, select] of [["videoinput", "#camera"], ["audioinput", "#mic"]]) {
    const el = $(select), current = el.value;
    el.innerHTML = "";
    for (const d of devices.filter((d) => d.kind === kind)) {
      const o = document.createElement("option");
      o.value = d.deviceId; o.textContent = d.label || kind;
      el.appendChild(o);
    }
    if (current) el.value = current;
  }
}

async function join() {
  conf.room = $("#room").value.trim();
  conf.name = $("#name").value.trim();
  if (!conf.room || !conf.name) return notice("Give a room and your name.");
  history.replaceState(null, "", "?room=" + encodeURIComponent(conf.room));
  try {
    const r = await fetch("/api/ice?user=" + encodeURIComponent(conf.name.replace(/:/g, "")));
    if (r.ok) conf.ice = (await r.json()).iceServers || [];
  } catch (e) { conf.ice = []; }
  if (!conf.local) await preview();
  $("#room-title").textContent = conf.room;
  addTile("local", conf.name + " (you)", conf.local, true);
  show("call");
  connect();
}

function connect() {
  conf.state = "connecting";
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws?room=" + encodeURIComponent(conf.room);
  ws = new WebSocket(url);
  ws.onopen = () => {
    retry = 0;
    send({ type: "join", room: conf.room, name: conf.name, password: $("#password").value || undefined,
           token: conf.token || undefined, hostKey: params.get("hostKey") || undefined });
    clearInterval(pingTimer);
    pingTimer = setInterval(() => send({ type: "ping" }), 10000);
  };
  ws.onmessage = (e) => receive(JSON.parse(e.data));
  ws.onclose = () => {
    clearInterval(pingTimer);
    if (leaving || conf.state === "ended") return;
    conf.state = "reconnecting";
    notice("Signaling lost; reconnecting…");
    const delay = Math.min(5000, 250 * 2 ** retry++);
    setTimeout(() => { conf.reconnects++; connect(); }, delay);
  };
}

async function receive(m) {
  switch (m.type) {
    case "joined": {
      const fresh = m.id !== conf.id;
      if (fresh && conf.id) {  // a new replica: the room re-forms, with new ids
        for (const id of Object.keys(conf.participants)) { dropPeer(id); removeTile(id); }
        conf.participants = {};
      }
      conf.id = m.id; conf.token = m.token; conf.host = m.host; conf.limit = m.limit; conf.replica = m.replica;
      conf.state = "joined";
      notice("");
      $("#host-tools").hidden = !conf.host;
      for (const p of m.participants) addParticipant(p);
      for (const c of m.chat) if (!conf.chat.some((x) => x.at === c.at && x.from === c.from)) addChat(c);
      for (const p of m.participants) {
        const pc = peer(p.id);
        if (fresh || pc.connectionState === "failed" || pc.connectionState === "disconnected") offer(p.id, !fresh);
      }
      sendState();
      break;
    }
    case "peer-joined": addParticipant(m.participant); break;
    case "peer-left": dropPeer(m.id); delete conf.participants[m.id]; removeTile(m.id); renderPeople(); break;
    case "peer-away": if (conf.participants[m.id]) { conf.participants[m.id].away = true; renderPeople(); } break;
    case "peer-back": if (conf.participants[m.id]) { conf.participants[m.id].away = false; renderPeople(); } break;
    case "offer": {
      const pc = peer(m.from);
      await pc.setRemoteDescription(m.data);
      await pc.setLocalDescription();
      send({ type: "answer", to: m.from, data: pc.localDescription.toJSON() });
      flush(m.from);
      break;
    }
    case "answer": await peer(m.from).setRemoteDescription(m.data); flush(m.from); break;
    case "ice": {
      const pc = peer(m.from);
      if (pc.remoteDescription) await pc.addIceCandidate(m.data).catch(() => {});
      else (pc.pending = pc.pending || []).push(m.data);
      break;
    }
    case "chat": addChat(m); break;
    case "state":
      if (conf.participants[m.id]) { conf.participants[m.id].state = m.state; renderPeople(); }
      break;
    case "knock": addKnock(m.id, m.name); break;
    case "lobby": conf.state = "lobby"; notice("Waiting for a host to let you in…"); break;
    case "kicked": case "ended":
      conf.state = "ended"; leaving = true; hangUp();
      show("join"); notice(m.type === "kicked" ? "A host removed you from the room." : "The host ended the room.");
      break;
    case "error":
      conf.errors.push(m);
      if (["room-full", "wrong-password", "password-required", "denied", "bad-name", "bad-room"].includes(m.code)) {
        conf.state = "ended"; leaving = true; hangUp(); show("join");
      }
      notice(m.message);
      break;
  }
}

function peer(id) {
  if (conf.peers[id]) return conf.peers[id];
  const pc = new RTCPeerConnection({ iceServers: conf.ice });
  conf.peers[id] = pc;
  for (const t of conf.local.getTracks()) pc.addTrack(t, conf.local);
  if (conf.screen) replaceVideo(conf.screen);
  pc.onicecandidate = (e) => e.candidate && send({ type: "ice", to: id, data: e.candidate.toJSON() });
  pc.ontrack = (e) => attach(id, e.streams[0]);
  pc.onconnectionstatechange = () => {
    renderPeople();
    if (pc.connectionState === "failed" && conf.id && conf.id < id) offer(id, true);  // one side restarts ICE
  };
  return pc;
}

async function offer(id, restart) {
  const pc = peer(id);
  await pc.setLocalDescription(await pc.createOffer({ iceRestart: !!restart }));
  send({ type: "offer", to: id, data: pc.localDescription.toJSON() });
}

function flush(id) {
  const pc = conf.peers[id];
  for (const c of pc.pending || []) pc.addIceCandidate(c).catch(() => {});
  pc.pending = [];
}

function dropPeer(id) { if (conf.peers[id]) { conf.peers[id].close(); delete conf.peers[id]; } }

function addParticipant(p) {
  conf.participants[p.id] = p;
  addTile(p.id, p.name, null, false);
  renderPeople();
}

function addTile(id, label, stream, muted) {
  let tile = document.querySelector(`.tile[data-id="${id}"]`);
  if (!tile) {
    tile = document.createElement("div");
    tile.className = "tile"; tile.dataset.id = id;
    tile.innerHTML = '<video autoplay playsinline></video><div class="label"><span class="who"></span> <span class="badges"></span> <span class="quality"></span></div>';
    $("#grid").appendChild(tile);
  }
  tile.querySelector(".who").textContent = label;
  const video = tile.querySelector("video");
  video.muted = muted;
  if (stream) video.srcObject = stream;
  $("#grid").dataset.count = document.querySelectorAll(".tile").length;
}

function attach(id, stream) {
  const p = conf.participants[id];
  addTile(id, p ? p.name : id, stream, false);
}

function removeTile(id) {
  const tile = document.querySelector(`.tile[data-id="${id}"]`);
  if (tile) tile.remove();
  $("#grid").dataset.count = document.querySelectorAll(".tile").length;
}

function renderPeople() {
  const list = $("#people");
  list.innerHTML = "";
  const me = { name: conf.name + " (you)", state: myState(), host: conf.host };
  for (const [id, p] of [["local", me], ...Object.entries(conf.participants)]) {
    const s = p.state || {};
    const badges = (s.audio === false ? "· muted " : "") + (s.video === false ? "· camera off " : "") +
      (s.screen ? "· sharing " : "") + (s.hand ? "· hand up " : "") + (p.host ? "★ host " : "") + (p.away ? "· reconnecting" : "");
    const li = document.createElement("li");
    li.dataset.id = id; li.dataset.audio = s.audio === false ? "off" : "on";
    li.textContent = p.name + " " + badges;
    list.appendChild(li);
    const tile = document.querySelector(`.tile[data-id="${id}"]`);
    if (tile) {
      tile.dataset.audio = li.dataset.audio;
      tile.querySelector(".badges").textContent = badges;
      tile.classList.toggle("speaking", conf.speaker === id);
      const q = conf.quality[id];
      tile.querySelector(".quality").textContent = q ? "●".repeat(q) + "○".repeat(3 - q) : "";
    }
  }
}

function addChat(m) {
  conf.chat.push(m);
  const li = document.createElement("li");
  li.textContent = `${m.name}: ${m.text}`;
  $("#chat").appendChild(li);
  li.scrollIntoView();
}

function addKnock(id, name) {
  const li = document.createElement("li");
  li.textContent = name + " wants to join ";
  for (const [label, type] of [["Admit", "admit"], ["Deny", "deny"]]) {
    const b = document.createElement("button");
    b.textContent = label;
    b.onclick = () => { send({ type, id }); li.remove(); };
    li.appendChild(b);
  }
  $("#knocks").appendChild(li);
}

function myState() {
  const a = conf.local && conf.local.getAudioTracks()[0], v = conf.camera;
  return { audio: !!(a && a.enabled), video: !!(v && v.enabled), screen: !!conf.screen, hand: !!conf.hand };
}
function sendState() { send({ type: "state", ...myState() }); renderPeople(); }

function replaceVideo(track) {
  for (const pc of Object.values(conf.peers))
    for (const s of pc.getSenders()) if (s.track && s.track.kind === "video") s.replaceTrack(track);
}

async function toggleScreen() {
  if (conf.screen) { conf.screen.stop(); conf.screen = null; replaceVideo(conf.camera); return sendState(); }
  const stream = await navigator.mediaDevices.getDisplayMedia({ video: true });
  conf.screen = stream.getVideoTracks()[0];
  conf.screen.onended = () => { conf.screen = null; replaceVideo(conf.camera); sendState(); };
  replaceVideo(conf.screen);
  sendState();
}

function hangUp() {
  for (const id of Object.keys(conf.peers)) dropPeer(id);
  for (const id of Object.keys(conf.participants)) removeTile(id);
  conf.participants = {};
  clearInterval(pingTimer);
}

// Active speaker and connection quality, from getStats every 500 ms.
async function sample() {
  let loudest = null, level = 0.02;
  for (const [id, pc] of Object.entries(conf.peers)) {
    const stats = await pc.getStats();
    let lost = 0, received = 0, rtt = 0;
    stats.forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "audio" && (r.audioLevel || 0) > level) { level = r.audioLevel; loudest = id; }
      if (r.type === "inbound-rtp") { lost += r.packetsLost || 0; received += r.packetsReceived || 0; }
      if (r.type === "candidate-pair" && r.nominated && r.currentRoundTripTime) rtt = r.currentRoundTripTime;
    });
    const loss = received ? lost / (lost + received) : 0;
    conf.quality[id] = pc.connectionState !== "connected" ? 0 : loss > 0.05 || rtt > 0.4 ? 1 : loss > 0.01 || rtt > 0.15 ? 2 : 3;
  }
  conf.speaker = loudest;
  renderPeople();
}

window.addEventListener("DOMContentLoaded", () => {
  $("#room").value = params.get("room") || "";
  $("#name").value = params.get("name") || "";
  $("#password").value = params.get("password") || "";
  $("#join-form").onsubmit = (e) => { e.preventDefault(); join().catch((err) => notice("Cannot join: " + err.message)); };
  $("#camera").onchange = $("#mic").onchange = () => preview().catch((err) => notice(err.message));
  $("#mute").onclick = () => { const a = conf.local.getAudioTracks()[0]; a.enabled = !a.enabled; $("#mute").classList.toggle("off", !a.enabled); sendState(); };
  $("#cam").onclick = () => { conf.camera.enabled = !conf.camera.enabled; $("#cam").classList.toggle("off", !conf.camera.enabled); sendState(); };
  $("#share").onclick = () => toggleScreen().catch((err) => notice("Screen share: " + err.message));
  $("#hand").onclick = () => { conf.hand = !conf.hand; sendState(); };
  $("#leave").onclick = () => { leaving = true; send({ type: "leave" }); ws && ws.close(); hangUp(); removeTile("local"); show("join"); conf.state = "left"; };
  $("#end").onclick = () => send({ type: "end" });
  $("#chat-form").onsubmit = (e) => { e.preventDefault(); const t = $("#say").value.trim(); if (t) send({ type: "chat", text: t }); $("#say").value = ""; };
  statsTimer = setInterval(() => sample().catch(() => {}), 500);
  show("join");
  preview().catch((err) => notice("No camera or microphone: " + err.message)).then(() => {
    if (params.get("autojoin") === "1") join().catch((err) => notice("Cannot join: " + err.message));
  });
});
"""##

    static let appCSS = ##"""
body { font: 15px system-ui, sans-serif; margin: 0; background: #111; color: #eee; }
header { padding: 8px 16px; background: #1d1d1d; display: flex; gap: 12px; align-items: center; }
section { padding: 16px; }
#notice { background: #633; padding: 8px 16px; }
form label { display: block; margin: 8px 0; }
input, select, button { font: inherit; padding: 6px 10px; border-radius: 6px; border: 1px solid #444; background: #222; color: #eee; }
button.off { background: #822; }
#preview { width: 320px; background: #000; border-radius: 8px; }
#call { display: grid; grid-template-columns: 1fr 280px; gap: 12px; }
#call[hidden] { display: none; }
#grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 8px; }
.tile { position: relative; background: #000; border-radius: 8px; overflow: hidden; border: 3px solid transparent; }
.tile.speaking { border-color: #3c6; }
.tile video { width: 100%; aspect-ratio: 16 / 9; display: block; object-fit: cover; }
.tile .label { position: absolute; left: 0; right: 0; bottom: 0; padding: 4px 8px; background: #0008; font-size: 13px; }
.tile[data-audio="off"] .label { color: #f99; }
.quality { float: right; color: #3c6; }
#controls { display: flex; gap: 8px; margin-top: 8px; flex-wrap: wrap; }
aside ul { list-style: none; padding: 0; margin: 0 0 12px; max-height: 40vh; overflow: auto; }
aside li { padding: 3px 0; border-bottom: 1px solid #222; }
"""##
}
