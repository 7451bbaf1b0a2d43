#!/usr/bin/env python3
"""Opens a SwiftVS IPTV player page in headless Chromium and measures playback.

Usage: hls_play_check.py URL            waits (up to 40 s) for the <video id=player> to start, then measures how far
                                        currentTime advances in 10 s. Prints JSON: {"start": {...}, "end": {...},
                                        "advance": s, "wall": s, "severe": [console errors]}.
       hls_play_check.py --no-hls URL   the same page in a browser that claims no native HLS (canPlayType answers "");
                                        prints JSON: {"message": text shown, "src": the video's src}.
Uses Debian's chromium and chromedriver (scripts/test.sh installs both, and selenium from PyPI).
"""
import json
import sys
import time

import chromium

STATE = """const v = document.getElementById('player');
return {t: v.currentTime, readyState: v.readyState, paused: v.paused, error: v.error ? v.error.code : null,
        canHLS: v.canPlayType('application/vnd.apple.mpegurl'), message: document.getElementById('msg').textContent};"""


def main():
    no_hls = sys.argv[1] == "--no-hls"
    url = sys.argv[-1]
    driver = chromium.start("--autoplay-policy=no-user-gesture-required")
    try:
        driver.set_page_load_timeout(30)
        if no_hls:
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source":
                "HTMLMediaElement.prototype.canPlayType = function () { return ''; };"})
            driver.get(url)
            time.sleep(1)
            print(json.dumps(driver.execute_script(
                "return {message: document.getElementById('msg').textContent,"
                " shown: getComputedStyle(document.getElementById('msg')).display !== 'none',"
                " src: document.getElementById('player').getAttribute('src')};")))
            return
        driver.get(url)
        deadline = time.time() + 40
        state = driver.execute_script(STATE)
        while state["t"] <= 0.2 and time.time() < deadline:
            if state["error"] is not None or state["message"]:
                break
            time.sleep(0.25)
            state = driver.execute_script(STATE)
        start, t0 = state, time.time()
        time.sleep(10)
        end = driver.execute_script(STATE)
        wall = time.time() - t0
        severe = [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        print(json.dumps({"start": start, "end": end, "advance": end["t"] - start["t"], "wall": wall, "severe": severe}))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
