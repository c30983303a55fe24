import Hummingbird

/// `GET /openapi.yaml`: the API description, the repository's `openapi.yaml`.
///
/// The text is compiled into the module (`.embedInCode` in Package.swift, through the symlink
/// `Sources/CustosServer/Resources/openapi.yaml`), so the document served is always the one the binary was built
/// with, and no resource bundle has to be found next to the executable at run time (`Bundle.module` stops the
/// process when its bundle is missing, e.g. after the binary is copied elsewhere).
enum OpenAPIRoute {
    static let path = "/openapi.yaml"
    static let contentType = "application/yaml"

    static func add(to router: Router<CustosRequestContext>) {
        router.get("/openapi.yaml") { _, _ in
            Response(
                status: .ok, headers: [.contentType: contentType],
                body: .init(byteBuffer: ByteBuffer(bytes: PackageResources.openapi_yaml)))
        }
    }
}
