public import CustosCrypto
public import Foundation

/// The active policies and file-defined reference values of one directory (`Policies/`).
///
/// Loading is all-or-nothing: ``load(directory:at:)`` returns a complete new set or throws every problem found, so
/// a bad file never half-replaces the active set (the caller swaps the whole value).
public struct PolicySet: Sendable {
    /// Every policy, sorted by id.
    public let policies: [LoadedPolicy]
    /// The reference-value sets defined by `kind: ReferenceValues` files, by name.
    public let referenceValues: [String: ReferenceValueSet]

    /// The policy with this id.
    public func policy(id: String) -> LoadedPolicy? { policies.first { $0.id == id } }

    /// The file-defined sets marked `examples: true`, by name: measurements of public images that any TD booting
    /// those images matches. The service and `custos policy lint` warn while they are loaded.
    public var exampleSets: [ReferenceValueSet] { referenceValues.values.filter(\.isExample).sorted { $0.name < $1.name } }

    /// The release policy of a tenant.
    public func releasePolicy(tenant: String) -> ReleasePolicy? { policies.lazy.compactMap(\.release).first { $0.tenant == tenant } }

    /// Most files a directory may hold.
    public static let maximumFiles = 4096

    /// Loads every `*.yaml` / `*.yml` file under `directory` (recursively; hidden entries skipped).
    ///
    /// - Parameter time: the load time; a file-defined reference set that has expired by then may not be used.
    /// - Throws: ``PolicyLoadError`` listing every problem as `file:line:column: message`, files relative to
    ///   `directory`.
    public static func load(directory: URL, at time: Date = Date()) throws(PolicyLoadError) -> PolicySet {
        let here = SourceLocation(file: ".", line: 1, column: 1)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw PolicyLoadError(here, "policy directory \(directory.path) does not exist")
        }
        guard let enumerator = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil, options: [.skipsHiddenFiles])
        else {
            throw PolicyLoadError(here, "cannot list \(directory.path)")
        }
        let base = directory.standardizedFileURL.resolvingSymlinksInPath().path
        var files: [(relative: String, url: URL)] = []
        for case let url as URL in enumerator where ["yaml", "yml"].contains(url.pathExtension.lowercased()) {
            let full = url.standardizedFileURL.resolvingSymlinksInPath().path
            let relative = full.hasPrefix(base + "/") ? String(full.dropFirst(base.count + 1)) : url.lastPathComponent
            files.append((relative, url))
            if files.count > maximumFiles { throw PolicyLoadError(here, "more than \(maximumFiles) policy files") }
        }
        files.sort { $0.relative < $1.relative }
        var sources: [(file: String, text: String)] = []
        var diagnostics = Diagnostics()
        for file in files {
            let location = SourceLocation(file: file.relative, line: 1, column: 1)
            guard let data = try? Data(contentsOf: file.url) else {
                diagnostics.add(location, "cannot read the file")
                continue
            }
            guard let text = String(data: data, encoding: .utf8) else {
                diagnostics.add(location, "not UTF-8 text")
                continue
            }
            sources.append((file.relative, text))
        }
        return try load(sources: sources, at: time, diagnostics: diagnostics)
    }

    /// Loads a set from file texts (`file` names are what problems cite).
    public static func load(sources: [(file: String, text: String)], at time: Date = Date()) throws(PolicyLoadError) -> PolicySet {
        try load(sources: sources, at: time, diagnostics: Diagnostics())
    }

    private static func load(sources: [(file: String, text: String)], at time: Date, diagnostics: Diagnostics) throws(PolicyLoadError)
        -> PolicySet
    {
        var loader = PolicyLoader(time: time, checkFileSets: true)
        loader.diagnostics = diagnostics
        var parsed: [(file: String, root: YNode, kind: String?)] = []
        for source in sources {
            guard let root = YNode.parse(source.text, file: source.file, diagnostics: &loader.diagnostics) else { continue }
            parsed.append((source.file, root, loader.kind(of: root)))
        }
        // Reference values first: policies are checked against them.
        for document in parsed where document.kind == "ReferenceValues" { loader.loadReferenceValues(document.root) }
        var policies: [LoadedPolicy] = []
        var ids: [String: SourceLocation] = [:]
        var tenants: [String: SourceLocation] = [:]
        for document in parsed where document.kind != "ReferenceValues" {
            guard let policy = loader.loadPolicy(document.root) else { continue }
            let idLocation = loader.location(ofKey: "id", in: document.root)
            if let first = ids[policy.id] {
                loader.diagnostics.add(idLocation, "duplicate policy id '\(policy.id)' (first defined at \(first))")
                continue
            }
            ids[policy.id] = idLocation
            if let release = policy.release {
                let tenantLocation = loader.location(ofKey: "tenant", in: document.root)
                if let first = tenants[release.tenant] {
                    loader.diagnostics.add(tenantLocation, "tenant '\(release.tenant)' already has a release policy (at \(first))")
                    continue
                }
                tenants[release.tenant] = tenantLocation
            }
            policies.append(policy)
        }
        if !loader.diagnostics.isEmpty { throw PolicyLoadError(problems: loader.sortedProblems) }
        return PolicySet(
            policies: policies.sorted { $0.id < $1.id }, referenceValues: loader.fileSets.mapValues(\.set))
    }

    /// Parses and checks one policy file on its own (no reference-value files: `inRef` names are only checked
    /// against the policy's declarations). What `custos policy hash` uses.
    public static func parsePolicy(yaml text: String, file: String, at time: Date = Date()) throws(PolicyLoadError) -> LoadedPolicy {
        var loader = PolicyLoader(time: time, checkFileSets: false)
        guard let root = YNode.parse(text, file: file, diagnostics: &loader.diagnostics) else {
            throw PolicyLoadError(problems: loader.sortedProblems)
        }
        if loader.kind(of: root) == "ReferenceValues" {
            throw PolicyLoadError(root.location, "a ReferenceValues file is not a policy")
        }
        let policy = loader.loadPolicy(root)
        guard let policy, loader.diagnostics.isEmpty else { throw PolicyLoadError(problems: loader.sortedProblems) }
        return policy
    }

    /// The content hash of a parsed policy document: hex SHA-256 of its RFC 8785 canonical JSON.
    public static func sha256(of document: JSONValue) -> String { Hex.encode(Digest.sha256(CanonicalJSON.encode(document))) }
}

