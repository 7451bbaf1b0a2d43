import Foundation
import NIOCore
import NIOSSL
import SwiftVSConfigKit
import SwiftVSCore

/// Every TLS file of a config, loaded and checked: the services' fronts (termination) and the contexts towards
/// real servers with `tls`. Read at start, at every reload and by `--check-config`, which names the key of each
/// file that is wrong.
public struct TLSMaterial: Sendable {
    /// By service name.
    public var fronts: [String: TLSFront] = [:]
    /// By service (or pool) name, then real server.
    var upstreams: [String: [Endpoint: UpstreamTLS]] = [:]

    public static func load(
        _ config: DirectorConfig, configPath: String?, now: Date = Date()
    ) throws(ConfigError)
        -> TLSMaterial
    {
        var material = TLSMaterial()
        var problems: [ConfigProblem] = []
        let base = configPath.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path } ?? "."
        // Pools are listed after the listeners; their keys are `services[N].pools.NAME` in the file.
        for (index, service) in config.services.enumerated() {
            let path = Self.path(of: service, index: index, in: config)
            if let tls = service.tls {
                switch TLSFront.load(tls, http2: service.http2, path: "\(path).tls", base: base, now: now) {
                case .success(let front): material.fronts[service.name] = front
                case .failure(let error): problems += error.problems
                }
            }
            for (serverIndex, server) in service.servers.enumerated() {
                guard let tls = server.tls else { continue }
                switch UpstreamTLS.load(tls, path: "\(path).servers[\(serverIndex)].tls", base: base) {
                case .success(let upstream): material.upstreams[service.name, default: [:]][server.address] = upstream
                case .failure(let error): problems += error.problems
                }
            }
        }
        guard problems.isEmpty else { throw ConfigError(source: configPath ?? "config", problems: problems) }
        return material
    }

    /// `services[N]`, or `services[N].pools.NAME` for a pool.
    static func path(of service: VirtualServiceConfig, index: Int, in config: DirectorConfig) -> String {
        guard let parent = service.poolOf, let at = config.services.firstIndex(where: { $0.name == parent }) else {
            return "services[\(index)]"
        }
        return "services[\(at)].pools.\(service.name.dropFirst(parent.count + 1))"
    }

    /// Hands each service its front and its real servers' TLS.
    func install(on services: [VirtualService]) {
        for service in services { self.install(on: service) }
    }

    func install(on service: VirtualService) {
        service.tlsFront = self.fronts[service.name]
        service.upstreamTLS = self.upstreams[service.name] ?? [:]
    }
}

/// TLS towards one real server: its client context and the name it is asked for (SNI) and checked against.
public final class UpstreamTLS: Sendable {
    let context: NIOSSLContext
    let serverName: String?

    init(context: NIOSSLContext, serverName: String?) {
        self.context = context
        self.serverName = serverName
    }

    static func load(_ config: UpstreamTLSConfig, path: String, base: String) -> Result<UpstreamTLS, TLSFront.Problems>
    {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.applicationProtocols = ["http/1.1"]
        if let ca = config.ca {
            let file = ca.hasPrefix("/") ? ca : "\(base)/\(ca)"
            guard let roots = try? NIOSSLCertificate.fromPEMFile(file), !roots.isEmpty else {
                let reason = TLSFront.describe(file: file, what: "a PEM certificate")
                return .failure(
                    .init(problems: [ConfigProblem(path: "\(path).ca", line: nil, message: "\(file): \(reason)")]))
            }
            configuration.trustRoots = .certificates(roots)
        }
        configuration.certificateVerification =
            !config.verify ? .none : config.serverName == nil ? .noHostnameVerification : .fullVerification
        do {
            return .success(
                UpstreamTLS(context: try NIOSSLContext(configuration: configuration), serverName: config.serverName))
        } catch {
            return .failure(
                .init(problems: [
                    ConfigProblem(path: path, line: nil, message: "cannot build the TLS context: \(error)")
                ]))
        }
    }

    /// The handler that goes first on a new connection to the server.
    func handler() throws -> NIOSSLClientHandler {
        try NIOSSLClientHandler(context: self.context, serverHostname: self.serverName)
    }
}

