import SwiftVSConfigKit

/// The nf_tables commands (libnftables JSON, what `nft -j -f` reads) that make the kernel forward every
/// `forward: nat` service: one table of the director's own, applied as one transaction, so that the packet path sees
/// the old rules or the new ones and never a moment between (no empty or half-written map).
///
/// ```
/// table ip swiftvs {
///   chain prerouting  { type nat hook prerouting priority dstnat;  jump services }
///   chain output      { type nat hook output priority dstnat;      jump services (clients on the director) }
///   chain services    { ip daddr VIP tcp dport P dnat ip to SELECTOR map { slot : addr . port, … } … }
///   chain postrouting { type nat hook postrouting priority srcnat; masquerade for `masquerade: true` services }
///   chain forward     { type filter hook forward priority filter;  per real server: new flows, packets and bytes each way }
///   counter …         { one per real server and direction, named by `NATRuleset.counterName` }
///   set NAME_ID_p     { type ipv4_addr; flags timeout — persistence: the client networks real server ID holds }
/// }
/// ```
///
/// Only the first packet of a flow passes the nat chains; conntrack carries the rest, so a change of the rules never
/// moves a flow that is open: a real server out of the map gets no new flows and keeps its open ones (IPVS's weight
/// 0). Counters and persistence maps are named objects that a change keeps; the chains are flushed and written anew
/// in the same transaction.
public enum NATRuleset {
    public static let defaultTable = "swiftvs"
    /// Seed of every `jhash`: the same on every director, so that directors of an HA pair hash a flow alike.
    public static let seed = 0x5356_5331

    /// The commands for `services`. With `replace`, a table of that name left by an earlier run (a crash) is deleted
    /// first, in the same transaction.
    public static func commands(
        _ services: [NATService], table: String = defaultTable, replace: Bool = false
    )
        -> JSONValue
    {
        let t = Table(name: table)
        var commands: [JSONValue] = [["add": ["table": t.ref]]]
        if replace {
            commands.append(["delete": ["table": t.ref]])
            commands.append(["add": ["table": t.ref]])
        }
        let chains: [(String, String, String, Int)] = [
            ("prerouting", "nat", "prerouting", -100), ("output", "nat", "output", -100),
            ("postrouting", "nat", "postrouting", 100), ("forward", "filter", "forward", 0),
        ]
        for (name, type, hook, priority) in chains {
            commands.append([
                "add": [
                    "chain": t.with([
                        ("name", .string(name)), ("type", .string(type)), ("hook", .string(hook)),
                        ("prio", .int(priority)), ("policy", "accept"),
                    ])
                ]
            ])
            commands.append(["flush": ["chain": t.with([("name", .string(name))])]])
        }
        // The translation rules once, in a chain both nat hooks jump to.
        commands.append(["add": ["chain": t.with([("name", "services")])]])
        commands.append(["flush": ["chain": t.with([("name", "services")])]])
        for chain in ["prerouting", "output"] {
            commands.append(t.rule(chain, [["jump": ["target": "services"]]]))
        }
        for service in services {
            commands += self.serviceCommands(service, t)
        }
        return ["nftables": .array(commands)]
    }

    /// The commands that delete the table (at exit).
    public static func deletion(table: String = defaultTable) -> JSONValue {
        let t = Table(name: table)
        // `add` first, so that deleting a table that is not there is no error.
        return ["nftables": [["add": ["table": t.ref]], ["delete": ["table": t.ref]]]]
    }

    /// The name of a real server's counter: the service's name made an identifier, a hash of it (names that differ
    /// only in what is dropped stay apart), the server's id and what it counts (`new`, `in`, `out`).
    public static func counterName(service: String, id: Int, _ what: String) -> String {
        "\(self.identifier(service))_\(id)_\(what)"
    }

    /// The persistence set of a service's real server: the client networks it holds.
    public static func persistenceSet(service: String, id: Int) -> String { "\(self.identifier(service))_\(id)_p" }

    static func identifier(_ name: String) -> String {
        let kept = String(
            name.unicodeScalars.prefix(32).map {
                $0.properties.isAlphabetic || ("0"..."9").contains($0) ? Character($0) : "_"
            })
        let hash = String(KeyHash.string(Array(name.utf8)), radix: 16)
        return "s_\(kept)_\(hash)"
    }