/// The policy language's reader: strict keys and types, positions for every problem.
struct PolicyLoader {
    static let apiVersion = "custos/v1"
    static let teesByKind: [PolicyKind: [String]] = [.appraisal: ["tdx"], .launch: ["sev", "sev-es"]]

    var diagnostics = Diagnostics()
    let time: Date
    /// Whether `inRef` is checked against the file-defined sets (off for a single file on its own).
    let checkFileSets: Bool
    var fileSets: [String: (set: ReferenceValueSet, valueNodes: [YNode], location: SourceLocation)] = [:]

    init(time: Date, checkFileSets: Bool) {
        self.time = time
        self.checkFileSets = checkFileSets
    }

    var sortedProblems: [PolicyProblem] {
        var seen: Set<PolicyProblem> = []
        let unique = diagnostics.problems.filter { seen.insert($0).inserted }
        return unique.enumerated().sorted { a, b in
            let (l, r) = (a.element.location, b.element.location)
            if l.file != r.file { return l.file < r.file }
            if l.line != r.line { return l.line < r.line }
            if l.column != r.column { return l.column < r.column }
            return a.offset < b.offset
        }.map(\.element)
    }

    func kind(of root: YNode) -> String? {
        guard case .mapping(let members) = root.value, let kind = members.first(where: { $0.key == "kind" }),
            case .string(let text) = kind.value.value
        else { return nil }
        return text
    }

    func location(ofKey key: String, in root: YNode) -> SourceLocation {
        guard case .mapping(let members) = root.value, let member = members.first(where: { $0.key == key }) else { return root.location }
        return member.value.location
    }

    static func isValidName(_ text: String) -> Bool {
        guard let first = text.utf8.first, text.utf8.count <= 128 else { return false }
        func ok(_ byte: UInt8) -> Bool {
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || byte == 0x2D || byte == 0x2E
                || byte == 0x5F
        }
        return ok(first) && first != 0x2E && first != 0x2D && text.utf8.allSatisfy(ok)
    }

    mutating func checkHeader(_ reader: MappingReader) {
        if let version = reader.required("apiVersion", diagnostics: &diagnostics),
            let text = version.string("apiVersion", diagnostics: &diagnostics), text != Self.apiVersion
        {
            diagnostics.add(version.location, "apiVersion must be '\(Self.apiVersion)', not '\(text)'")
        }
    }

    // MARK: Reference values

