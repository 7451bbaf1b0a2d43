/// Judges one HTTP health-check response, as keepalived's `HTTP_GET` does: the status must be in the expected
/// ranges, and when set, the body's MD5 must equal `digest` and the body must match `regex`.
///
/// The regex is matched by the caller (the core stays free of a regex engine's allocation on every check);
/// this type reports the status and digest parts and words the result.
public enum HTTPCheckVerdict {
    public static func judge(
        status: Int, reason: String, body: [UInt8], check: HealthCheckConfig, bodyMatches: Bool? = nil
    ) -> CheckResult {
        let statusText = reason.isEmpty ? "\(status)" : "\(status) \(reason)"
        guard check.expectStatus.contains(where: { $0.contains(status) }) else {
            let expected = check.expectStatus.map(\.description).joined(separator: ",")
            return .failed("status \(statusText), expected \(expected)")
        }
        if let digest = check.digest {
            let actual = MD5.hex(body)
            guard actual == digest else { return .failed("body digest \(actual), expected \(digest)") }
        }
        if let matches = bodyMatches, !matches, let regex = check.regex {
            return .failed("body does not match /\(regex)/")
        }
        return .passed(statusText)
    }
}
