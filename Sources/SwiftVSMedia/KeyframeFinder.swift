/// Finds keyframes by scanning an elementary stream's start codes, for sources that do not set the adaptation
/// field's random_access_indicator. The whole PES is scanned: an IDR often follows a large SEI and is not in the
/// PES's first TS packet.
public enum KeyframeFinder {
    public static func containsKeyframe(_ es: [UInt8], codec: VideoCodec) -> Bool {
        es.withUnsafeBufferPointer { b in
            var i = 0
            let n = b.count
            while i + 3 < n {
                // 00 00 01 xx (a 4-byte 00 00 00 01 start code contains this too)
                if b[i + 2] > 1 { i += 3; continue }
                if b[i] == 0, b[i + 1] == 0, b[i + 2] == 1 {
                    let head = b[i + 3]
                    switch codec {
                    case .h264:
                        if head & 0x1F == 5 { return true }  // coded slice of an IDR picture
                    case .hevc:
                        if (16...21).contains((head >> 1) & 0x3F) { return true }  // BLA, IDR, CRA (IRAP)
                    case .mpeg2:
                        if head == 0xB3 || head == 0xB8 { return true }  // sequence header, GOP header
                    case .mpeg4:
                        if head == 0xB0 || head == 0xB3 { return true }  // visual object sequence, GOV
                    }
                    i += 3
                } else {
                    i += 1
                }
            }
            return false
        }
    }
}
