/// The admin API's `/`: a live stats page, as HAProxy's stats page, compiled into the binary. It reads
/// `/api/overview` (the services and HA at one moment) every second with the same credentials the page came with, and draws every
/// service and pool with each real server's state and why, weight, connections, rates, error rate and response
/// times; for an autoscaled service, its replicas and a chart of their count (and the desired count) over the last
/// five minutes. No build step, no outside asset: one HTML file with its CSS and script.
enum StatsPage {
    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>SwiftVS director</title>
        <link rel="icon" href="data:,">
        <style>
        :root { --up: #1a7f37; --down: #cf222e; --off: #9a6700; --line: #d0d7de; --muted: #57606a; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; background: #f6f8fa; }
        header { display: flex; flex-wrap: wrap; gap: .5em 1.5em; align-items: baseline; padding: .8em 1em; background: #24292f; color: #fff; }
        header h1 { font-size: 1.1em; margin: 0; }
        header .meta { color: #d0d7de; font-size: .9em; }
        main { padding: .5em; }
        section { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin: .5em 0; overflow: hidden; }
        section h2 { font-size: 1em; margin: 0; padding: .6em .8em; border-bottom: 1px solid var(--line); display: flex; flex-wrap: wrap; gap: .3em 1em; align-items: baseline; }
        section h2 .facts { color: var(--muted); font-weight: normal; font-size: .9em; }
        .scroll { overflow-x: auto; }
        table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
        th, td { padding: .35em .6em; text-align: right; white-space: nowrap; border-bottom: 1px solid #eaeef2; }
        th { color: var(--muted); font-weight: 600; font-size: .85em; background: #f6f8fa; }
        td.address, th.address, td.reason, th.reason { text-align: left; }
        td.reason { white-space: normal; min-width: 14em; color: var(--muted); }
        .state { font-weight: 600; }
        .state.up { color: var(--up); } .state.down { color: var(--down); } .state.disabled { color: var(--off); }
        .badge { border-radius: 1em; padding: 0 .6em; font-size: .85em; color: #fff; }
        .badge.up { background: var(--up); } .badge.down { background: var(--down); }
        .scale { padding: .4em .8em; border-bottom: 1px solid var(--line); display: flex; flex-wrap: wrap; gap: .3em 1.5em; align-items: center; color: var(--muted); }
        .scale svg { width: 320px; max-width: 100%; height: 64px; background: #f6f8fa; border-radius: 4px; }
        .scale .current { stroke: #0969da; fill: none; stroke-width: 2; } .scale .desired { stroke: #bf8700; fill: none; stroke-dasharray: 4 3; }
        #error { display: none; margin: .5em; padding: .6em .8em; background: #ffebe9; border: 1px solid var(--down); border-radius: 6px; }
        @media (max-width: 700px) { th.optional, td.optional { display: none; } body { font-size: 13px; } }
        </style>
        </head>
        <body>
        <header><h1>SwiftVS director</h1><span class="meta" id="ha"></span><span class="meta" id="updated">loading…</span></header>
        <div id="error"></div>
        <main id="services"></main>
        <script>
        "use strict";
        const previous = new Map();
        // Replica counts seen, per autoscaled service: [time, current, desired], the last five minutes.
        const replicaHistory = new Map();
        function replicaChart(scale) {
          const now = Date.now() / 1000;
          const points = (replicaHistory.get(scale.service) || []).filter(p => now - p[0] <= 300);
          points.push([now, scale.current, scale.desired]);
          replicaHistory.set(scale.service, points);
          const top = Math.max(scale.max, 1);
          const x = t => (300 - (now - t)) / 300 * 320;
          const y = v => 60 - v / top * 54;
          const line = index => points.map((p, i) => (i ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[index]).toFixed(1)).join(" ");
          const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
          svg.setAttribute("viewBox", "0 0 320 64");
          svg.setAttribute("role", "img");
          svg.setAttribute("aria-label", "replicas over the last five minutes");
          for (const [cls, index] of [["desired", 2], ["current", 1]]) {
            const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
            path.setAttribute("class", cls);
            path.setAttribute("d", line(index));
            svg.append(path);
          }
          return svg;
        }
        function scaleLine(scale) {
          const div = document.createElement("div");
          div.className = "scale";
          div.dataset.scale = scale.service;
          const replicas = scale.replicas.map(r => r.state).reduce((m, s) => (m[s] = (m[s] || 0) + 1, m), {});
          div.append(text("span", "replicas " + scale.current + " (" + scale.ready + " ready), desired " + scale.desired +
            ", min " + scale.min + " max " + scale.max + " · " +
            Object.entries(replicas).map(([s, n]) => n + " " + s).join(", ") +
            (scale.decisions.length ? " · last: " + scale.decisions[0].from + " → " + scale.decisions[0].to + ", " + scale.decisions[0].reason : "")),
            replicaChart(scale));
          return div;
        }
        const text = (tag, value, cls) => { const e = document.createElement(tag); e.textContent = value; if (cls) e.className = cls; return e; };
        const ms = v => v == null ? "–" : (v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)) + " ms";
        const bytes = v => v < 1024 ? v.toFixed(0) + " B" : v < 1048576 ? (v / 1024).toFixed(1) + " KiB" : (v / 1048576).toFixed(1) + " MiB";
        const rate = v => v < 10 ? v.toFixed(1) : v.toFixed(0);
        const columns = [
          ["address", "Real server", s => s.address, "address"],
          ["state", "State", s => s.state, "state"],
          ["weight", "Weight", s => String(s.weight)],
          ["active", "Active", s => String(s.active)],
          ["inactive", "Inactive", s => String(s.inactive), "optional"],
          ["rps", "Req/s", s => rate(s.cps)],
          ["errors", "5xx", s => s.errorRate, "optional"],
          ["p50", "p50", s => ms(s.p50Ms)],
          ["p99", "p99", s => ms(s.p99Ms)],
          ["in", "In/s", s => bytes(s.inBps) , "optional"],
          ["out", "Out/s", s => bytes(s.outBps), "optional"],
          ["total", "Total", s => String(s.total), "optional"],
          ["reason", "Why", s => s.reason, "reason"],
        ];
        function errorRate(service, server) {
          const key = service.name + " " + server.address;
          const before = previous.get(key);
          const all = server.responses.reduce((a, b) => a + b, 0);
          previous.set(key, { all, errors: server.responses[4] });
          if (!before || all === before.all) return all === 0 ? "–" : (100 * server.responses[4] / all).toFixed(1) + "%";
          return (100 * (server.responses[4] - before.errors) / (all - before.all)).toFixed(1) + "%";
        }
        function draw(services, scales) {
          const byService = new Map((scales || []).map(s => [s.service, s]));
          const main = document.getElementById("services");
          const sections = services.map(service => {
            const section = document.createElement("section");
            section.dataset.service = service.name;
            const h2 = document.createElement("h2");
            h2.append(text("span", service.name), text("span", service.state, "badge " + service.state));
            const facts = service.poolOf ? "pool of " + service.poolOf : service.proto + " " + service.listen;
            h2.append(text("span", facts + " · " + service.scheduler + " · " + service.connections + " connections" +
              (service.noServer ? " · " + service.noServer + " found no server" : "") +
              (service.sorryActive ? " · sorry server active" : ""), "facts"));
            section.append(h2);
            if (byService.has(service.name)) section.append(scaleLine(byService.get(service.name)));
            if (service.servers.length) {
              const table = document.createElement("table");
              const head = document.createElement("tr");
              for (const [, title, , cls] of columns) head.append(text("th", title, cls));
              table.append(head);
              for (const server of service.servers) {
                server.errorRate = errorRate(service, server);
                const row = document.createElement("tr");
                row.dataset.server = server.address;
                for (const [field, , value, cls] of columns) {
                  const cell = text("td", value(server), cls);
                  cell.dataset.field = field;
                  if (field === "state") cell.className = "state " + server.state;
                  row.append(cell);
                }
                table.append(row);
              }
              const scroll = document.createElement("div");
              scroll.className = "scroll";
              scroll.append(table);
              section.append(scroll);
            }
            return section;
          });
          main.replaceChildren(...sections);
        }
        async function poll() {
          try {
            const answer = await fetch("/api/overview", { headers: { Accept: "application/json" }, cache: "no-store" });
            if (!answer.ok) throw new Error("GET /api/overview: " + answer.status + " " + (await answer.text()));
            const overview = await answer.json();
            draw(overview.services, overview.scale);
            document.getElementById("error").style.display = "none";
            document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
            const instances = overview.ha ? overview.ha.instances : [];
            document.getElementById("ha").textContent =
              instances.map(i => i.name + ": " + i.state + " (priority " + i.priority + ")").join(" · ");
          } catch (error) {
            const box = document.getElementById("error");
            box.textContent = String(error);
            box.style.display = "block";
          }
        }
        poll();
        setInterval(poll, 1000);
        </script>
        </body>
        </html>
        """#
}
