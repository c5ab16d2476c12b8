@testable import Node
import Testing

private func request(_ uri: String) throws(MetaServerRequest.Refusal) -> MetaServerRequest {
    try MetaServerRequest(uri: uri, resources: MetaServer.Configuration.standardResources)
}

private func refusal(_ uri: String) -> MetaServerRequest.Refusal? {
    do {
        _ = try request(uri)
        return nil
    } catch {
        return error
    }
}

@Suite struct MetaServerRequestTests {
    @Test func fieldSelectorsNameTheObjectOrNamespaceAndALaterValueWins() throws {
        let both = try request("/api/v1/pods?fieldSelector=metadata.name%3Dweb,metadata.namespace%3D%3Ddefault")
        #expect(both.fieldName == "web" && both.fieldNamespace == "default")
        let repeated = try request("/api/v1/pods?fieldSelector=metadata.name%3Da&fieldSelector=metadata.namespace%3Db,metadata.name%3Dc")
        #expect(repeated.fieldName == "c" && repeated.fieldNamespace == "b")
        #expect(try request("/api/v1/pods?fieldSelector=").fieldName == nil)
    }

    @Test func fieldSelectorsOnOtherFieldsOrWithInequalityAreRefused() {
        #expect(refusal("/api/v1/pods?fieldSelector=metadata.name%21%3Dweb") == MetaServerRequest.Refusal(
            status: 400, reason: "BadRequest", message: "unsupported field selector \"metadata.name!=web\": only equality on metadata.name and metadata.namespace"))
        #expect(refusal("/api/v1/pods?fieldSelector=metadata.name%3Dweb,spec.nodeName%3Dx") == MetaServerRequest.Refusal(
            status: 400, reason: "BadRequest", message: "field label not supported: spec.nodeName"))
        #expect(refusal("/api/v1/pods?fieldSelector=metadata.name")?.status == 400)
    }
}
