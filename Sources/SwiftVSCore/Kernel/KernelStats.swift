import Foundation
import SwiftVSConfigKit

/// One real server's figures on the kernel path: `ipvsadm -L --stats` (connections, packets and bytes each way)
/// from the table's counters, and active/inactive flows from conntrack.
public struct KernelCounts: Sendable, Equatable {
    public var connections = 0
    public var packetsIn = 0
    public var packetsOut = 0
    public var bytesIn = 0
    public var bytesOut = 0
    /// Established flows (IPVS's ActiveConn) and the others conntrack still holds (InActConn).
    public var active = 0
    public var inactive = 0

    public init() {}
}

/// Reading what the kernel counted: nft's JSON listing of the table's counters, and conntrack's flows.
public enum KernelStats {
    /// `nft -j list counters table ip TABLE`: packets and bytes by counter name. Anything unreadable is left out.
    public static func counters(json: Data) -> [String: (packets: Int, bytes: Int)] {
        guard
            let root = try? JSONSerialization.jsonObject(with: json) as? [String: Any],
            let items = root["nftables"] as? [[String: Any]]
        else { return [:] }
        var out: [String: (packets: Int, bytes: Int)] = [:]
        for item in items {
            guard let counter = item["counter"] as? [String: Any], let name = counter["name"] as? String else {
                continue
            }
            out[name] = ((counter["packets"] as? Int) ?? 0, (counter["bytes"] as? Int) ?? 0)
        }
        return out
    }

    /// A flow's original destination (the virtual service) and the real server that answers it.
    public struct FlowKey: Hashable, Sendable {
        public var virtual: String
        public var server: String

        public init(virtual: String, server: String) {
            self.virtual = virtual
            self.server = server
        }
    }

    /// conntrack's listing (`conntrack -L`, one flow per line) counted by virtual service and real server (both
    /// `address:port`): established TCP flows are active, every other flow it holds (closing TCP, UDP) inactive.
    /// The line's first `dst=`/`dport=` are the original destination, the second `src=`/`sport=` the reply's
    /// source: the real server after DNAT.
    public static func flows(conntrack text: String) -> [FlowKey: (active: Int, inactive: Int)] {
        var out: [FlowKey: (active: Int, inactive: Int)] = [:]
        for line in text.split(separator: "\n") {
            var dst: [Substring] = []
            var dport: [Substring] = []
            var src: [Substring] = []
            var sport: [Substring] = []
            for field in line.split(separator: " ") {
                guard let eq = field.firstIndex(of: "=") else { continue }
                let value = field[field.index(after: eq)...]
                switch field[..<eq] {
                case "dst": dst.append(value)
                case "dport": dport.append(value)
                case "src": src.append(value)
                case "sport": sport.append(value)
                default: break
                }
            }
            guard dst.count >= 1, dport.count >= 1, src.count >= 2, sport.count >= 2 else { continue }
            let key = FlowKey(virtual: "\(dst[0]):\(dport[0])", server: "\(src[1]):\(sport[1])")
            let established = line.hasPrefix("tcp") && line.contains(" ESTABLISHED ")
            var count = out[key] ?? (0, 0)
            if established { count.active += 1 } else { count.inactive += 1 }
            out[key] = count
        }
        return out
    }
}