    /// ```yaml
    /// apiVersion: custos/v1
    /// kind: ReferenceValues
    /// sets:
    ///   mr_td: { values: [ "…" ], expires: 2027-01-01T00:00:00Z, provenance: { … }, description: … }
    /// ```
    mutating func loadReferenceValues(_ root: YNode) {
        guard let reader = MappingReader(root, context: "a ReferenceValues file", diagnostics: &diagnostics) else { return }
        reader.checkKeys(["apiVersion", "kind", "description", "examples", "sets"], diagnostics: &diagnostics)
        checkHeader(reader)
        if let description = reader.optional("description") { _ = description.string("description", diagnostics: &diagnostics) }
        let examples = reader.optional("examples").flatMap { $0.bool("examples", diagnostics: &diagnostics) } ?? false
        guard let setsNode = reader.required("sets", diagnostics: &diagnostics),
            let sets = MappingReader(setsNode, context: "sets", diagnostics: &diagnostics)
        else { return }
        for member in sets.members {
            let name = member.key
            guard Self.isValidName(name) else {
                diagnostics.add(member.keyLocation, "reference set name '\(name)' must be letters, digits, '_', '-' or '.'")
                continue
            }
            if let first = fileSets[name] {
                diagnostics.add(member.keyLocation, "duplicate reference set '\(name)' (first defined at \(first.location))")
                continue
            }
            guard let set = MappingReader(member.value, context: "reference set '\(name)'", diagnostics: &diagnostics) else { continue }
            set.checkKeys(["values", "expires", "provenance", "description"], diagnostics: &diagnostics)
            var expires: Date? = nil
            if let node = set.optional("expires"), let text = node.string("expires", diagnostics: &diagnostics) {
                if let seconds = OrderedValue.parseDate(text) {
                    expires = Date(timeIntervalSince1970: seconds)
                } else {
                    diagnostics.add(node.location, "expires '\(text)' is not an RFC 3339 date or date-time")
                }
            }
            var provenance: JSONValue? = nil
            if let node = set.optional("provenance") {
                if case .mapping = node.value {
                    provenance = node.json
                } else {
                    diagnostics.add(node.location, "provenance must be a mapping, not \(node.typeName)")
                }
            }
            var description: String? = nil
            if let node = set.optional("description") { description = node.string("description", diagnostics: &diagnostics) }
            guard let valuesNode = set.required("values", diagnostics: &diagnostics),
                let values = valuesNode.list("values", diagnostics: &diagnostics)
            else { continue }
            var seen: Set<JSONValue> = []
            for value in values {
                switch value.value {
                case .string, .integer, .bool: break
                default: diagnostics.add(value.location, "a reference value must be a string, integer or boolean, not \(value.typeName)")
                }
                if !seen.insert(value.json).inserted { diagnostics.add(value.location, "duplicate value in reference set '\(name)'") }
            }
            let parsed = ReferenceValueSet(
                name: name, values: values.map(\.json), expires: expires, provenance: provenance, description: description,
                file: root.location.file, isExample: examples)
            fileSets[name] = (parsed, values, member.keyLocation)
        }
    }

    // MARK: Policies

