@testable import CloudHub
import Testing

@Suite("Resource paths")
struct ResourcePathTests {
    @Test("resources parse into node prefix, namespace, type and name; malformed ones are refused")
    func parsing() {
        func parse(_ text: String) -> ResourcePath? { try? ResourcePath.parse(text).get() }
        #expect(parse("default/pod/nginx") == ResourcePath(node: nil, namespace: "default", type: "pod", name: "nginx"))
        #expect(parse("node/edge-1/default/podstatus/a") == ResourcePath(node: "edge-1", namespace: "default", type: "podstatus", name: "a"))
        #expect(parse("default/podstatus") == ResourcePath(node: nil, namespace: "default", type: "podstatus", name: nil))
        #expect(parse("null/node/edge-1") == ResourcePath(node: nil, namespace: "null", type: "node", name: "edge-1"))
        #expect(parse("default/device/a/b/c") == ResourcePath(node: nil, namespace: "default", type: "device", name: "a/b/c"))
        for bad in ["", "default", "/pod/x", "default//x", "default/pod/", "node/edge-1", "node/edge-1/default"] {
            #expect(parse(bad) == nil, "\(bad)")
        }
    }
}
