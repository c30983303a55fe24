// MARK: - Error codes of the JOSE layer

extension CryptoError.Code {
    /// A JOSE header names an algorithm that does not fit the key (ES384 with a P-256 key, ECDH-ES with an RSA key,
    /// a JWK whose `alg` member differs from the header): refused so that no algorithm confusion is possible.
    public static let algorithmMismatch = CryptoError.Code("algorithmMismatch")
    /// A key is too weak to accept (an RSA modulus below 2048 bits).
    public static let weakKey = CryptoError.Code("weakKey")
}

/// Caps that keep JOSE parsing of untrusted input bounded.
public enum JOSELimits {
    /// The longest compact JWS accepted (EAR tokens are kept under 8 KiB; this leaves room for peers' tokens).
    public static let maximumCompactJWSBytes = 256 * 1024
    /// The longest flattened JWE document accepted.
    public static let maximumJWEBytes = 32 * 1024 * 1024
    /// The largest RSA modulus accepted, in bits (bigger keys only cost the verifier time).
    public static let maximumRSABits = 16384
    /// The smallest RSA modulus accepted, in bits.
    public static let minimumRSABits = 2048
    /// The deepest JSON nesting a JOSE header or JWK may have.
    public static let maximumHeaderDepth = 16
}

/// Parses JSON for the JOSE layer, turning a ``JSONError`` into a ``CryptoError``.
func joseParseJSON(_ bytes: some Collection<UInt8>, what: String, maxDepth: Int = JOSELimits.maximumHeaderDepth) throws(CryptoError)
    -> JSONValue
{
    do throws(JSONError) {
        return try JSONValue.parse(bytes, maxDepth: maxDepth)
    } catch {
        throw CryptoError(.malformedInput, "\(what) is not valid JSON: \(error)")
    }
}

/// The members of a JSON object, or a typed error naming `what`.
func joseObject(_ value: JSONValue, what: String) throws(CryptoError) -> [String: JSONValue] {
    guard case .object(let members) = value else { throw CryptoError(.malformedInput, "\(what) must be a JSON object") }
    return members
}

/// An optional string member; present with another type is an error.
func joseOptionalString(_ members: [String: JSONValue], _ name: String, in what: String) throws(CryptoError) -> String? {
    guard let value = members[name] else { return nil }
    guard case .string(let text) = value else { throw CryptoError(.malformedInput, "\(what) member \"\(name)\" must be a string") }
    return text
}

/// A required string member.
func joseRequiredString(_ members: [String: JSONValue], _ name: String, in what: String) throws(CryptoError) -> String {
    guard let text = try joseOptionalString(members, name, in: what) else {
        throw CryptoError(.malformedInput, "\(what) lacks the required member \"\(name)\"")
    }
    return text
}