    mutating func loadPolicy(_ root: YNode) -> LoadedPolicy? {
        guard let reader = MappingReader(root, context: "a policy file", diagnostics: &diagnostics) else { return nil }
        let errorsBefore = diagnostics.problems.count
        guard let kindNode = reader.required("kind", diagnostics: &diagnostics),
            let kindText = kindNode.string("kind", diagnostics: &diagnostics)
        else { return nil }
        guard let kind = PolicyKind(rawValue: kindText) else {
            let kinds = PolicyKind.allCases.map(\.rawValue) + ["ReferenceValues"]
            diagnostics.add(kindNode.location, "unknown kind '\(kindText)' (expected one of \(kinds.joined(separator: ", ")))")
            return nil
        }
        var allowed = ["apiVersion", "kind", "id", "description", "referenceValues"]
        switch kind {
        case .appraisal: allowed += ["tee", "accept", "trustVector"]
        case .launch: allowed += ["tee", "accept", "allow", "trustVector"]
        case .release: allowed += ["tenant", "default", "secrets"]
        }
        reader.checkKeys(allowed, diagnostics: &diagnostics)
        checkHeader(reader)
        var id = ""
        if let node = reader.required("id", diagnostics: &diagnostics), let text = node.string("id", diagnostics: &diagnostics) {
            if Self.isValidName(text) {
                id = text
            } else {
                diagnostics.add(node.location, "id '\(text)' must be letters, digits, '_', '-' or '.'")
            }
        }
        if let node = reader.optional("description") { _ = node.string("description", diagnostics: &diagnostics) }
        var declared: [String] = []
        if let node = reader.optional("referenceValues"), let elements = node.list("referenceValues", diagnostics: &diagnostics) {
            for element in elements {
                guard let name = element.string("a referenceValues entry", diagnostics: &diagnostics) else { continue }
                if !Self.isValidName(name) {
                    diagnostics.add(element.location, "reference set name '\(name)' must be letters, digits, '_', '-' or '.'")
                } else if declared.contains(name) {
                    diagnostics.add(element.location, "reference set '\(name)' is declared twice")
                } else {
                    declared.append(name)
                }
            }
        }
        var tee: String? = nil
        if let tees = Self.teesByKind[kind], let node = reader.required("tee", diagnostics: &diagnostics),
            let text = node.string("tee", diagnostics: &diagnostics)
        {
            if tees.contains(text) {
                tee = text
            } else {
                diagnostics.add(
                    node.location, "tee '\(text)' is not valid for \(kind.rawValue) (expected \(tees.joined(separator: " or ")))")
            }
        }
        var accept = TrustTier.affirming
        if let node = reader.optional("accept"), let text = node.string("accept", diagnostics: &diagnostics) {
            if let tier = TrustTier(rawValue: text), tier == .affirming || tier == .warning {
                accept = tier
            } else {
                diagnostics.add(node.location, "accept must be 'affirming' or 'warning', not '\(text)'")
            }
        }
        let scope = Scope(declared: Set(declared), allowStatus: kind == .release)
        let document = root.json
        let sha = PolicySet.sha256(of: document)
        let reference = "\(id)@sha256:\(sha)"
        let body: LoadedPolicy.Body?
        switch kind {
        case .appraisal:
            var rules: [TrustRule]? = nil
            if let node = reader.required("trustVector", diagnostics: &diagnostics) {
                rules = trustRules(node, scope: scope, required: true)
            }
            body = rules.map {
                .appraisal(
                    AppraisalPolicy(id: id, tee: tee ?? "", reference: reference, referenceValueNames: declared, accept: accept, rules: $0))
            }
        case .launch:
            var allow: Condition? = nil
            if let node = reader.required("allow", diagnostics: &diagnostics) { allow = condition(node, scope: scope, depth: 0) }
            var rules: [TrustRule]? = []
            if let node = reader.optional("trustVector") { rules = trustRules(node, scope: scope, required: false) }
            if let allow, let rules {
                body = .launch(
                    LaunchPolicy(
                        id: id, tee: tee ?? "", reference: reference, referenceValueNames: declared, accept: accept, allow: allow,
                        rules: rules))
            } else {
                body = nil
            }
        case .release:
            var tenant = ""
            if let node = reader.required("tenant", diagnostics: &diagnostics), let text = node.string("tenant", diagnostics: &diagnostics)
            {
                if Self.isValidName(text) {
                    tenant = text
                } else {
                    diagnostics.add(node.location, "tenant '\(text)' must be letters, digits, '_', '-' or '.'")
                }
            }
            if let node = reader.required("default", diagnostics: &diagnostics),
                let text = node.string("default", diagnostics: &diagnostics),
                text != "deny"
            {
                diagnostics.add(node.location, "default must be 'deny' (release policies are default-deny)")
            }
            var secrets: [ReleasePolicy.Secret] = []
            if let node = reader.required("secrets", diagnostics: &diagnostics),
                let elements = node.list("secrets", diagnostics: &diagnostics)
            {
                if elements.isEmpty { diagnostics.add(node.location, "secrets must list at least one entry") }
                var paths: Set<String> = []
                for element in elements {
                    guard let secret = self.secret(element, scope: scope) else { continue }
                    if !paths.insert(secret.path).inserted {
                        diagnostics.add(element.location, "secret path '\(secret.path)' is listed twice")
                        continue
                    }
                    secrets.append(secret)
                }
            }
            body = .release(ReleasePolicy(id: id, tenant: tenant, reference: reference, referenceValueNames: declared, secrets: secrets))
        }
        guard let body, diagnostics.problems.count == errorsBefore else { return nil }
        return LoadedPolicy(id: id, kind: kind, tee: tee, file: root.location.file, sha256: sha, document: document, body: body)
    }