    struct Table {
        let name: String
        var ref: JSONValue { ["family": "ip", "name": .string(self.name)] }
        func with(_ members: [(String, JSONValue)]) -> JSONValue {
            .object([("family", "ip"), ("table", .string(self.name))] + members)
        }
        func rule(_ chain: String, _ expr: [JSONValue]) -> JSONValue {
            ["add": ["rule": self.with([("chain", .string(chain)), ("expr", .array(expr))])]]
        }
    }

    static func payload(_ proto: String, _ field: String) -> JSONValue {
        ["payload": ["protocol": .string(proto), "field": .string(field)]]
    }

    static func match(_ left: JSONValue, _ right: JSONValue, op: String = "==") -> JSONValue {
        ["match": ["op": .string(op), "left": left, "right": right]]
    }

    static func ct(_ key: String, original: Bool = true) -> JSONValue {
        original ? ["ct": ["key": .string(key), "dir": "original"]] : ["ct": ["key": .string(key)]]
    }

    static let mark: JSONValue = ["meta": ["key": "mark"]]

    static func target(_ endpoint: Endpoint) -> JSONValue {
        ["concat": [.string(endpoint.host), .int(endpoint.port)]]
    }

    private static func serviceCommands(_ service: NATService, _ t: Table) -> [JSONValue] {
        var commands: [JSONValue] = []
        let l4 = service.proto == .udp ? "udp" : "tcp"
        let matchVirtual: [JSONValue] = [
            self.match(self.payload("ip", "daddr"), .string(service.listen.host)),
            self.match(self.payload(l4, "dport"), .int(service.listen.port)),
        ]
        // The counters first: rules name them.
        for backend in service.backends {
            for what in ["new", "in", "out"] {
                let name = self.counterName(service: service.name, id: backend.id, what)
                commands.append(["add": ["counter": t.with([("name", .string(name))])]])
            }
        }
        let choice = NATPlan.choice(service)
        let endpoint = { (slot: Int) -> Endpoint in
            slot == NATChoice.sorrySlot ? service.sorry! : service.backends[slot].endpoint
        }
        var nat: [[JSONValue]] = []
        if let choice {
            let selector: JSONValue
            switch choice.selector {
            case .counter:
                selector = ["numgen": ["mode": "inc", "mod": .int(choice.slots.count), "offset": 0]]
            case .source(let port):
                let address = self.payload("ip", "saddr")
                selector = [
                    "jhash": [
                        "mod": .int(choice.slots.count), "seed": .int(self.seed),
                        "expr": port ? ["concat": [address, self.payload(l4, "sport")]] : address,
                    ]
                ]
            case .destination:
                selector = [
                    "jhash": [
                        "mod": .int(choice.slots.count), "seed": .int(self.seed), "expr": self.payload("ip", "daddr"),
                    ]
                ]
            }
            if let persistence = service.persistence, service.sorry == nil {
                nat = self.persistentRules(service, choice, selector, persistence, t, matchVirtual, &commands)
            } else if choice.slots.count == 1 {
                let only = endpoint(choice.slots[0])
                nat = [
                    matchVirtual + [
                        ["dnat": ["family": "ip", "addr": .string(only.host), "port": .int(only.port)]]
                    ]
                ]
            } else {
                let elements = choice.slots.enumerated().map { JSONValue.array([.int($0), self.target(endpoint($1))]) }
                nat = [
                    matchVirtual + [
                        [
                            "dnat": [
                                "family": "ip", "addr": ["map": ["key": selector, "data": ["set": .array(elements)]]],
                            ]
                        ]
                    ]
                ]
            }
        }
        // No server can take a new flow: no translation; the director, holding the virtual address, refuses it.
        for expr in nat { commands.append(t.rule("services", expr)) }
        let original: [JSONValue] = [
            self.match(["meta": ["key": "l4proto"]], .string(l4)),
            self.match(self.ct("ip daddr"), .string(service.listen.host)),
            self.match(self.ct("proto-dst"), .int(service.listen.port)),
        ]
        if service.masquerade {
            commands.append(t.rule("postrouting", original + [["masquerade": .null]]))
        }
        for (id, server) in service.backends.map({ ($0.id, $0.endpoint) }) {
            let to: [JSONValue] = [
                self.match(self.payload("ip", "daddr"), .string(server.host)),
                self.match(self.payload(l4, "dport"), .int(server.port)),
            ]
            let from: [JSONValue] = [
                self.match(self.payload("ip", "saddr"), .string(server.host)),
                self.match(self.payload(l4, "sport"), .int(server.port)),
            ]
            let name = { (what: String) -> JSONValue in
                ["counter": .string(self.counterName(service: service.name, id: id, what))]
            }
            commands.append(
                t.rule(
                    "forward",
                    to + original + [self.match(self.ct("state", original: false), ["new"], op: "in"), name("new")]))
            commands.append(t.rule("forward", to + original + [name("in")]))
            commands.append(t.rule("forward", from + original + [name("out")]))
        }
        return commands
    }

