import Foundation
import SwiftVSConfigKit

/// Kubernetes' EndpointSlices of one Service (discovery.k8s.io/v1), as the director follows them: the slices by name,
/// kept from a list and the watch events after it, and what they mean for the pool. Pure: JSON values in, the pool's
/// members out.
///
/// The conditions, as the API reference defines them: `ready` nil counts as ready (and is never true while
/// terminating); `serving` is readiness ignoring termination, nil → `ready`; `terminating` nil → not. The director
/// maps them as kube-proxy does for graceful termination: ready → in rotation; serving and terminating → weight 0
/// (its requests finish, none start); neither → out of the pool.
public struct EndpointSlices: Sendable, Equatable {
    public struct Slice: Codable, Sendable, Equatable {
        public struct Metadata: Codable, Sendable, Equatable {
            public var name: String?
            public var resourceVersion: String?
        }

        public struct Conditions: Codable, Sendable, Equatable {
            public var ready: Bool?
            public var serving: Bool?
            public var terminating: Bool?
        }

        public struct Endpoint: Codable, Sendable, Equatable {
            public var addresses: [String]
            public var conditions: Conditions?
            public var nodeName: String?
        }

        public struct Port: Codable, Sendable, Equatable {
            public var name: String?
            public var port: Int?
            public var `protocol`: String?
        }

        public var metadata: Metadata
        public var addressType: String?
        public var endpoints: [Endpoint]?
        public var ports: [Port]?
    }

    public struct List: Codable, Sendable {
        public var metadata: Slice.Metadata
        public var items: [Slice]
    }

    /// One line of a watch: the event's type and its object (a slice, or a `Status` for ERROR).
    public struct Event: Sendable {
        public enum Kind: String, Sendable {
            case added = "ADDED", modified = "MODIFIED", deleted = "DELETED",
                bookmark = "BOOKMARK", error = "ERROR"
        }
        public var kind: Kind
        public var slice: Slice?
        /// ERROR's `Status.code` (410: the resourceVersion is too old, list again).
        public var code: Int?
        public var message: String?
        public var resourceVersion: String?

        struct Raw: Decodable {
            struct Object: Decodable {
                var kind: String?
                var code: Int?
                var message: String?
                var metadata: Slice.Metadata?
            }
            var type: String
        }

        /// Decodes one line of a watch stream; nil if it is not one.
        public static func decode(_ line: [UInt8]) -> Event? {
            let data = Data(line)
            guard let raw = try? JSONDecoder().decode(Raw.self, from: data), let kind = Kind(rawValue: raw.type) else {
                return nil
            }
            struct Wrapped<T: Decodable>: Decodable { var object: T }
            var event = Event(kind: kind)
            if kind == .error {
                let status = try? JSONDecoder().decode(Wrapped<Raw.Object>.self, from: data).object
                event.code = status?.code
                event.message = status?.message
                return event
            }
            guard let slice = try? JSONDecoder().decode(Wrapped<Slice>.self, from: data).object else { return nil }
            event.resourceVersion = slice.metadata.resourceVersion
            if kind != .bookmark { event.slice = slice }
            return event
        }
    }

    /// What one endpoint is to the pool.
    public enum Role: Sendable, Equatable {
        case ready
        case draining
    }

    public private(set) var slices: [String: Slice] = [:]
    /// Where a watch resumes.
    public private(set) var resourceVersion: String?

    public init() {}

    /// A list's answer replaces everything.
    public mutating func replace(with list: List) {
        self.slices = [:]
        for slice in list.items { self.slices[slice.metadata.name ?? ""] = slice }
        self.resourceVersion = list.metadata.resourceVersion
    }

    /// A watch event; false when it was an ERROR (410: list again).
    @discardableResult
    public mutating func apply(_ event: Event) -> Bool {
        switch event.kind {
        case .added, .modified:
            if let slice = event.slice { self.slices[slice.metadata.name ?? ""] = slice }
        case .deleted:
            if let slice = event.slice { self.slices[slice.metadata.name ?? ""] = nil }
        case .bookmark:
            break
        case .error:
            return false
        }
        if let version = event.resourceVersion { self.resourceVersion = version }
        return true
    }

    /// The pool the slices describe: every endpoint address with the port named `port` (or numbered so; the
    /// slice's first port when nil), ready or draining. An address in two slices takes the better role.
    public func members(port: String?) -> [Endpoint: Role] {
        var out: [Endpoint: Role] = [:]
        for slice in self.slices.values {
            guard let number = Self.port(in: slice, named: port) else { continue }
            for endpoint in slice.endpoints ?? [] {
                let conditions = endpoint.conditions
                let terminating = conditions?.terminating ?? false
                let ready = (conditions?.ready ?? true) && !terminating
                let serving = conditions?.serving ?? ready
                let role: Role
                if ready {
                    role = .ready
                } else if serving && terminating {
                    role = .draining
                } else {
                    continue
                }
                for address in endpoint.addresses {
                    let text = address.contains(":") ? "[\(address)]:\(number)" : "\(address):\(number)"
                    guard let endpoint = try? SwiftVSConfigKit.Endpoint(parsing: text) else { continue }
                    if out[endpoint] != .ready { out[endpoint] = role }
                }
            }
        }
        return out
    }

    static func port(in slice: Slice, named name: String?) -> Int? {
        let ports = slice.ports ?? []
        guard let name else { return ports.first?.port }
        if let number = Int(name) { return ports.contains { $0.port == number } || ports.isEmpty ? number : nil }
        return ports.first { $0.name == name }?.port
    }
}