/// A service's TLS termination, loaded and checked: the server context (the first certificate, TLS versions,
/// ciphers, ALPN, client certificates) and, for SNI, every certificate chain with the names it serves.
///
/// Built from the files at start, at every reload (so a certificate replaced on disk is served to new connections
/// after SIGHUP, while open ones keep theirs) and by `--check-config`, which reports what is wrong with each file
/// by its key.
public final class TLSFront: Sendable {
    let context: NIOSSLContext
    let identities: Identities
    /// ALPN offers h2.
    let offersH2: Bool
    /// The same certificates for the relay engine, which terminates TLS for HTTP/1.1 clients; nil with client
    /// certificates (`client_ca`), which the NIO proxy alone checks.
    let relay: RelayTLSContext?

    private init(context: NIOSSLContext, identities: Identities, offersH2: Bool, relay: RelayTLSContext?) {
        self.context = context
        self.identities = identities
        self.offersH2 = offersH2
        self.relay = relay
    }

    /// Every certificate chain with its key, and which serves a server name (SNI).
    struct Identities: Sendable {
        var chains: [(chain: [NIOSSLCertificateSource], key: NIOSSLPrivateKeySource)] = []
        var names = ServerNameTable([])
        var unknownName = TLSConfig.UnknownName.default

        /// The certificate for a client's server name: its own, the default (the context's), or a refusal.
        func override(for serverName: String?) -> Result<NIOSSLContextConfigurationOverride, Error> {
            guard let index = self.names.certificate(for: serverName) else {
                if self.unknownName == .reject { return .failure(UnknownServerName(name: serverName ?? "(none)")) }
                return .success(.noChanges)
            }
            guard index > 0 else { return .success(.noChanges) }
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = self.chains[index].chain
            override.privateKey = self.chains[index].key
            return .success(override)
        }
    }