    struct Scope {
        let declared: Set<String>
        let allowStatus: Bool
    }

    mutating func secret(_ node: YNode, scope: Scope) -> ReleasePolicy.Secret? {
        guard let reader = MappingReader(node, context: "a secrets entry", diagnostics: &diagnostics) else { return nil }
        reader.checkKeys(["path", "description", "allow", "maxReleasesPerAttestation"], diagnostics: &diagnostics)
        var path: String? = nil
        if let pathNode = reader.required("path", diagnostics: &diagnostics), let text = pathNode.string("path", diagnostics: &diagnostics)
        {
            if text.isEmpty || text.dropLast().contains("*") || text.utf8.count > 512 {
                diagnostics.add(pathNode.location, "path '\(text)' must be non-empty, with '*' only as its last character")
            } else {
                path = text
            }
        }
        if let description = reader.optional("description") { _ = description.string("description", diagnostics: &diagnostics) }
        var maximum: Int? = nil
        if let maxNode = reader.optional("maxReleasesPerAttestation"),
            let number = maxNode.integer("maxReleasesPerAttestation", diagnostics: &diagnostics)
        {
            if number >= 1, number <= 1_000_000 {
                maximum = Int(number)
            } else {
                diagnostics.add(maxNode.location, "maxReleasesPerAttestation must be between 1 and 1000000")
            }
        }
        guard let allowNode = reader.required("allow", diagnostics: &diagnostics),
            let allow = condition(allowNode, scope: scope, depth: 0), let path
        else { return nil }
        return ReleasePolicy.Secret(path: path, maxReleasesPerAttestation: maximum, allow: allow)
    }

    /// `trustVector: { <claim>: { value, when, else } | { rules: [ { value, when } ], else } }`.
    mutating func trustRules(_ node: YNode, scope: Scope, required: Bool) -> [TrustRule]? {
        guard let reader = MappingReader(node, context: "trustVector", diagnostics: &diagnostics) else { return nil }
        if reader.members.isEmpty, required { diagnostics.add(node.location, "trustVector must set at least one claim") }
        var rules: [TrustRule] = []
        var ok = true
        for member in reader.members {
            guard let claim = TrustClaim(rawValue: member.key) else {
                let names = TrustClaim.allCases.map(\.rawValue).joined(separator: ", ")
                diagnostics.add(member.keyLocation, "unknown trust claim '\(member.key)' (expected one of \(names))")
                ok = false
                continue
            }
            guard let entry = MappingReader(member.value, context: "trustVector.\(member.key)", diagnostics: &diagnostics) else {
                ok = false
                continue
            }
            var branches: [TrustRule.Branch] = []
            if entry.has("rules") {
                entry.checkKeys(["rules", "else"], diagnostics: &diagnostics)
                if let list = entry.optional("rules")?.list("rules", diagnostics: &diagnostics) {
                    if list.isEmpty { diagnostics.add(member.value.location, "rules must list at least one rule") }
                    for element in list {
                        guard let rule = MappingReader(element, context: "a rule of \(member.key)", diagnostics: &diagnostics) else {
                            continue
                        }
                        rule.checkKeys(["value", "when"], diagnostics: &diagnostics)
                        if let branch = self.branch(rule, scope: scope) { branches.append(branch) } else { ok = false }
                    }
                }
            } else {
                entry.checkKeys(["value", "when", "else"], diagnostics: &diagnostics)
                if let branch = self.branch(entry, scope: scope) { branches.append(branch) } else { ok = false }
            }
            guard let elseNode = entry.required("else", diagnostics: &diagnostics), let elseValue = tierValue(elseNode, "else") else {
                ok = false
                continue
            }
            rules.append(TrustRule(claim: claim, branches: branches, elseValue: elseValue))
        }
        return ok ? rules.sorted { $0.claim < $1.claim } : nil
    }

    mutating func branch(_ reader: MappingReader, scope: Scope) -> TrustRule.Branch? {
        let valueNode = reader.required("value", diagnostics: &diagnostics)
        let whenNode = reader.required("when", diagnostics: &diagnostics)
        guard let valueNode, let value = tierValue(valueNode, "value"), let whenNode, let when = condition(whenNode, scope: scope, depth: 0)
        else { return nil }
        return TrustRule.Branch(value: value, when: when)
    }

