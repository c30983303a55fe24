public import Hummingbird
import Logging
public import NIOCore

/// The per-request context: Hummingbird's core storage plus the request id every response echoes and every log
/// line carries.
public struct CustosRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// `request-id` of the request (the client's, when it sent a well-formed one, else a new one).
    public var requestID: String

    /// The TCP peer (a proxy, when one forwards the requests); its text is made only when asked for.
    public var peer: SocketAddress?

    /// The TCP peer's IP address, or nil when it has none.
    public var clientAddress: String? { peer?.ipAddress }

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.requestID = ""
        self.peer = source.channel.remoteAddress
    }

    /// Bodies are collected explicitly with per-route limits (`RequestBodies`); this is the outer bound.
    public var maxUploadSize: Int { 1 << 20 }
}