    /// Persistence in the kernel: per real server a set with timeouts of the client networks it holds; the packet
    /// mark carries the choice (the server's id + 1) from rule to rule. A client in the set of a server that can take
    /// flows goes there; any other gets the selector's choice; either way its entry's timeout starts again. (nft 1.0's
    /// JSON cannot write the map update `update @m { key : value }`, so sets stand for one map.)
    private static func persistentRules(
        _ service: NATService, _ choice: NATChoice, _ selector: JSONValue, _ persistence: PersistenceConfig,
        _ t: Table, _ matchVirtual: [JSONValue], _ commands: inout [JSONValue]
    ) -> [[JSONValue]] {
        let timeout = max(1, Int(persistence.timeout.rounded()))
        for backend in service.backends {
            let set = self.persistenceSet(service: service.name, id: backend.id)
            commands.append([
                "add": [
                    "set": t.with([
                        ("name", .string(set)), ("type", "ipv4_addr"), ("flags", ["timeout"]),
                        ("timeout", .int(timeout)),
                    ])
                ]
            ])
        }
        let bits = max(0, min(32, persistence.prefixV4))
        let mask = bits == 0 ? UInt32(0) : UInt32.max << (32 - UInt32(bits))
        let maskText = [24, 16, 8, 0].map { String((mask >> UInt32($0)) & 0xFF) }.joined(separator: ".")
        let client: JSONValue =
            bits == 32 ? self.payload("ip", "saddr") : ["&": [self.payload("ip", "saddr"), .string(maskText)]]
        let live = Array(Set(choice.slots)).sorted().map { service.backends[$0] }
        let unchosen = self.match(self.mark, ["set": .array(live.map { .int($0.id + 1) })], op: "!=")
        let setMark = { (value: JSONValue) -> JSONValue in ["mangle": ["key": self.mark, "value": value]] }
        var rules: [[JSONValue]] = []
        // A known client whose server can take flows: that server (the first set that has it).
        for backend in live {
            let set = JSONValue.string("@" + self.persistenceSet(service: service.name, id: backend.id))
            rules.append(matchVirtual + [unchosen, self.match(client, set), setMark(.int(backend.id + 1))])
        }
        // Anyone else: the selector's choice.
        let slotMarks = choice.slots.enumerated().map {
            JSONValue.array([.int($0), .int(service.backends[$1].id + 1)])
        }
        rules.append(
            matchVirtual + [unchosen, setMark(["map": ["key": selector, "data": ["set": .array(slotMarks)]]])])
        for backend in live {
            let set = JSONValue.string("@" + self.persistenceSet(service: service.name, id: backend.id))
            rules.append(
                matchVirtual + [
                    self.match(self.mark, .int(backend.id + 1)),
                    [
                        "set": [
                            "op": "update", "elem": ["elem": ["val": client, "timeout": .int(timeout)]], "set": set,
                        ]
                    ],
                ])
        }
        let targets = live.map { JSONValue.array([.int($0.id + 1), self.target($0.endpoint)]) }
        rules.append(
            matchVirtual + [
                ["dnat": ["family": "ip", "addr": ["map": ["key": self.mark, "data": ["set": .array(targets)]]]]]
            ])
        return rules
    }
}