    mutating func tierValue(_ node: YNode, _ what: String) -> Int8? {
        guard let number = node.integer(what, diagnostics: &diagnostics) else { return nil }
        guard let value = Int8(exactly: number) else {
            diagnostics.add(node.location, "\(what) must be an AR4SI claim value between -128 and 127, not \(number)")
            return nil
        }
        return value
    }

    // MARK: Conditions

    static let maximumConditionDepth = 16

    mutating func condition(_ node: YNode, scope: Scope, depth: Int) -> Condition? {
        guard depth < Self.maximumConditionDepth else {
            diagnostics.add(node.location, "conditions nest deeper than \(Self.maximumConditionDepth) levels")
            return nil
        }
        guard let reader = MappingReader(node, context: "a condition", diagnostics: &diagnostics) else { return nil }
        for combinator in ["allOf", "anyOf"] where reader.has(combinator) {
            reader.checkKeys([combinator], diagnostics: &diagnostics)
            guard let list = reader.optional(combinator)?.list(combinator, diagnostics: &diagnostics) else { return nil }
            if list.isEmpty {
                diagnostics.add(node.location, "\(combinator) must list at least one condition")
                return nil
            }
            var inner: [Condition] = []
            var ok = true
            for element in list {
                if let parsed = condition(element, scope: scope, depth: depth + 1) { inner.append(parsed) } else { ok = false }
            }
            guard ok else { return nil }
            return combinator == "allOf" ? .allOf(inner) : .anyOf(inner)
        }
        if let negated = reader.optional("not") {
            reader.checkKeys(["not"], diagnostics: &diagnostics)
            return condition(negated, scope: scope, depth: depth + 1).map { .not($0) }
        }
        if let statusNode = reader.optional("status") {
            reader.checkKeys(["status"], diagnostics: &diagnostics)
            guard scope.allowStatus else {
                diagnostics.add(node.location, "a status condition is only valid in a ReleasePolicy")
                return nil
            }
            guard let text = statusNode.string("status", diagnostics: &diagnostics) else { return nil }
            guard let tier = TrustTier(rawValue: text), tier != .none else {
                diagnostics.add(statusNode.location, "status must be affirming, warning or contraindicated, not '\(text)'")
                return nil
            }
            return .status(tier)
        }
        guard let claimNode = reader.optional("claim") else {
            diagnostics.add(
                node.location,
                "a condition needs 'claim' and an operator, or one of allOf, anyOf, not\(scope.allowStatus ? ", status" : "") (has: \(reader.keys.joined(separator: ", ")))"
            )
            return nil
        }
        reader.checkKeys(["claim"] + Operator.names, diagnostics: &diagnostics)
        let operators = reader.members.filter { Operator.names.contains($0.key) }
        guard let claim = claimNode.string("claim", diagnostics: &diagnostics) else { return nil }
        guard operators.count == 1, let member = operators.first else {
            diagnostics.add(
                node.location,
                operators.isEmpty
                    ? "condition on '\(claim)' has no operator (one of \(Operator.names.joined(separator: ", ")))"
                    : "condition on '\(claim)' has \(operators.count) operators; use allOf for several")
            return nil
        }
        guard let type = ClaimSchema.type(of: claim) else {
            diagnostics.add(claimNode.location, "unknown claim '\(claim)': no evidence type defines it")
            return nil
        }
        guard let op = self.operator(member.key, member.value, claim: claim, type: type, scope: scope) else { return nil }
        return .test(
            ClaimTest(
                claim: claim, components: claim.split(separator: ".", omittingEmptySubsequences: false).map(String.init), op: op,
                location: claimNode.location))
    }

    /// Checks one operand against the claim's type.
    mutating func scalarOperand(_ node: YNode, claim: String, type: ClaimSchema.ClaimType, op: String) -> JSONValue? {
        func wrong(_ expected: String) -> JSONValue? {
            diagnostics.add(node.location, "\(op) on '\(claim)' needs \(expected), not \(node.typeName)")
            return nil
        }
        switch (type, node.value) {
        case (.hex, .string(let text)):
            guard OrderedValue.parseHex(text) != nil || text.isEmpty, text == text.lowercased() else {
                diagnostics.add(node.location, "'\(claim)' is lowercase hex; '\(text)' is not")
                return nil
            }
            return .string(text)
        case (.hex, _): return wrong("a lowercase hex string (quote it)")
        case (.string, .string(let text)), (.stringList, .string(let text)): return .string(text)
        case (.string, _), (.stringList, _): return wrong("a string")
        case (.bool, .bool(let flag)): return .bool(flag)
        case (.bool, _): return wrong("true or false")
        case (.integer, .integer(let number)): return .integer(number)
        case (.integer, _): return wrong("an integer")
        case (.open, .string), (.open, .integer), (.open, .bool), (.open, .null): return node.json
        case (.open, _): return wrong("a string, integer, boolean or null")
        }
    }

