import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The web role: the browser client's three files with their content types and cache headers. The page itself is
/// revalidated every time (`no-cache` with an ETag), so a new release reaches browsers at once; the script and style
/// sheet are named by their content hash in the page and cached for a year (`immutable`).
public enum ClientAssets {
    public struct Asset: Sendable {
        public let path: String
        public let contentType: String
        public let body: String
        public let etag: String
        public let cacheControl: String
    }

    static func asset(_ path: String, _ type: String, _ body: String, immutable: Bool) -> Asset {
        let hash = SHA256.hash(data: Data(body.utf8)).prefix(8).map { String(format: "%02x", $0) }.joined()
        return Asset(
            path: path, contentType: type, body: body, etag: "\"\(hash)\"",
            cacheControl: immutable ? "public, max-age=31536000, immutable" : "no-cache")
    }

    public static let script = asset(
        "/assets/app.js", "text/javascript; charset=utf-8", ClientPages.appJS, immutable: true)
    public static let style = asset("/assets/app.css", "text/css; charset=utf-8", ClientPages.appCSS, immutable: true)
    /// The page, pointing at the hashed names of the script and style sheet.
    public static let page = asset(
        "/", "text/html; charset=utf-8",
        ClientPages.indexHTML
            .replacingOccurrences(of: "/assets/app.css", with: "/assets/app.css?v=\(style.etag.dropFirst().dropLast())")
            .replacingOccurrences(of: "/assets/app.js", with: "/assets/app.js?v=\(script.etag.dropFirst().dropLast())"),
        immutable: false)

    public static let all = [page, script, style]

    static func addRoutes(to router: Router<BasicRequestContext>) {
        for asset in all {
            let handler: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
                var headers: HTTPFields = [
                    .contentType: asset.contentType, .eTag: asset.etag, .cacheControl: asset.cacheControl,
                    HTTPField.Name("X-Content-Type-Options")!: "nosniff",
                ]
                if request.headers[.ifNoneMatch] == asset.etag {
                    headers[.contentType] = nil
                    return Response(status: .notModified, headers: headers)
                }
                return Response(
                    status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: asset.body)))
            }
            router.get(RouterPath(asset.path), use: handler)
            router.head(RouterPath(asset.path), use: handler)
        }
        router.get("/index.html", use: { _, _ in Response(status: .movedPermanently, headers: [.location: "/"]) })
    }
}
