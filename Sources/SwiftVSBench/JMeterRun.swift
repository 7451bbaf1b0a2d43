import Foundation
import SwiftVSSystem

/// A `jmeter` step: JMeter as an outside client, in non-GUI mode, bounded in time, its JTL folded into the report.
///
/// Debian's JMeter 2.13 cannot load any test plan as installed (its XStream denies every type and JMeter never grants
/// one): the step compiles a small launcher (`launcherSource`, with `javac`) that grants them and then runs JMeter's
/// own main. Other JMeter installations start through the same launcher, which does nothing they need not.
extension ScenarioRunner {
    func jmeter(_ step: JMeterStep) async throws -> PhaseReport {
        let jar = "\(step.home)/bin/ApacheJMeter.jar"
        guard FileManager.default.fileExists(atPath: jar) else {
            throw StepFailed(
                description:
                    "jmeter \(step.name): JMeter is missing (no \(jar)); on Debian: apt-get install jmeter jmeter-http, "
                    + "or give the step's home: DIR")
        }
        guard FileManager.default.fileExists(atPath: step.plan) else {
            throw StepFailed(description: "jmeter \(step.name): no test plan at \(step.plan)")
        }
        let launcher = try self.jmeterLauncher(jar: jar)
        let jtl = "\(self.logDirectory)/\(step.name).jtl"
        try? FileManager.default.removeItem(atPath: jtl)
        var arguments = [
            "java", "-Djmeter.home=\(step.home)", "-cp", "\(launcher):\(jar)", "JMeterLauncher", "-n", "-t", step.plan,
            "-l", jtl, "-j", "\(self.logDirectory)/\(step.name).jmeter.log",
            "-Jjmeter.save.saveservice.output_format=csv", "-Jjmeter.save.saveservice.print_field_names=true",
        ]
        arguments += step.properties.sorted { $0.key < $1.key }.map { "-J\($0.key)=\($0.value)" }
        self.say(
            "jmeter \(step.name): \(step.plan) \(step.properties.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))"
        )
        let log = "\(self.logDirectory)/\(step.name).jmeter.out"
        let process: ManagedProcess
        do {
            process = try ManagedProcess(
                ["/usr/bin/env"] + arguments, stdout: .file(log, append: false), stderr: .sameAsOutput, logPath: log)
        } catch {
            throw StepFailed(description: "jmeter \(step.name): cannot start java: \(error)")
        }
        let pid = process.pid
        let sampler = CPUSampler(
            targets: self.watchTargets(step.watch) + [WatchTarget(name: "jmeter", resolve: { [pid] })])
        let replicas = step.replicasFrom.flatMap { ReplicaPoller(address: $0) }
        let started = ContinuousClock.now
        sampler.sample(t: 0)
        replicas?.sample(t: 0)
        var code: Int32?
        while code == nil {
            code = await process.wait(seconds: 1)
            let t = Double((ContinuousClock.now - started).components.seconds)
            sampler.sample(t: t)
            replicas?.sample(t: t)
            if code == nil && t >= step.timeout {
                await process.stop(signal: SIGTERM, seconds: 5)
                throw StepFailed(
                    description: "jmeter \(step.name): still running after \(BenchFormat.number(step.timeout)) s "
                        + "(the step's timeout); stopped. Output in \(log)")
            }
        }
        guard code == 0, let text = try? String(contentsOfFile: jtl, encoding: .utf8) else {
            let tail = (try? String(contentsOfFile: log, encoding: .utf8)).map { String($0.suffix(600)) } ?? ""
            throw StepFailed(
                description:
                    "jmeter \(step.name): JMeter exited with \(code ?? -1) and no results; output in \(log): \(tail)")
        }
        let samples: [JTL.Sample]
        do { samples = try JTL.parse(text) } catch {
            throw StepFailed(description: "jmeter \(step.name): \(jtl): \(error)")
        }
        let target = BenchTarget(host: "jmeter", port: 0, path: step.plan, url: "jmeter:\(step.plan)")
        var spec = LoadSpec(targets: [target])
        spec.threads = 1
        var phase = JTL.phase(
            name: step.name, samples: samples, spec: spec, cpu: sampler.series, machine: sampler.machine)
        phase.replicas = replicas?.all ?? []
        self.say(
            "\(step.name): \(samples.count) samples, \(BenchFormat.number(phase.requestsPerSecond, decimals: 1)) ok/s, "
                + "\(phase.counters.failed) failed, p50 \(BenchFormat.ms(phase.latency.p50Ms)) ms")
        return phase
    }

    /// The launcher, compiled once per run into the log directory.
    func jmeterLauncher(jar: String) throws -> String {
        let directory = "\(self.logDirectory)/jmeter-launcher"
        if FileManager.default.fileExists(atPath: "\(directory)/JMeterLauncher.class") { return directory }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let source = "\(directory)/JMeterLauncher.java"
        try Self.launcherSource.write(toFile: source, atomically: true, encoding: .utf8)
        let code = Spawn.run(["/usr/bin/env", "javac", "-d", directory, "-cp", jar, source])
        guard code == 0 else {
            throw StepFailed(
                description: "jmeter: cannot compile the launcher JMeter 2.13 needs (javac exited with \(code)); "
                    + "on Debian: apt-get install default-jdk-headless")
        }
        return directory
    }

    static let launcherSource = """
        // Starts JMeter 2.13 as Debian packages it, which cannot load any test plan as installed: Debian's XStream
        // denies every type unless the caller grants permissions, and JMeter 2.13's SaveService never does. This
        // grants them on SaveService's two XStream instances, then runs JMeter's own main with the same arguments.
        import java.lang.reflect.Field;
        import java.lang.reflect.Method;

        public final class JMeterLauncher {
            public static void main(String[] args) throws Exception {
                String home = System.getProperty("jmeter.home", "/usr/share/jmeter");
                Class<?> newDriver = Class.forName("org.apache.jmeter.NewDriver");
                Field loaderField = newDriver.getDeclaredField("loader");
                loaderField.setAccessible(true);
                ClassLoader loader = (ClassLoader) loaderField.get(null);
                Thread.currentThread().setContextClassLoader(loader);
                Class<?> utils = Class.forName("org.apache.jmeter.util.JMeterUtils", true, loader);
                utils.getMethod("setJMeterHome", String.class).invoke(null, home);
                utils.getMethod("loadJMeterProperties", String.class).invoke(null, home + "/bin/jmeter.properties");
                try {
                    Class<?> saveService = Class.forName("org.apache.jmeter.save.SaveService", true, loader);
                    Class<?> permission = Class.forName("com.thoughtworks.xstream.security.TypePermission", true, loader);
                    Object any = Class.forName("com.thoughtworks.xstream.security.AnyTypePermission", true, loader)
                        .getField("ANY").get(null);
                    for (String name : new String[] {"JMXSAVER", "JTLSAVER"}) {
                        Field field = saveService.getDeclaredField(name);
                        field.setAccessible(true);
                        Object xstream = field.get(null);
                        Method add = xstream.getClass().getMethod("addPermission", permission);
                        add.invoke(xstream, any);
                    }
                } catch (ReflectiveOperationException e) {
                    // A JMeter or XStream without these fields needs no permissions granted.
                }
                newDriver.getMethod("main", String[].class).invoke(null, (Object) args);
            }
        }

        """
}
