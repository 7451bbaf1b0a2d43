import Foundation
import SwiftVSSystem

#if canImport(Glibc)
import Glibc
#endif

/// Reads a director's autoscaler during a load phase (`GET /api/scale` of its admin API, once a second, with the
/// CPU samples): each autoscaled service's replica count, desired count and ready replicas, and the decisions it
/// made, so the report charts replicas beside throughput, response time and CPU. A plain HTTP/1.0 GET over a
/// socket: the admin API is the director's own, on this machine.
final class ReplicaPoller: @unchecked Sendable {  // used from one task at a time
    let host: String
    let port: Int
    let token: String?
    private(set) var series: [String: ReplicaSeries] = [:]
    private(set) var failures = 0

    struct Status: Decodable {
        struct Decision: Decodable {
            var secondsAgo: Double
            var from: Int
            var to: Int
            var reason: String
        }
        struct Metric: Decodable {
            var name: String
            var current: Double?
        }
        struct Replica: Decodable {
            var address: String
            var cpuMillis: Int64?
            var memoryBytes: Int64?
        }
        var service: String
        var current: Int
        var desired: Int
        var ready: Int
        var metrics: [Metric]?
        var replicas: [Replica]?
        var decisions: [Decision]
    }

    /// `address` is the admin API's `host:port` (or `http://host:port`).
    init?(address: String, token: String? = ProcessInfo.processInfo.environment["SWIFTVS_ADMIN_TOKEN"]) {
        var text = address
        if text.hasPrefix("http://") { text.removeFirst("http://".count) }
        while text.hasSuffix("/") { text.removeLast() }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else {
            return nil
        }
        self.host = String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        self.port = port
        self.token = token
    }

    /// One reading at `t` seconds into the phase.
    func sample(t: Double) {
        guard let body = self.get("/api/scale"),
            let statuses = try? JSONDecoder().decode([Status].self, from: Data(body))
        else {
            self.failures += 1
            return
        }
        for status in statuses {
            var series = self.series[status.service] ?? ReplicaSeries(service: status.service)
            series.samples.append(
                ReplicaPoint(
                    t: t, current: status.current, desired: status.desired, ready: status.ready,
                    metrics: status.metrics.map { metrics in
                        Dictionary(
                            metrics.compactMap { m in m.current.map { (m.name, $0) } }, uniquingKeysWith: { a, _ in a })
                    }))
            for replica in status.replicas ?? [] where replica.cpuMillis != nil || replica.memoryBytes != nil {
                let point = CPUPoint(
                    t: t, percent: Double(replica.cpuMillis ?? 0) / 10,
                    rssMiB: replica.memoryBytes.map { Double($0) / 1_048_576 })
                if let i = series.perReplica.firstIndex(where: { $0.name == replica.address }) {
                    series.perReplica[i].samples.append(point)
                } else {
                    series.perReplica.append(CPUSeries(name: replica.address, samples: [point]))
                }
            }
            for decision in status.decisions {
                let at = ((t - decision.secondsAgo) * 10).rounded() / 10
                // Decisions from before the phase are not its; each is seen in every later reading.
                guard at >= 0,
                    !series.decisions.contains(where: {
                        abs($0.t - at) < 1.5 && $0.from == decision.from && $0.to == decision.to
                    })
                else { continue }
                series.decisions.append(
                    ReplicaDecision(t: at, from: decision.from, to: decision.to, reason: decision.reason))
            }
            self.series[status.service] = series
        }
    }

    var all: [ReplicaSeries] {
        self.series.values.sorted { $0.service < $1.service }.map { series in
            var sorted = series
            sorted.decisions.sort { $0.t < $1.t }
            return sorted
        }
    }

    private func get(_ path: String) -> [UInt8]? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(self.host, String(self.port), &hints, &result) == 0, let info = result else { return nil }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else { return nil }
        var request = "GET \(path) HTTP/1.0\r\nHost: \(self.host):\(self.port)\r\nAccept: application/json\r\n"
        if let token = self.token { request += "Authorization: Bearer \(token)\r\n" }
        request += "\r\n"
        let bytes = Array(request.utf8)
        guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == bytes.count else {
            return nil
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while response.count < 16 << 20 {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response.append(contentsOf: buffer[0..<n])
        }
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = response.indices.first(where: { response[$0...].starts(with: separator) }),
            response.starts(with: Array("HTTP/1.1 200".utf8)) || response.starts(with: Array("HTTP/1.0 200".utf8))
        else { return nil }
        return Array(response[(end + 4)...])
    }
}
