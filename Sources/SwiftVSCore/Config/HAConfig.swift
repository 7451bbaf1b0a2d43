import SwiftVSConfigKit
/// High availability: VRRPv3 instances that move the virtual IPs between two directors (`ha:` in the director's
/// config). Every instance of one director forms one sync group, as keepalived's `vrrp_sync_group`: the front VIP and
/// the back (gateway) VIP of the NAT topology move together.
public struct HAConfig: Sendable, Equatable {
    public enum Transport: String, Sendable, CaseIterable {
        /// IP protocol 112 to 224.0.0.18 on the instance's interface (or to unicast peers). Needs CAP_NET_RAW.
        /// What keepalived speaks.
        case raw
        /// VRRP messages over UDP between SwiftVS directors, unprivileged: for trying HA on one machine. SwiftVS
        /// only; no virtual IPs are added unless the process may.
        case udp
    }

    public var transport: Transport = .raw
    public var instances: [VRRPInstanceConfig]
    /// Gratuitous ARPs sent for each virtual IP on becoming master (default 3, keepalived's
    /// `vrrp_garp_master_repeat`).
    public var garpRepeat: Int = 3
    /// Seconds after becoming master when a second round of gratuitous ARPs goes out (default 5, keepalived's
    /// `vrrp_garp_master_delay`; 0: none), for switches and hosts that missed the first.
    public var garpMasterDelay: Double = 5
    /// Run on every transition as `COMMAND INSTANCE NAME STATE PRIORITY`, like keepalived's `notify` script.
    public var notify: String?
    /// Lower the priority by this much (or go FAULT when nil) while a virtual service of this director has no healthy
    /// real server. Off when `trackServices` is false.
    public var trackServices = false
    public var trackServicesWeight: Int? = -50
    public var trackScripts: [TrackScript] = []
    /// Persistence-template sync with the peer director (the IPVS sync daemon's job).
    public var sync: SyncConfig?

    public init(instances: [VRRPInstanceConfig]) {
        self.instances = instances
    }
}

public struct VRRPInstanceConfig: Sendable, Equatable {
    public var name: String
    /// The interface to speak VRRP on and to add the virtual IPs to (raw transport).
    public var interface: String?
    public var vrid: Int
    /// 1...255; 255 means this director owns the addresses. Default 100.
    public var priority: Int = 100
    /// Seconds, 0.01...40.95 (centisecond steps, VRRPv3). Default 1.
    public var advertInterval: Double = 1
    public var virtualIPs: [VirtualIP] = []
    public var preempt = true
    /// Seconds after start-up before this director preempts a lower-priority master. Default 0.
    public var preemptDelay: Double = 0
    /// Send adverts to these addresses instead of 224.0.0.18 (keepalived's `unicast_peer`).
    public var unicastPeers: [Endpoint] = []
    /// UDP transport: where this instance listens, and its peers.
    public var udpListen: Endpoint?
    public var udpPeers: [Endpoint] = []

    public init(name: String, vrid: Int) {
        self.name = name
        self.vrid = vrid
    }

    /// The interval in centiseconds, as advertised.
    public var advertCentiseconds: UInt16 { UInt16(max(1, min(4095, (self.advertInterval * 100).rounded()))) }
}

/// An IPv4 address with its prefix length: `10.200.0.100/24`.
public struct VirtualIP: Sendable, Equatable, CustomStringConvertible {
    public var address: [UInt8]
    public var prefixLength: Int

    public var description: String { "\(self.address.map(String.init).joined(separator: "."))/\(self.prefixLength)" }

    public init?(parsing text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let endpoint = try? Endpoint(host: String(parts[0]), port: 0), !endpoint.isIPv6 else {
            return nil
        }
        var prefix = 32
        if parts.count == 2 {
            guard let p = Int(parts[1]), (1...32).contains(p) else { return nil }
            prefix = p
        }
        self.address = endpoint.addressBytes
        self.prefixLength = prefix
    }
}

/// keepalived's `track_script`: a command run every `interval`; after `fall` failures the priority changes by
/// `weight` (or the instances go FAULT when `weight` is nil), after `rise` successes it is restored.
public struct TrackScript: Sendable, Equatable {
    public var command: String
    public var interval: Double = 2
    public var timeout: Double = 2
    public var weight: Int? = -20
    public var rise = 1
    public var fall = 1

    public init(command: String) {
        self.command = command
    }
}

/// `ha.sync`: where this director listens for the peer's persistence templates, and where the peers listen.
public struct SyncConfig: Sendable, Equatable {
    public var listen: Endpoint
    public var peers: [Endpoint]

    public init(listen: Endpoint, peers: [Endpoint]) {
        self.listen = listen
        self.peers = peers
    }
}
