public import CustosCrypto
public import CustosKBS
public import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The EAR signing keys (ES256, P-256), kept in `DATA/token-keys/`: one PKCS#8 PEM per key (`<kid>.pem`, mode
/// 0600) and `keys.json` naming the current key and the retired ones with their retirement time. The JWKS lists
/// the current key and every retired key whose tokens may still be valid (retired less than a token lifetime ago),
/// so rotating never breaks a token already issued (issue 11 §3). `custos keys rotate` rotates; a running service
/// picks the new key up on its next start.
public final class TokenKeyRing: Sendable {
    public struct Retired: Sendable, Equatable {
        public let keyID: String
        public let retiredAt: Date
    }

    struct State: Sendable {
        var current: ECPrivateKey
        var retired: [(key: ECPrivateKey, retiredAt: Date)]
    }

    public let directory: URL
    private let state: Mutex<State>

    private init(directory: URL, state: State) {
        self.directory = directory
        self.state = Mutex(state)
    }

    public static let directoryName = "token-keys"

    /// Opens the ring in `dataDirectory`, creating a first key when there is none.
    /// - Throws: ``ConfigurationError`` for an unreadable, malformed or group/other-readable key file.
    public static func open(dataDirectory: URL, create: Bool = true) throws -> TokenKeyRing {
        let directory = dataDirectory.appendingPathComponent(directoryName)
        let index = directory.appendingPathComponent("keys.json")
        if !FileManager.default.fileExists(atPath: index.path) {
            guard create else { throw ConfigurationError("no token keys in \(directory.path)") }
            try FileManager.default.createDirectory(
                at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let key = try ECPrivateKey(generating: .p256)
            let ring = TokenKeyRing(directory: directory, state: State(current: key, retired: []))
            try ring.persist()
            return ring
        }
        let document: JSONValue
        do { document = try JSONValue.parse(Array(try Data(contentsOf: index))) } catch {
            throw ConfigurationError("\(index.path): \(error)")
        }
        guard case .string(let currentID)? = document["current"] else { throw ConfigurationError("\(index.path) names no current key") }
        let current = try loadKey(directory: directory, keyID: currentID)
        var retired: [(key: ECPrivateKey, retiredAt: Date)] = []
        if case .array(let entries)? = document["retired"] {
            for entry in entries {
                guard case .string(let keyID)? = entry["kid"], case .integer(let seconds)? = entry["retired_at"] else {
                    throw ConfigurationError("\(index.path): a retired entry needs kid and retired_at")
                }
                retired.append((try loadKey(directory: directory, keyID: keyID), Date(timeIntervalSince1970: Double(seconds))))
            }
        }
        return TokenKeyRing(directory: directory, state: State(current: current, retired: retired))
    }

    static func loadKey(directory: URL, keyID: String) throws -> ECPrivateKey {
        guard keyID.utf8.count == 43, keyID.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw ConfigurationError("token key id \"\(keyID)\" is not an RFC 7638 thumbprint")
        }
        let path = directory.appendingPathComponent("\(keyID).pem").path
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue
        else { throw ConfigurationError("token key \(path) is missing") }
        guard mode & 0o077 == 0 else { throw ConfigurationError("token key \(path) is readable by group or others (chmod 600 it)") }
        do {
            let key = try ECPrivateKey(pem: String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self))
            guard JSONWebKey(.ec(key.publicKey)).thumbprintBase64URL == keyID else {
                throw ConfigurationError("token key \(path) does not match its file name")
            }
            return key
        } catch let error as ConfigurationError { throw error } catch { throw ConfigurationError("token key \(path): \(error)") }
    }

    public static func keyID(_ key: ECPrivateKey) -> String { JSONWebKey(.ec(key.publicKey)).thumbprintBase64URL }

    /// Writes every key file that is missing (0600, exclusive create) and then `keys.json` atomically.
    func persist() throws {
        let snapshot = state.withLock { $0 }
        for key in [snapshot.current] + snapshot.retired.map(\.key) {
            let path = directory.appendingPathComponent("\(Self.keyID(key)).pem").path
            if FileManager.default.fileExists(atPath: path) { continue }
            let pem = Array(try key.pkcs8PEM().utf8)
            let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw ConfigurationError("cannot create \(path)") }
            defer { close(fd) }
            guard pem.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == pem.count, fsync(fd) == 0 else {
                throw ConfigurationError("cannot write \(path)")
            }
        }
        let index: JSONValue = [
            "current": .string(Self.keyID(snapshot.current)),
            "retired": .array(
                snapshot.retired.map {
                    ["kid": .string(Self.keyID($0.key)), "retired_at": .integer(Int64($0.retiredAt.timeIntervalSince1970))]
                }),
        ]
        try Data(CanonicalJSON.encode(index)).write(to: directory.appendingPathComponent("keys.json"), options: .atomic)
    }

    /// The current signing key.
    public var current: ECPrivateKey { state.withLock { $0.current } }
    public var currentKeyID: String { Self.keyID(current) }

    /// The retired keys still listed.
    public var retired: [Retired] { state.withLock { $0.retired.map { Retired(keyID: Self.keyID($0.key), retiredAt: $0.retiredAt) } } }

    /// The keys a verifier accepts at `now`: the current one and those retired less than `tokenLifetime` ago.
    public func publishedKeys(now: Date, tokenLifetime: TimeInterval) -> JSONWebKeySet {
        let snapshot = state.withLock { $0 }
        let keys = [snapshot.current] + snapshot.retired.filter { $0.retiredAt.addingTimeInterval(tokenLifetime) > now }.map(\.key)
        return JSONWebKeySet(keys: keys.map { JSONWebKey(.ec($0.publicKey), algorithm: "ES256", keyID: Self.keyID($0), use: "sig") })
    }

    /// Makes a new current key; the old one is retired now. Retired keys older than `dropAfter` are forgotten
    /// (their files stay, for audits of old tokens).
    @discardableResult
    public func rotate(now: Date, dropAfter: TimeInterval = 86_400) throws -> (old: String, new: String) {
        let fresh = try ECPrivateKey(generating: .p256)
        let old = state.withLock { state -> String in
            let old = Self.keyID(state.current)
            state.retired.insert((state.current, now), at: 0)
            state.retired.removeAll { $0.retiredAt.addingTimeInterval(dropAfter) < now }
            state.current = fresh
            return old
        }
        try persist()
        return (old, Self.keyID(fresh))
    }
}
