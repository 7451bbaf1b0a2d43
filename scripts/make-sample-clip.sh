#!/usr/bin/env bash
# Makes the built-in channel's clip, Sources/SwiftVSIPTV/Resources/sample.ts, from ffmpeg's test sources.
# 16 s is a whole number of 2 s GOPs (25 fps, -g 50) and of AAC frames (48 kHz, 1024 samples), so the loop is seamless.
# Run once; the clip is committed.
set -euo pipefail
out="${1:-$(dirname "$0")/../Sources/SwiftVSIPTV/Resources/sample.ts}"
ffmpeg -v error -y -f lavfi -i "testsrc=size=640x360:rate=25" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000:beep_factor=4" -t 16 \
  -c:v libx264 -preset veryfast -profile:v baseline -pix_fmt yuv420p -g 50 -keyint_min 50 -sc_threshold 0 \
  -b:v 150k -maxrate 200k -bufsize 400k -c:a aac -b:a 48k -ac 2 \
  -metadata service_name="SwiftVS sample" -f mpegts "$out"
ls -l "$out"
