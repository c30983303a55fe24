import CustosTestSupport
import Foundation
import FoundationXML

/// An XML element as a comparable value: name, attributes (order-free), child elements in order, trimmed text.
/// Formatting and attribute order do not matter; everything else does.
struct XMLShape: Equatable, CustomStringConvertible {
    let name: String
    let attributes: [String: String]
    let children: [XMLShape]
    let text: String

    init(_ element: XMLElement) {
        name = element.name ?? ""
        var attributes: [String: String] = [:]
        for attribute in element.attributes ?? [] { attributes[attribute.name ?? ""] = attribute.stringValue ?? "" }
        self.attributes = attributes
        children = (element.children ?? []).compactMap { $0 as? XMLElement }.map(XMLShape.init)
        text = (element.children ?? []).filter { $0.kind == .text }.compactMap(\.stringValue).joined()
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The first child named `name`.
    func child(_ name: String) -> XMLShape? { children.first { $0.name == name } }

    /// A copy without the children named in `names`.
    func removing(_ names: Set<String>) -> XMLShape {
        XMLShape(name: name, attributes: attributes, children: children.filter { !names.contains($0.name) }, text: text)
    }

    private init(name: String, attributes: [String: String], children: [XMLShape], text: String) {
        self.name = name
        self.attributes = attributes
        self.children = children
        self.text = text
    }

    var description: String {
        let attrs = attributes.sorted { $0.key < $1.key }.map { " \($0.key)='\($0.value)'" }.joined()
        return "<\(name)\(attrs)>\(text)\(children.map(\.description).joined())</\(name)>"
    }

    /// Parses a document and returns its root.
    static func parse(_ text: String) throws -> XMLShape {
        let document = try XMLDocument(data: Data(text.utf8), options: [])
        guard let root = document.rootElement() else { throw TestFailure("no root element") }
        return XMLShape(root)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs a program and returns its status and combined output.
func runProgram(_ path: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// A temporary directory, removed by `cleanup()`.
struct TemporaryDirectory {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("custos-virt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func write(_ relative: String, _ text: String) throws {
        let file = url.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: file)
    }
    func mkdir(_ relative: String) throws {
        try FileManager.default.createDirectory(at: url.appendingPathComponent(relative), withIntermediateDirectories: true)
    }
    func cleanup() { try? FileManager.default.removeItem(at: url) }
}

enum Tools {
    static let virtXMLValidate = "/usr/bin/virt-xml-validate"
    /// virt-xml-validate (libvirt-clients) is a shell script around xmllint (libxml2-utils).
    static var hasVirtXMLValidate: Bool {
        FileManager.default.isExecutableFile(atPath: virtXMLValidate) && FileManager.default.isExecutableFile(atPath: "/usr/bin/xmllint")
    }
    static let systemPython = "/usr/bin/python3"
    static var hasPythonLibvirt: Bool {
        (try? runProgram(systemPython, ["-c", "import libvirt"]).status) == 0
    }
    /// Validates domain XML with the installed libvirt's schema.
    static func validate(_ xml: String) throws -> (status: Int32, output: String) {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        try directory.write("domain.xml", xml)
        return try runProgram(virtXMLValidate, [directory.url.appendingPathComponent("domain.xml").path, "domain"])
    }
    /// Whether the installed libvirt schema knows `<launchSecurity type='tdx'>`.
    static var schemaKnowsTDX: Bool {
        let schema = (try? String(contentsOfFile: "/usr/share/libvirt/schemas/domaincommon.rng", encoding: .utf8)) ?? ""
        return schema.contains("<value>tdx</value>")
    }
}

enum Captures {
    static let directory = "libvirt/domaincaps/"
    static func text(_ name: String) throws -> String { try TestData.text(directory + name) }
    static let sevHosts = ["qemu_10.0.0-q35.x86_64+amdsev.xml", "qemu_10.0.0.x86_64+amdsev.xml", "qemu_9.2.0-q35.x86_64+amdsev.xml"]
    static let tdxHost = "qemu_10.1.0-q35.x86_64+inteltdx.xml"
    static let plainHost = "qemu_10.0.0-q35.x86_64.xml"
    static let aarch64Host = "qemu_8.2.0-virt.aarch64.xml"
    static var all: [String] { sevHosts + [tdxHost, plainHost, aarch64Host] }
}
