import CustosCrypto
import CustosTestSupport
import Foundation
import Testing

@testable import CustosStore

/// `custos store …` run as a user would (the built executable): exit codes and `--json` output.
@Suite(.enabled(if: CustosExecutable.isBuilt, "needs the custos executable (swift build)"))
struct StoreCLITests {
    struct InitOutput: Decodable {
        let data: String
        let database: String
        let databaseCreated: Bool
        let masterKeySource: String
        let masterKeyFile: String?
        let masterKeyId: String
        let masterKeyCreated: Bool
        let tenant: String
        let tenantCreated: Bool
    }

    struct RotateOutput: Decodable {
        let oldKeyId: String
        let newKeyId: String
        let rewrappedKeys: Int
        let finishedInterruptedRotation: Bool
    }

    /// The CLI must not inherit a master key from the environment the tests run in.
    static let cleanEnvironment = [DataDirectory.masterKeyVariable: "", DataDirectory.newMasterKeyVariable: ""]

    @Test func initCreatesTheDataDirectoryAndRotateRewrapsIt() throws {
        let dir = try TemporaryDirectory()
        let data = dir.path("data")
        let first = try CustosExecutable.run(["store", "init", "--data", data, "--json"], environment: Self.cleanEnvironment)
        #expect(first.status == 0, "\(first.stderr)")
        let made = try JSONDecoder().decode(InitOutput.self, from: Data(first.stdout.utf8))
        #expect(made.databaseCreated && made.masterKeyCreated && made.tenantCreated && made.tenant == "default")
        #expect(made.masterKeySource == "file" && made.masterKeyFile == data + "/master.key")
        let key = try #require(FileManager.default.contents(atPath: data + "/master.key"))
        #expect(made.masterKeyId == Hex.encode(Digest.sha256([UInt8](key)).prefix(8)))
        let mode = try FileManager.default.attributesOfItem(atPath: data)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o700)

        let again = try CustosExecutable.run(["store", "init", "--data", data, "--json"], environment: Self.cleanEnvironment)
        let same = try JSONDecoder().decode(InitOutput.self, from: Data(again.stdout.utf8))
        #expect(again.status == 0 && !same.databaseCreated && !same.masterKeyCreated && !same.tenantCreated)
        #expect(same.masterKeyId == made.masterKeyId)

        let rotate = try CustosExecutable.run(["store", "rotate-master-key", "--data", data, "--json"], environment: Self.cleanEnvironment)
        #expect(rotate.status == 0, "\(rotate.stderr)")
        let rotated = try JSONDecoder().decode(RotateOutput.self, from: Data(rotate.stdout.utf8))
        #expect(rotated.oldKeyId == made.masterKeyId && rotated.newKeyId != made.masterKeyId && rotated.rewrappedKeys == 1)
        let human = try CustosExecutable.run(["store", "init", "--data", data], environment: Self.cleanEnvironment)
        #expect(human.status == 0 && human.stdout.contains(rotated.newKeyId))
    }

    /// Maintenance refuses to run beside a `custos serve` on the same directory (its lock, `DATA/custos.lock`): a
    /// rotation under a running service wrapped new tenant keys under a key the rotation then deleted.
    @Test func maintenanceRefusesALockedDataDirectory() throws {
        let dir = try TemporaryDirectory()
        let data = dir.path("data")
        #expect(try CustosExecutable.run(["store", "init", "--data", data], environment: Self.cleanEnvironment).status == 0)
        // Holding the lock as `custos serve` does (flock on DATA/custos.lock).
        let fd = open(data + "/custos.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        #expect(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
        for arguments in [["store", "rotate-master-key", "--data", data, "--json"], ["store", "init", "--data", data, "--json"]] {
            let result = try CustosExecutable.run(arguments, environment: Self.cleanEnvironment)
            #expect(result.status == 2, "\(arguments): \(result.stdout) \(result.stderr)")
            #expect(result.stdout.contains("dataDirectoryInUse"), "\(arguments): \(result.stdout)")
        }
        close(fd)
        let released = try CustosExecutable.run(["store", "rotate-master-key", "--data", data], environment: Self.cleanEnvironment)
        #expect(released.status == 0, "\(released.stdout) \(released.stderr)")
    }

    @Test func badInputExitsWithTwoAndOneLine() throws {
        let dir = try TemporaryDirectory()
        let data = dir.path("data")
        #expect(try CustosExecutable.run(["store", "init", "--data", data], environment: Self.cleanEnvironment).status == 0)

        // A group-readable key file.
        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: data + "/master.key")
        for arguments in [["store", "init", "--data", data], ["store", "rotate-master-key", "--data", data]] {
            let result = try CustosExecutable.run(arguments, environment: Self.cleanEnvironment)
            #expect(result.status == 2)
            #expect(result.stderr.contains("storeMasterKey") && result.stderr.contains("chmod 600"))
            #expect(result.stderr.split(separator: "\n").count == 1)
        }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: data + "/master.key")

        // A corrupted database.
        let corrupt = dir.path("corrupt")
        try FileManager.default.createDirectory(atPath: corrupt, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: corrupt + "/custos.sqlite", contents: Data(repeating: 0x41, count: 4096))
        let damaged = try CustosExecutable.run(["store", "init", "--data", corrupt], environment: Self.cleanEnvironment)
        #expect(damaged.status == 2 && damaged.stderr.contains("storeCorrupted"))
        #expect(!FileManager.default.fileExists(atPath: corrupt + "/master.key"))

        // A data path that is a file; a bad environment key; a missing --data.
        let file = dir.path("file")
        _ = FileManager.default.createFile(atPath: file, contents: Data())
        #expect(try CustosExecutable.run(["store", "init", "--data", file], environment: Self.cleanEnvironment).status == 2)
        let badKey = try CustosExecutable.run(
            ["store", "init", "--data", dir.path("env")], environment: [DataDirectory.masterKeyVariable: "c2hvcnQ="])
        #expect(badKey.status == 2 && badKey.stderr.contains("32 bytes"))
        #expect(try CustosExecutable.run(["store", "init"], environment: Self.cleanEnvironment).status == 2)
        #expect(
            try CustosExecutable.run(["store", "rotate-master-key", "--data", dir.path("nothing")], environment: Self.cleanEnvironment)
                .status == 2)
    }
}