    mutating func `operator`(_ name: String, _ node: YNode, claim: String, type: ClaimSchema.ClaimType, scope: Scope) -> Operator? {
        switch name {
        case "equals", "notEquals":
            let value: JSONValue?
            if type == .stringList {
                guard let elements = node.list("\(name) on '\(claim)'", diagnostics: &diagnostics) else { return nil }
                let converted = elements.map { scalarOperand($0, claim: claim, type: type, op: name) }
                value = converted.contains { $0 == nil } ? nil : .array(converted.compactMap { $0 })
            } else {
                value = scalarOperand(node, claim: claim, type: type, op: name)
            }
            guard let value else { return nil }
            return name == "equals" ? .equals(value) : .notEquals(value)
        case "in", "notIn":
            guard let elements = node.list("\(name) on '\(claim)'", diagnostics: &diagnostics) else { return nil }
            if elements.isEmpty { diagnostics.add(node.location, "\(name) needs at least one value") }
            let converted = elements.map { scalarOperand($0, claim: claim, type: type, op: name) }
            guard !elements.isEmpty, !converted.contains(where: { $0 == nil }) else { return nil }
            return name == "in" ? .isIn(converted.compactMap { $0 }) : .notIn(converted.compactMap { $0 })
        case "inRef":
            guard let set = node.string("inRef", diagnostics: &diagnostics) else { return nil }
            guard type != .bool else {
                diagnostics.add(node.location, "inRef does not apply to the boolean claim '\(claim)'")
                return nil
            }
            guard scope.declared.contains(set) else {
                diagnostics.add(node.location, "inRef '\(set)' is not declared in this policy's referenceValues")
                return nil
            }
            if checkFileSets, let defined = fileSets[set] {
                if defined.set.isExpired(at: time) {
                    diagnostics.add(
                        node.location, "reference set '\(set)' (\(defined.location)) expired at \(defined.set.expires.map(Self.iso) ?? "-")"
                    )
                    return nil
                }
                if type == .hex {
                    for value in defined.valueNodes {
                        if case .string(let text) = value.value, OrderedValue.parseHex(text) != nil, text == text.lowercased() { continue }
                        diagnostics.add(value.location, "reference set '\(set)' is used for '\(claim)', which is lowercase hex")
                    }
                }
            }
            return .inRef(set)
        case "lessOrEquals", "greaterOrEquals":
            guard type != .bool, type != .stringList else {
                diagnostics.add(node.location, "\(name) does not apply to '\(claim)' (\(type.rawValue))")
                return nil
            }
            guard let bound = OrderedValue.operand(node.value) else {
                diagnostics.add(
                    node.location,
                    "\(name) needs an integer or a string that is an RFC 3339 date, a dotted version or hex SVN bytes, not \(node.typeName)"
                )
                return nil
            }
            switch (type, bound) {
            case (.integer, .integer), (.hex, .hexSVN), (.string, .date), (.string, .version), (.string, .hexSVN), (.open, _): break
            default:
                diagnostics.add(node.location, "\(name) on '\(claim)' (\(type.rawValue)) cannot compare with a \(bound.formName)")
                return nil
            }
            return name == "lessOrEquals" ? .lessOrEquals(bound, node.json) : .greaterOrEquals(bound, node.json)
        case "exists":
            guard let flag = node.bool("exists", diagnostics: &diagnostics) else { return nil }
            return .exists(flag)
        case "matches":
            guard let pattern = node.string("matches", diagnostics: &diagnostics) else { return nil }
            guard type == .string || type == .hex || type == .open else {
                diagnostics.add(node.location, "matches does not apply to '\(claim)' (\(type.rawValue))")
                return nil
            }
            guard let regex = AnchoredRegex(pattern) else {
                diagnostics.add(node.location, "matches: '\(pattern)' is not a valid regular expression")
                return nil
            }
            return .matches(regex)
        default:
            return nil
        }
    }

    static func iso(_ date: Date) -> String { RFC3339.format(date, milliseconds: false) }
}