    /// The TLS fronts of every service that has `tls`, by name; or every problem with their files, by key.
    public static func load(
        _ config: DirectorConfig, configPath: String?, now: Date = Date()
    ) throws(ConfigError)
        -> [String: TLSFront]
    {
        var fronts: [String: TLSFront] = [:]
        var problems: [ConfigProblem] = []
        let base = configPath.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path } ?? "."
        for (index, service) in config.services.enumerated() {
            guard let tls = service.tls else { continue }
            switch Self.load(tls, http2: service.http2, path: "services[\(index)].tls", base: base, now: now) {
            case .success(let front): fronts[service.name] = front
            case .failure(let error): problems += error.problems
            }
        }
        guard problems.isEmpty else { throw ConfigError(source: configPath ?? "config", problems: problems) }
        return fronts
    }

    struct Problems: Error { var problems: [ConfigProblem] }

    static func load(
        _ config: TLSConfig, http2: Bool, path: String, base: String, now: Date
    ) -> Result<
        TLSFront, Problems
    > {
        var problems: [ConfigProblem] = []
        func problem(_ key: String, _ message: String) {
            problems.append(ConfigProblem(path: key, line: nil, message: message))
        }
        func resolve(_ file: String) -> String { file.hasPrefix("/") ? file : "\(base)/\(file)" }

        var identities = Identities()
        var names: [[String]] = []
        var files: [(cert: String, key: String)] = []
        for (index, certificate) in config.certificates.enumerated() {
            let key = "\(path).certificates[\(index)]"
            let certFile = resolve(certificate.cert)
            let keyFile = resolve(certificate.key)
            let chain: [NIOSSLCertificate]
            do {
                chain = try NIOSSLCertificate.fromPEMFile(certFile)
            } catch {
                problem(
                    "\(key).cert",
                    "\(certFile): \(Self.describe(file: certFile, what: "a PEM certificate", error: error))")
                continue
            }
            guard let leaf = chain.first else {
                problem("\(key).cert", "\(certFile): no certificate in it")
                continue
            }
            let privateKey: NIOSSLPrivateKey
            do {
                privateKey = try NIOSSLPrivateKey(file: keyFile, format: .pem)
            } catch {
                problem(
                    "\(key).key", "\(keyFile): \(Self.describe(file: keyFile, what: "a PEM private key", error: error))"
                )
                continue
            }
            let notAfter = Date(timeIntervalSince1970: TimeInterval(leaf.notValidAfter))
            let notBefore = Date(timeIntervalSince1970: TimeInterval(leaf.notValidBefore))
            if notAfter < now {
                problem("\(key).cert", "\(certFile): the certificate expired on \(Self.day(notAfter))")
                continue
            }
            if notBefore > now {
                problem("\(key).cert", "\(certFile): the certificate is not valid before \(Self.day(notBefore))")
                continue
            }
            // BoringSSL checks the key against the certificate when both go into one context.
            do {
                _ = try NIOSSLContext(
                    configuration: .makeServerConfiguration(
                        certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey)))
            } catch {
                problem("\(key).key", "\(keyFile): the key does not belong to the certificate in \(certFile)")
                continue
            }
            identities.chains.append((chain.map { .certificate($0) }, .privateKey(privateKey)))
            files.append((certFile, keyFile))
            names.append(certificate.names.isEmpty ? Self.dnsNames(leaf) : certificate.names)
        }
        var configuration: TLSConfiguration
        if let first = identities.chains.first {
            configuration = .makeServerConfiguration(certificateChain: first.chain, privateKey: first.key)
        } else {
            return .failure(Problems(problems: problems))
        }
        configuration.minimumTLSVersion = config.minVersion == .v1_3 ? .tlsv13 : .tlsv12
        configuration.cipherSuites = config.ciphers ?? TLSConfig.modernCiphers
        configuration.applicationProtocols = http2 ? config.alpn : config.alpn.filter { $0 != "h2" }
        if let ca = config.clientCA {
            let caFile = resolve(ca)
            if (try? NIOSSLCertificate.fromPEMFile(caFile))?.isEmpty ?? true {
                problem("\(path).client_ca", "\(caFile): \(Self.describe(file: caFile, what: "a PEM certificate"))")
            }
            configuration.trustRoots = .file(caFile)
            configuration.sendCANameList = true
            configuration.certificateVerification =
                config.clientAuth == .required ? .noHostnameVerification : .optionalVerification
        } else {
            configuration.certificateVerification = .none
        }
        identities.names = ServerNameTable(names)
        identities.unknownName = config.unknownName
        if identities.chains.count > 1 || config.unknownName == .reject {
            let chooser = identities
            configuration.sslContextCallback = { values, promise in
                promise.completeWith(chooser.override(for: values.serverHostname))
            }
        }
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            problem(path, "cannot build the TLS context: \(error) (check ciphers and client_ca)")
            return .failure(Problems(problems: problems))
        }
        guard problems.isEmpty else { return .failure(Problems(problems: problems)) }
        // What BoringSSL refuses here NIOSSL took above (it is BoringSSL too): then the NIO proxy serves them all.
        let relay =
            config.clientCA != nil
            ? nil
            : try? RelayTLSContext(
                certificates: files, names: identities.names, rejectUnknown: config.unknownName == .reject,
                minVersion: config.minVersion, ciphers: config.ciphers ?? TLSConfig.modernCiphers,
                alpn: configuration.applicationProtocols)
        return .success(
            TLSFront(
                context: context, identities: identities, offersH2: configuration.applicationProtocols.contains("h2"),
                relay: relay))
    }

    struct UnknownServerName: Error, CustomStringConvertible {
        var name: String
        var description: String { "no certificate serves the name '\(self.name)' (tls.unknown_name: reject)" }
    }

    /// The DNS names of a certificate's subjectAltName.
    static func dnsNames(_ certificate: NIOSSLCertificate) -> [String] {
        certificate._subjectAlternativeNames().compactMap { name in
            guard name.nameType == .dnsName else { return nil }
            return name.contents.withUnsafeBufferPointer { String(decoding: $0, as: UTF8.self) }
        }
    }

    /// Why `file` could not be read as `what`: missing, unreadable, or not that (with the parser's error).
    static func describe(file: String, what: String, error: Error? = nil) -> String {
        if !FileManager.default.fileExists(atPath: file) { return "no such file" }
        if !FileManager.default.isReadableFile(atPath: file) { return "not readable by this user" }
        return "not \(what)" + (error.map { " (\($0))" } ?? "")
    }

    static func day(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate]
        return formatter.string(from: date)
    }
}
