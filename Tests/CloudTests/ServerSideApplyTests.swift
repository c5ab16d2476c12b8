import KubeModel
import Testing

@Suite struct ServerSideApplyTests {
    private func json(_ text: String) throws -> JSONValue { try JSONValue(parsing: text) }

    @Test func sharedFieldsStayWhenOneManagerDropsThemAndFieldSetsUseKubernetesForm() throws {
        let config = try json(#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","labels":{"x":"1"}},"data":{"k":"v","only-a":"1"}}"#)
        let first = try ServerSideApply.apply(config, to: nil, manager: "a", force: false, strategic: true, time: "t")
        #expect(first[path: ["metadata", "managedFields"]]?.arrayValue?.first?["fieldsV1"]
            == (try json(#"{"f:data":{"f:k":{},"f:only-a":{}},"f:metadata":{"f:labels":{"f:x":{}}}}"#)))
        // b applies the same value for k (no conflict: both own it), then a drops k and only-a.
        let shared = try ServerSideApply.apply(try json(#"{"apiVersion":"v1","kind":"ConfigMap","data":{"k":"v"}}"#), to: first, manager: "b",
                                               force: false, strategic: true, time: "t")
        let dropped = try ServerSideApply.apply(try json(#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"labels":{"x":"1"}}}"#), to: shared,
                                                manager: "a", force: false, strategic: true, time: "t")
        #expect(dropped["data"] == (try json(#"{"k":"v"}"#)), "k stays (b owns it), only-a goes")
        #expect(throws: ServerSideApply.ConflictError.self) {
            try ServerSideApply.apply(try json(#"{"apiVersion":"v1","kind":"ConfigMap","data":{"k":"w"}}"#), to: dropped, manager: "a",
                                      force: false, strategic: true, time: "t")
        }
    }

    @Test func keyedListElementsAreOwnedOneByOne() throws {
        let two = try json(#"{"apiVersion":"v1","kind":"Pod","spec":{"containers":[{"name":"a","image":"a:1"},{"name":"b","image":"b:1"}]}}"#)
        let applied = try ServerSideApply.apply(two, to: nil, manager: "m", force: false, strategic: true, time: "t")
        let fields = applied[path: ["metadata", "managedFields"]]?.arrayValue?.first?[path: ["fieldsV1", "f:spec", "f:containers"]]
        #expect(fields?[#"k:{"name":"a"}"#] == (try json(#"{".":{},"f:image":{},"f:name":{}}"#)), "\(String(describing: fields))")
        // Leaving container b out removes it; a strategic merge would have kept it.
        let one = try json(#"{"apiVersion":"v1","kind":"Pod","spec":{"containers":[{"name":"a","image":"a:2"}]}}"#)
        let after = try ServerSideApply.apply(one, to: applied, manager: "m", force: false, strategic: true, time: "t")
        #expect(after[path: ["spec", "containers"]] == (try json(#"[{"name":"a","image":"a:2"}]"#)))
    }
}
