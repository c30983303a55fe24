import Foundation
public import NIOCore
public import NIOHTTP1
import NIOPosix
import Synchronization

/// The canned server has no bound port.
struct CannedServerError: Error {}

/// One canned HTTP response.
public struct CannedResponse: Sendable {
    public var status: HTTPResponseStatus = .ok
    public var headers: [(String, String)] = []
    public var body: [UInt8]
    public init(status: HTTPResponseStatus = .ok, headers: [(String, String)] = [], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// Answers each request by its exact URI (path and query); anything else is a 404, so a wrong path or query fails the
/// fetch the way the real PCS would.
final class CannedHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let routes: [String: CannedResponse]
    private let log: CannedHTTPServer.RequestLog
    private var uri = ""

    init(routes: [String: CannedResponse], log: CannedHTTPServer.RequestLog) {
        self.routes = routes
        self.log = log
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): uri = head.uri
        case .body: break
        case .end:
            log.append(uri)
            let response = routes[uri] ?? CannedResponse(status: .notFound, body: Array("no route for \(uri)".utf8))
            var headers = HTTPHeaders()
            for (name, value) in response.headers { headers.add(name: name, value: value) }
            headers.replaceOrAdd(name: "Content-Length", value: "\(response.body.count)")
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: response.body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}

/// An HTTP/1.1 server on 127.0.0.1 with an ephemeral port, serving canned responses.
public struct CannedHTTPServer: Sendable {
    let channel: any Channel
    public let port: Int
    /// The URIs requested so far, in order.
    public let log: RequestLog

    /// The URIs a server was asked for.
    public final class RequestLog: Sendable {
        private let uris = Mutex<[String]>([])
        func append(_ uri: String) { uris.withLock { $0.append(uri) } }
        public var all: [String] { uris.withLock { $0 } }
    }

    public static func start(routes: [String: CannedResponse]) async throws -> CannedHTTPServer {
        let log = RequestLog()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(CannedHTTPHandler(routes: routes, log: log))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        guard let port = channel.localAddress?.port else { throw CannedServerError() }
        return CannedHTTPServer(channel: channel, port: port, log: log)
    }

    public var base: String { "http://127.0.0.1:\(port)" }

    public func stop() async { try? await channel.close() }
}

/// URL-encodes like Intel PCS encodes its issuer-chain headers: every byte outside the RFC 3986 unreserved set
/// becomes `%XX` (spaces `%20`, newlines `%0A`, `+` `%2B`, `/` `%2F`, `=` `%3D`).
public func pcsURLEncode(_ text: String) -> String {
    var out = ""
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            out.unicodeScalars.append(Unicode.Scalar(byte))
        default:
            out += "%" + String(format: "%02X", byte)
        }
    }
    return out
}
